"""Production counters and driver variables through the converter into both stores (SQLite and a real InfluxDB):
stored with their units, never a CO2e, counters summed and gauges time-weighted exactly as a hand computation
from the samples says, duplicates stored once, conflicts dead-lettered, a bad sample costing only itself, and
energy figures untouched by them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from calc import topics
from calc.plant import parse_plant
from ingest.config import InfluxStoreSettings
from ingest.convert import Converter
from ingest.points import Batch, ts_to_us
from ingest.store.base import Store, VariableTotal
from ingest.store.influx import InfluxStore
from ingest.store.sqlite import SqliteStore
from ingest.store.variables import combine
from tests.ingest.helpers import T0, counter_sample, iso

SITE = "demo"
PLANT = parse_plant({
    "site": {"id": SITE, "region": "CN", "start": "2026-01-01T00:00:00Z"},
    "meters": [{"id": "m1", "area": "a1", "carrier": "electricity"}],
    "variables": [
        {"id": "out-1", "area": "a1", "line": "l1", "kind": "production", "quantity": "production", "unit": "count"},
        {"id": "out-2", "area": "a1", "kind": "production", "quantity": "mass", "unit": "t"},
        {"id": "temp", "area": "a2", "kind": "driver", "quantity": "outdoor_temperature", "unit": "degC",
         "measure": "gauge", "degree_day_base_c": 18.0},
    ],
})
NOW_US = ts_to_us(T0 + timedelta(days=10))
CONV = Converter(PLANT, clock=lambda: NOW_US / 1e6)


@pytest.fixture(params=["sqlite", "influxdb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    s: Store
    if request.param == "sqlite":
        s = SqliteStore(tmp_path / "store.sqlite")
    else:
        url = request.getfixturevalue("influx_url")
        s = InfluxStore(InfluxStoreSettings(kind="influxdb", url=url, database=f"t{uuid.uuid4().hex[:12]}"))
    try:
        yield s
    finally:
        s.close()


def _msg(variable: str, seq: int, samples: list[dict[str, Any]]) -> tuple[str, bytes, int]:
    area = PLANT.variables_by_id[variable].area
    body = json.dumps({"v": 1, "meter": variable, "seq": seq, "agent": "e1", "samples": samples}).encode()
    return topics.reading(SITE, area, variable), body, NOW_US


def count(ts: datetime, delta: float | None, value: float, unit: str = "count", interval_s: float | None = 60.0,
          quantity: str = "production", **extra: Any) -> dict[str, Any]:
    return {"ts": iso(ts), "quantity": quantity, "value": value, "unit": unit, "delta": delta,
            "interval_s": interval_s if delta is not None else None, **extra}


def temp(ts: datetime, value: float, interval_s: float | None, unit: str = "degC", **extra: Any) -> dict[str, Any]:
    return {"ts": iso(ts), "quantity": "outdoor_temperature", "value": value, "unit": unit,
            "interval_s": interval_s, **extra}


def _batch(items: list[tuple[str, bytes, int]]) -> tuple[Batch, list[str]]:
    outs, batch = CONV.convert_to_batch(items)
    return batch, [d.reason for o in outs for d in o.dead]


def by_id(rows: list[VariableTotal]) -> dict[str, VariableTotal]:
    return {r.variable: r for r in rows}


def test_counters_sum_gauges_weigh_time_and_units_are_kept(store: Store) -> None:
    minute = timedelta(minutes=1)
    pieces = [count(T0 + i * minute, None if i == 0 else float(i % 5), 100.0 + i, flags=["first"] if i == 0 else [])
              for i in range(90)]
    pieces[0].pop("interval_s")
    pieces[0]["flags"] = ["first"]
    for s in pieces[1:]:
        s.pop("flags")
    kg = [count(T0 + i * minute, 250.0, 250.0 * (i + 1), unit="kg", quantity="mass") for i in range(1, 31)]
    # a gauge in kelvin, 30 s and 90 s weights: the mean is time-weighted and converted with the offset
    temps = [temp(T0 + i * minute, 273.15 + (2.0 if i % 2 else 6.0), 30.0 if i % 2 else 90.0, unit="K")
             for i in range(1, 61)]
    temps.append(temp(T0 + 61 * minute, 0.0, None, quality="bad", reason="no value"))
    batch, dead = _batch([_msg("out-1", 1, pieces), _msg("out-2", 1, kg), _msg("temp", 1, temps)])
    assert dead == []
    assert all(p[7] is None and p[8] is None for p in batch.points), "no energy, no CO2e for variables"
    result = store.write(batch)
    assert (result.stored, result.dead_lettered) == (len(pieces) + len(kg) + len(temps), 0)
    again = store.write(_batch([_msg("out-1", 1, pieces)])[0])
    assert (again.stored, again.duplicates) == (0, len(pieces))

    # a period cut mid-minute (raw points at the edges, rollups inside), by hand from the samples
    start, end = T0 + timedelta(seconds=30), T0 + timedelta(minutes=75, seconds=30)
    inside = [s for s in pieces if start <= datetime.fromisoformat(s["ts"]) < end]
    totals = by_id(store.variable_totals(SITE, start, end))
    assert set(totals) == {"out-1", "out-2", "temp"}
    t = totals["out-1"]
    assert (t.unit, t.measure, t.kind, t.area, t.line, t.mean) == ("count", "counter", "production", "a1", "l1", None)
    assert t.total == sum(s["delta"] or 0.0 for s in inside) and t.points == len(inside)
    assert totals["out-2"].total == pytest.approx(30 * 0.25, rel=1e-12) and totals["out-2"].unit == "t"
    g = totals["temp"]
    assert (g.unit, g.measure, g.total, g.kind) == ("degC", "gauge", None, "driver")
    weights = [(s["value"] - 273.15, s["interval_s"]) for s in temps[:60]]
    assert g.weight_s == sum(w for _, w in weights)
    assert g.mean == pytest.approx(sum(v * w for v, w in weights) / g.weight_s, abs=1e-9)
    assert g.mean == pytest.approx((2.0 * 30 + 6.0 * 90) / 120, abs=1e-9)
    # series: hour buckets add up to the whole
    series = store.variable_series(SITE, T0, T0 + timedelta(hours=2), "1h", "UTC")
    assert {r.start for r in series} == {T0, T0 + timedelta(hours=1)}
    assert sum(r.total or 0.0 for r in series if r.variable == "out-1") == sum(s["delta"] or 0.0 for s in pieces)
    # per area and site: counters of one unit summed, gauges weighted, units never mixed
    whole = store.variable_totals(SITE, T0, T0 + timedelta(hours=2))
    areas = {(r.variable, r.quantity): r for r in combine(whole, "area")}
    assert areas[("a1", "production")].total == sum(s["delta"] or 0.0 for s in pieces)
    assert areas[("a1", "mass")].unit == "t" and areas[("a2", "outdoor_temperature")].mean == pytest.approx(5.0)
    # energy figures do not see them
    assert store.totals(SITE, T0, T0 + timedelta(days=1)) == []
    assert store.meter_summaries(SITE) == [] and store.latest_values(SITE) == []


def test_a_malformed_production_reading_costs_only_itself(store: Store) -> None:
    minute = timedelta(minutes=1)
    good = [count(T0 + i * minute, 2.0, 10.0 + 2 * i) for i in range(1, 6)]
    bad = [count(T0 + 6 * minute, 2.0, 22.0, unit="kWh"),              # not a count: dead-lettered
           count(T0 + 7 * minute, -3.0, 19.0),                         # negative without a reset flag
           count(T0 + 8 * minute, 2.0, 24.0, unit="bananas")]          # not a unit at all
    energy = [counter_sample(T0 + i * minute, 1.5, 100.0 + i) for i in range(1, 4)]
    batch, dead = _batch([_msg("out-1", 1, good + bad), _msg("out-1", 2, [{"ts": "nonsense"}]),
                          (topics.reading(SITE, "a1", "m1"),
                           json.dumps({"v": 1, "meter": "m1", "seq": 1, "samples": energy}).encode(), NOW_US)])
    assert len(dead) == 4, dead
    assert "cannot be converted to 'count'" in dead[0] and "negative" in dead[1] and "bananas" in dead[2]
    result = store.write(batch)
    assert (result.stored, result.dead_lettered) == (len(good) + len(energy), 4)
    totals = by_id(store.variable_totals(SITE, T0, T0 + timedelta(hours=1)))
    assert totals["out-1"].total == 10.0 and totals["out-1"].points == 5
    assert [t.energy for t in store.totals(SITE, T0, T0 + timedelta(hours=1))] == [pytest.approx(4.5)]
    reasons = [d.reason for d in store.dead_letters(SITE)]
    assert len(reasons) == 4 and any("bananas" in r for r in reasons)


def test_held_production_is_kept_apart_and_a_conflict_is_refused(store: Store) -> None:
    minute = timedelta(minutes=1)
    samples = [count(T0 + minute, 5.0, 105.0), count(T0 + 2 * minute, 900.0, 1005.0, flags=["held"],
                                                     reason="implausible step")]
    store.write(_batch([_msg("out-1", 1, samples)])[0])
    changed = [count(T0 + minute, 6.0, 106.0)]  # the same key with other content
    result = store.write(_batch([_msg("out-1", 2, changed)])[0])
    assert (result.stored, result.conflicts) == (0, 1)
    t = by_id(store.variable_totals(SITE, T0, T0 + timedelta(hours=1)))["out-1"]
    assert (t.total, t.held) == (5.0, 900.0)
