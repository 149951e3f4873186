"""The vectorized FactorTable gives exactly the scalar path's results, sample by sample (property test)."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calc.emissions import carrier_co2e
from calc.factors import default_factor_set
from calc.plant import parse_plant
from calc.plant_factors import plant_factors
from calc.table import FactorTable

PLANT_TOML = """
[site]
id = "p"
region = "CN-grid-east"
start = 2020-01-01T00:00:00Z

[[meters]]
id = "e-east"
area = "a"
carrier = "electricity"

[[meters]]
id = "e-us"
area = "a"
carrier = "electricity"
region = "US"

[[meters]]
id = "e-pinned"
area = "b"
carrier = "electricity"

[[meters]]
id = "gas"
area = "b"
carrier = "natural_gas"
conditions = { pressure = "2 barg", temperature = "15 degC" }

[[meters]]
id = "coal"
area = "b"
carrier = "raw_coal"

[[meters]]
id = "diesel"
area = "b"
carrier = "diesel"

[[meters]]
id = "heat"
area = "c"
carrier = "heat"

[[meters]]
id = "steam"
area = "c"
carrier = "steam"
conditions = { pressure = "0.8 MPa" }

[[meters]]
id = "water"
area = "c"
carrier = "hot_water"
conditions = { temperature = "85 degC", return_temperature = "60 degC" }

[[meters]]
id = "steam-unknown"
area = "c"
carrier = "steam"

[factors]
fuel_method = "ipcc"

[[factor_overrides]]
meter = "e-pinned"
carrier = "electricity"
method = "location"
factor = "cn_grid_region_north_2022"
"""
RAW = tomllib.loads(PLANT_TOML)
PLANT = parse_plant(RAW)
PF = plant_factors(default_factor_set(), PLANT, RAW)
TABLE = FactorTable.build(PF, PLANT)
USABLE = [i for i, m in enumerate(TABLE.meters) if m not in TABLE.problems]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def scalar(meter_id: str, quantity: float, ts: datetime) -> tuple[float, str, str, bool]:
    meter = PLANT.meter(meter_id)
    r = carrier_co2e(quantity, TABLE.units[TABLE.meter_index[meter_id]], meter.carrier, PF.factors,
                     region=PLANT.region_of(meter), at=ts, method=PF.method_for(meter.carrier),
                     conditions=PF.conditions.get(meter_id), pins=PF.pins_for(meter, PLANT.site.id))
    return r.co2e_kg, r.factor_id, r.factor_version, r.fallback


def test_a_meter_that_cannot_be_converted_is_named_not_fatal() -> None:
    assert set(TABLE.problems) == {"steam-unknown"}
    assert "pressure" in TABLE.problems["steam-unknown"]
    mi = np.array([TABLE.meter_index["steam-unknown"]])
    kg, row = TABLE.co2e_kg(mi, np.array([1.0]), np.array(["2024-01-01"], dtype="datetime64[s]"))
    assert np.isnan(kg[0]) and row[0] == -1


timestamps = st.integers(int((datetime(2013, 1, 1, tzinfo=UTC) - EPOCH).total_seconds()),
                         int((datetime(2028, 1, 1, tzinfo=UTC) - EPOCH).total_seconds()))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(USABLE), st.floats(0, 1e6), timestamps), min_size=1, max_size=40),
       st.sampled_from(["datetime64[s]", "datetime64[ms]", "datetime64[us]", "float"]))
def test_vectorized_equals_scalar(samples: list[tuple[int, float, int]], ts_kind: str) -> None:
    mi = np.array([s[0] for s in samples], dtype=np.intp)
    q = np.array([s[1] for s in samples], dtype=np.float64)
    seconds = np.array([s[2] for s in samples], dtype=np.int64)
    ts = seconds.astype(np.float64) if ts_kind == "float" else seconds.astype("datetime64[s]").astype(ts_kind)
    kg, rows = TABLE.co2e_kg(mi, q, ts)
    for i, (m, quantity, sec) in enumerate(samples):
        expected_kg, factor_id, version, fallback = scalar(TABLE.meters[m], quantity, EPOCH + timedelta(seconds=sec))
        row = TABLE.rows[rows[i]]
        assert kg[i] == pytest.approx(expected_kg, rel=1e-12, abs=1e-12)
        assert (row.factor_id, row.factor_version, row.fallback) == (factor_id, version, fallback)


def test_one_segment_batch_and_mixed_batch_agree() -> None:
    mi = np.array(USABLE * 3, dtype=np.intp)
    q = np.linspace(1, 100, mi.size)
    same = np.full(mi.size, np.datetime64("2026-03-01T12:00:00"), dtype="datetime64[s]")
    kg_same, rows_same = TABLE.co2e_kg(mi, q, same)
    mixed = same.copy()
    mixed[0] = np.datetime64("2021-06-01")
    kg_mixed, rows_mixed = TABLE.co2e_kg(mi, q, mixed)
    np.testing.assert_array_equal(kg_same[1:], kg_mixed[1:])
    np.testing.assert_array_equal(rows_same[1:], rows_mixed[1:])
    assert TABLE.rows[rows_mixed[0]].factor_id == "cn_grid_region_east_2023"  # 2021: no east factor, latest
    assert TABLE.rows[rows_mixed[0]].fallback


def test_segment_boundaries_follow_validity_dates() -> None:
    m = np.array([TABLE.meter_index["e-east"]] * 2, dtype=np.intp)
    ts = np.array(["2022-12-31T23:59:59", "2023-01-01T00:00:00"], dtype="datetime64[s]")
    _, rows = TABLE.co2e_kg(m, np.ones(2), ts)
    assert [TABLE.rows[r].factor_id for r in rows] == ["cn_grid_region_east_2022", "cn_grid_region_east_2023"]


def test_pinned_meter_keeps_its_factor_and_is_flagged_outside_its_period() -> None:
    m = np.array([TABLE.meter_index["e-pinned"]] * 2, dtype=np.intp)
    ts = np.array(["2022-06-01", "2026-06-01"], dtype="datetime64[s]")
    kg, rows = TABLE.co2e_kg(m, np.array([1000.0, 1000.0]), ts)
    assert kg.tolist() == pytest.approx([677.6, 677.6])
    assert [TABLE.rows[r].fallback for r in rows] == [False, True]
