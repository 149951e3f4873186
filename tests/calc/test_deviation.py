"""The deviation rule's arithmetic (calc.deviation): a baseline's expected energy over a window of any length
equals the hand computation from its terms; units convert; degree-days and means by hand; nothing expected, no
deviation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from calc.baseline import Baseline, fit_baseline
from calc.deviation import (
    DeviationError,
    deviation_pct,
    expected_in_window,
    heating_degree_days,
    periods_in,
    time_weighted_mean,
)
from calc.rules import Metric, RuleSpec


def model(resolution: str = "hourly") -> Baseline:
    """energy = 60 + 1.2 × pieces + 60 × HDD per period, fitted on seeded data with a little noise."""
    rng = np.random.default_rng(7)
    pieces = rng.uniform(60, 180, 400)
    hdd = rng.uniform(0.0, 0.6, 400)
    energy = 60 + 1.2 * pieces + 60 * hdd + rng.normal(0, 2.0, 400)
    return fit_baseline(energy, {"pieces": pieces, "hdd": hdd}, energy_unit="kWh",
                        driver_units={"pieces": "count", "hdd": "K * day"}, resolution=resolution, subject="s/press")


M = model()


def by_hand(m: Baseline, periods: float, pieces: float, hdd: float) -> float:
    return m.term("intercept").value * periods + m.term("pieces").value * pieces + m.term("hdd").value * hdd


@pytest.mark.parametrize(("window_h", "pieces", "hdd"), [(1.0, 120.0, 0.5), (0.25, 30.0, 0.125),
                                                          (10 / 60, 20.0, 1 / 12), (24.0, 2880.0, 12.0)])
def test_expected_over_a_window_is_the_intercept_k_times_plus_the_drivers_totals(
        window_h: float, pieces: float, hdd: float) -> None:
    got = expected_in_window(M, window_h, {"pieces": pieces, "hdd": hdd})
    assert got == pytest.approx(by_hand(M, window_h, pieces, hdd), rel=1e-12)
    if window_h == 1.0:
        assert got == pytest.approx(float(M.predict({"pieces": [pieces], "hdd": [hdd]})[0]), rel=1e-12)


def test_a_daily_model_over_six_hours_counts_a_quarter_of_its_intercept() -> None:
    daily = model("daily")
    assert periods_in(daily, 6.0) == 0.25
    assert expected_in_window(daily, 6.0, {"pieces": 30.0, "hdd": 0.1}) == pytest.approx(by_hand(daily, 0.25, 30, 0.1))


def test_driver_units_convert() -> None:
    # 0.5 K·d given as 12 K·h
    assert expected_in_window(M, 1.0, {"pieces": 100.0, "hdd": 12.0}, {"hdd": "K * hour"}) == \
        pytest.approx(by_hand(M, 1.0, 100.0, 0.5))


def test_missing_driver_or_empty_window_is_refused() -> None:
    with pytest.raises(DeviationError, match="hdd"):
        expected_in_window(M, 1.0, {"pieces": 1.0})
    with pytest.raises(DeviationError, match="positive"):
        expected_in_window(M, 0.0, {"pieces": 1.0, "hdd": 0.0})


def test_deviation_in_percent_and_nothing_expected() -> None:
    assert deviation_pct(115.0, 100.0) == pytest.approx(15.0)
    assert deviation_pct(90.0, 100.0) == pytest.approx(-10.0)
    assert math.isnan(deviation_pct(5.0, 0.0))


def test_degree_days_and_means_by_hand() -> None:
    # an hour at 10 °C below a base of 18: 8 K × 1/24 d; an hour at 20 °C: none; half an hour at 6 °C: 12 K × 1/48 d
    assert heating_degree_days([(10.0, 3600), (20.0, 3600), (6.0, 1800)], 18.0) == pytest.approx(8 / 24 + 12 / 48)
    assert heating_degree_days([(50.0, 3600)], 18.0, "degF") == pytest.approx(8 / 24)     # 50 °F = 10 °C
    assert heating_degree_days([], 18.0) == 0.0
    assert time_weighted_mean([(10.0, 60), (20.0, 180)]) == pytest.approx(17.5)
    assert math.isnan(time_weighted_mean([]))


@given(st.floats(min_value=0.05, max_value=48), st.floats(min_value=0, max_value=1e4),
       st.floats(min_value=0, max_value=50), st.floats(min_value=1.0, max_value=2.0))
def test_waste_on_the_expected_energy_is_that_deviation(window_h: float, pieces: float, hdd: float,
                                                         factor: float) -> None:
    expected = expected_in_window(M, window_h, {"pieces": pieces, "hdd": hdd})
    assert deviation_pct(factor * expected, expected) == pytest.approx(100 * (factor - 1), abs=1e-9)


def test_a_deviation_rule_names_its_baseline() -> None:
    with pytest.raises(ValueError, match="baseline_id"):
        RuleSpec(name="leak", metric=Metric.DEVIATION, threshold=10.0)
    rule = RuleSpec(name="leak", metric=Metric.DEVIATION, threshold=10.0, for_s=600, baseline_id="press-1",
                    drivers={"hdd": "outdoor-temp"})
    assert rule.unit == "%" and rule.window_s == 3600
