"""Virtual meters over series: main − Σ submeters to 1e-9 over a day of minute buckets, completeness, quality,
estimated and held energy carried by hand, negative results flagged, and the reconciliation figure."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from calc.plant import parse_plant
from calc.units import UnitError
from calc.virtual_series import Series, combine, evaluate, evaluate_all, from_rows, reconcile, reconcile_virtual

MIN_US = 60_000_000
DAY = 1440
T0 = 1_796_083_200_000_000  # 2026-12-01T00:00Z in µs
SITE = {"id": "s", "region": "CN", "start": "2026-01-01T00:00:00Z"}
METERS = [{"id": m, "area": "a", "carrier": "electricity"} for m in ("main", "press-1", "press-2")]


def plant(*virtual: dict[str, str]) -> object:
    return parse_plant({"site": SITE, "meters": METERS, "virtual_meters": list(virtual)})


def series(energy: list[float] | np.ndarray, start: int = 0, unit: str = "kWh", points: int = 6,
           expected: float = 6, **more: object) -> Series:
    n = len(energy)
    e = np.asarray(energy, dtype=np.float64)
    return Series.of_meter(T0 + (start + np.arange(n)) * MIN_US, e, unit, e * 0.5, [points] * n, [expected] * n,
                           **more)  # type: ignore[arg-type]


energies = arrays(np.float64, DAY, elements=st.floats(0, 1e4, allow_nan=False, allow_infinity=False))


@settings(max_examples=40, deadline=None)
@given(main=energies, p1=energies, p2=energies)
def test_a_virtual_meter_is_main_minus_the_submeters_to_1e_9_over_a_day(main: np.ndarray, p1: np.ndarray,
                                                                        p2: np.ndarray) -> None:
    rest = plant({"id": "rest", "area": "a", "expression": "main - press-1 - press-2"}).virtual()["rest"]  # type: ignore[attr-defined]
    out = evaluate(rest, {"main": series(main), "press-1": series(p1), "press-2": series(p2)})
    assert len(out.start_us) == DAY and out.energy_unit == "kWh"
    assert np.max(np.abs(out.energy - (main - p1 - p2))) <= 1e-9
    assert np.max(np.abs(out.co2e_kg - 0.5 * (main - p1 - p2))) <= 1e-9
    assert abs(out.total() - (main.sum() - p1.sum() - p2.sum())) <= 1e-12 * (main.sum() + p1.sum() + p2.sum()) + 1e-9
    assert np.array_equal(out.negative, (main - p1 - p2) < 0)  # kept and flagged, never clipped
    assert np.all(out.points == 18) and np.all(out.completeness == 1.0)


def test_completeness_quality_estimated_and_held_by_hand() -> None:
    # main: minutes 0..3; press-1: minutes 1..3 with minute 2 half missing; press-2: minutes 0..2 only
    main = series([10.0, 10.0, 10.0, 10.0], points=6, good_points=[6, 3, 6, 6], estimated_energy=[0, 0, 4, 0])
    p1 = Series.of_meter(T0 + np.arange(1, 4) * MIN_US, [2.0, 2.0, 2.0], "Wh", [1.0, 1.0, 1.0], [6, 3, 6],
                         [6, 6, 6], held_energy=[0, 500.0, 0])
    p2 = series([3.0, 3.0, 3.0])
    out = combine([(1, main), (-1, p1), (-1, p2)], "kWh")
    assert out.start_us.tolist() == [T0 + i * MIN_US for i in range(4)]
    assert out.energy.tolist() == pytest.approx([7.0, 6.998, 6.998, 9.998])  # press-1 in Wh, converted
    # minute 0: press-1 has no bucket (0 %); 2: press-1 has 3 of 6; 3: press-2 has none
    assert out.completeness.tolist() == [0.0, 1.0, 0.5, 0.0]
    assert out.good_share.tolist() == [1.0, 0.5, 1.0, 1.0]  # main's minute 1: 3 of 6 good
    assert out.estimated_energy.tolist() == [0.0, 0.0, 4.0, 0.0]
    assert out.held_energy.tolist() == pytest.approx([0.0, 0.0, 0.5, 0.0])
    assert out.points.tolist() == [12, 18, 15, 12]
    assert out.estimated_share.tolist() == pytest.approx([0.0, 0.0, 4.0 / 6.998, 0.0])
    assert out.co2e_kg.tolist() == pytest.approx([5 - 1.5, 5 - 1 - 1.5, 5 - 1 - 1.5, 5 - 1])


def test_a_virtual_meter_of_virtual_meters_carries_its_inputs() -> None:
    p = plant({"id": "presses", "area": "a", "expression": "press-1 + press-2"},
              {"id": "rest", "area": "a", "expression": "main - presses", "unit": "MWh"})
    got = evaluate_all(p.virtual(), {"main": series([100.0, 100.0]), "press-1": series([30.0, 80.0], points=3),  # type: ignore[attr-defined]
                                     "press-2": series([20.0, 40.0])})
    assert got["presses"].energy.tolist() == [50.0, 120.0]
    assert got["rest"].energy.tolist() == pytest.approx([0.05, -0.02])
    assert got["rest"].negative.tolist() == [False, True]
    assert got["rest"].completeness.tolist() == [0.5, 0.5]  # press-1 had 3 of 6, through presses


def test_a_meter_without_points_makes_every_bucket_incomplete() -> None:
    rest = plant({"id": "rest", "area": "a", "expression": "main - press-1"}).virtual()["rest"]  # type: ignore[attr-defined]
    out = evaluate(rest, {"main": series([5.0, 5.0])})
    assert out.energy.tolist() == [5.0, 5.0] and out.completeness.tolist() == [0.0, 0.0]


def test_units_that_do_not_convert_are_refused() -> None:
    with pytest.raises(UnitError):
        combine([(1, series([1.0])), (-1, series([1.0], unit="m**3"))], "kWh")


def test_a_series_must_be_one_row_per_bucket() -> None:
    with pytest.raises(ValueError, match="rise strictly"):
        Series.of_meter([T0, T0], [1.0, 1.0], "kWh", [0.0, 0.0], [1, 1], [1, 1])
    with pytest.raises(ValueError, match="energy has 1 buckets"):
        Series.of_meter([T0, T0 + MIN_US], [1.0], "kWh", [0.0, 0.0], [1, 1], [1, 1])


def test_reconciliation_of_a_main_meter_against_its_submeters() -> None:
    main = series([100.0, 200.0, 0.0, 50.0])
    rec = reconcile(main, [series([90.0, 150.0, 0.0, 60.0])])
    assert rec.main_energy.tolist() == [100.0, 200.0, 0.0, 50.0]
    assert rec.submetered_energy.tolist() == [90.0, 150.0, 0.0, 60.0]
    assert rec.series.energy.tolist() == [10.0, 50.0, 0.0, -10.0]
    assert rec.difference_pct[[0, 1, 3]].tolist() == [10.0, 25.0, -20.0] and math.isnan(rec.difference_pct[2])
    assert (rec.main_total, rec.submetered_total, rec.difference_total) == (350.0, 300.0, 50.0)
    assert rec.difference_pct_total == pytest.approx(50 / 350 * 100)
    assert rec.series.negative.tolist() == [False, False, False, True] and rec.completeness == 1.0


def test_reconciliation_read_from_a_rest_meter_and_its_limits() -> None:
    p = plant({"id": "rest", "area": "a", "expression": "main - press-1 - press-2"},
              {"id": "both", "area": "a", "expression": "main + press-1"})
    inputs = {"main": series([100.0]), "press-1": series([40.0]), "press-2": series([50.0], points=3)}
    rec = reconcile_virtual(p.virtual()["rest"], inputs)  # type: ignore[attr-defined]
    assert (rec.difference_pct_total, rec.completeness) == (pytest.approx(10.0), 0.5)
    assert math.isnan(reconcile(series([]), []).difference_pct_total)
    with pytest.raises(ValueError, match="one main meter"):
        reconcile_virtual(p.virtual()["both"], inputs)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Row:  # a store's SeriesPoint, as far as calc reads it
    start: datetime
    meter: str
    energy: float
    energy_unit: str
    co2e_kg: float
    points: int
    estimated_energy: float = 0.0


def test_series_from_a_stores_rows() -> None:
    t0 = datetime(2026, 12, 1, tzinfo=UTC)
    rows = [Row(t0, "main", 10.0, "kWh", 5.0, 15, 1.0), Row(t0, "press-1", 4.0, "kWh", 2.0, 9),
            Row(t0 + timedelta(minutes=15), "main", 12.0, "kWh", 6.0, 15)]
    got = from_rows(rows, {"main": 15, "press-1": 15})
    assert got["main"].start_us.tolist() == [T0, T0 + 15 * MIN_US]
    assert got["main"].estimated_energy.tolist() == [1.0, 0.0]
    assert got["press-1"].completeness.tolist() == [0.6]
    rest = combine([(1, got["main"]), (-1, got["press-1"])], "kWh")
    assert rest.energy.tolist() == [6.0, 12.0] and rest.completeness.tolist() == [0.6, 0.0]
    assert from_rows(rows[:1], {})["main"].completeness.tolist() == [1.0]  # no expectation: complete
