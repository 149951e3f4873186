"""Export and generation counters (on-site solar) through the converter into both stores (SQLite and a real
InfluxDB): stored as energy with a direction, never as CO2e of the site; net import, export and generation per
meter, area and site, in totals and series, as a hand computation from the samples says; a replay counted once;
a bad unit dead-lettered; the site's CO2e the same with or without the export counter."""

from __future__ import annotations

import json
import sqlite3
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
from ingest.store.base import EnergyFlow, Store, group_flows
from ingest.store.influx import InfluxStore
from ingest.store.sqlite import SqliteStore
from tests.ingest.helpers import T0, iso
from tests.ingest.test_store_migrations import layout

SITE = "demo"
PLANT = parse_plant({
    "site": {"id": SITE, "region": "CN", "start": "2026-01-01T00:00:00Z"},
    "meters": [{"id": "roof", "area": "utilities", "carrier": "electricity"},    # bidirectional: import + export
               {"id": "inverter", "area": "utilities", "carrier": "electricity"},  # generation only
               {"id": "press", "area": "pressing", "carrier": "electricity"}],
})
NOW_US = ts_to_us(T0 + timedelta(days=10))
CONV = Converter(PLANT, clock=lambda: NOW_US / 1e6)
END = T0 + timedelta(hours=3)


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


def msg(meter: str, seq: int, samples: list[dict[str, Any]]) -> tuple[str, bytes, int]:
    body = json.dumps({"v": 1, "meter": meter, "seq": seq, "agent": "e1", "samples": samples}).encode()
    return topics.reading(SITE, PLANT.meter(meter).area, meter), body, NOW_US


def counter(ts: datetime, quantity: str, delta: float, value: float, unit: str = "kWh",
            **extra: Any) -> dict[str, Any]:
    return {"ts": iso(ts), "quantity": quantity, "value": value, "unit": unit, "delta": delta, "interval_s": 60.0,
            **extra}


def minutes(n: int) -> list[datetime]:
    return [T0 + timedelta(minutes=10 + 20 * i) for i in range(n)]  # 00:10, 00:30, 00:50, 01:10, ...


def solar_day(solar: bool = True) -> list[tuple[str, bytes, int]]:
    """roof: imports 5 kWh and exports 2000 Wh (= 2 kWh) at each of 6 times; inverter generates 3 kWh; press 7.
    Without `solar`: the same imports, no export or generation counter."""
    items = []
    for i, ts in enumerate(minutes(6)):
        export = [counter(ts, "active_energy_export", 2000.0, 1e4 + 2000 * i, unit="Wh")] if solar else []
        items.append(msg("roof", i, [counter(ts, "active_energy_import", 5.0, 100 + 5 * i), *export]))
        if solar:
            items.append(msg("inverter", i, [counter(ts, "active_energy_generation", 3.0, 50 + 3 * i)]))
        items.append(msg("press", i, [counter(ts, "active_energy_import", 7.0, 10 + 7 * i)]))
    return items


def write(store: Store, items: list[tuple[str, bytes, int]]) -> tuple[Batch, list[str]]:
    outs, batch = CONV.convert_to_batch(items)
    store.write(batch)
    return batch, [d.reason for o in outs for d in o.dead]


def by_meter(rows: list[EnergyFlow]) -> dict[str, EnergyFlow]:
    return {r.meter: r for r in rows}


def test_export_and_generation_are_stored_by_direction_and_give_net_import(store: Store) -> None:
    batch, dead = write(store, solar_day())
    assert dead == []
    assert len(batch.flows) == 12 and all(unit == "kWh" for _, unit in batch.flows.values())
    flows = by_meter(store.energy_flows(SITE, T0, END))
    roof, inverter, press = flows["roof"], flows["inverter"], flows["press"]
    assert (roof.import_energy, roof.export_energy, roof.generation_energy) == (30.0, 12.0, 0.0)
    assert roof.net_import == 18.0 and roof.energy_unit == "kWh" and roof.area == "utilities"
    assert (inverter.import_energy, inverter.export_energy, inverter.generation_energy) == (0.0, 0.0, 18.0)
    assert (inverter.carrier, inverter.area, inverter.energy_unit) == ("electricity", "utilities", "kWh")
    assert (press.import_energy, press.export_energy) == (42.0, 0.0)
    site = group_flows(list(flows.values()), "site")
    assert [(f.meter, f.import_energy, f.export_energy, f.generation_energy, f.net_import) for f in site] == [
        (SITE, 72.0, 12.0, 18.0, 60.0)]
    areas = {f.meter: f for f in group_flows(list(flows.values()), "area")}
    assert (areas["utilities"].net_import, areas["pressing"].net_import) == (18.0, 42.0)
    # export and generation are not energy with CO2e: totals hold the imports alone
    totals = {t.meter: t for t in store.totals(SITE, T0, END)}
    assert totals["roof"].energy == 30.0 and "inverter" not in totals


def test_an_export_counter_does_not_change_the_sites_co2e(store: Store, tmp_path: Path) -> None:
    write(store, solar_day())
    reference = SqliteStore(tmp_path / "without-export.sqlite")
    try:
        _, batch = CONV.convert_to_batch(solar_day(solar=False))
        reference.write(batch)
        kg = sum(t.co2e_kg for t in store.totals(SITE, T0, END))
        assert kg > 0 and kg == pytest.approx(sum(t.co2e_kg for t in reference.totals(SITE, T0, END)), rel=1e-12)
    finally:
        reference.close()


def test_a_replay_is_counted_once(store: Store) -> None:
    write(store, solar_day())
    write(store, solar_day())
    roof = by_meter(store.energy_flows(SITE, T0, END))["roof"]
    assert (roof.import_energy, roof.export_energy) == (30.0, 12.0)


def test_flow_series_per_hour_and_quarter_hour(store: Store) -> None:
    write(store, solar_day())
    hourly = [(f.start, f.meter, f.import_energy, f.export_energy, f.generation_energy)
              for f in store.energy_flow_series(SITE, T0, END, "1h", "UTC")]
    expected = []
    for h in range(2):
        start = T0 + timedelta(hours=h)
        expected += [(start, "inverter", 0.0, 0.0, 9.0), (start, "press", 21.0, 0.0, 0.0),
                     (start, "roof", 15.0, 6.0, 0.0)]
    assert hourly == expected
    quarters = store.energy_flow_series(SITE, T0, T0 + timedelta(hours=1), "15m", "UTC")
    roof = [(f.start, f.export_energy) for f in quarters if f.meter == "roof"]
    assert roof == [(T0, 2.0), (T0 + timedelta(minutes=30), 2.0), (T0 + timedelta(minutes=45), 2.0)]


def test_day_buckets_start_at_the_sites_local_midnight(store: Store) -> None:
    write(store, solar_day())
    days = store.energy_flow_series(SITE, T0 - timedelta(days=1), T0 + timedelta(days=1), "1d", "Asia/Kolkata")
    midnight = T0 - timedelta(hours=5, minutes=30)  # 00:10-01:50 UTC is 05:40-07:20 in Kolkata, one local day
    assert [(f.start, f.meter, f.import_energy, f.export_energy, f.generation_energy, f.net_import)
            for f in days] == [(midnight, "inverter", 0.0, 0.0, 18.0, 0.0), (midnight, "press", 42.0, 0.0, 0.0, 42.0),
                               (midnight, "roof", 30.0, 12.0, 0.0, 18.0)]


def test_bad_export_samples_cost_only_themselves(store: Store) -> None:
    ts = minutes(2)
    batch, dead = write(store, [
        msg("roof", 1, [counter(ts[0], "active_energy_export", 1.0, 5.0, unit="m**3"),
                        counter(ts[0], "active_energy_import", 4.0, 40.0)]),
        msg("roof", 2, [counter(ts[1], "active_energy_export", 9.0, 14.0, flags=["held"], reason="jump")]),
    ])
    assert len(dead) == 1 and "unit: 'm**3' of active_energy_export cannot be converted to 'kWh'" in dead[0]
    roof = by_meter(store.energy_flows(SITE, T0, END))["roof"]
    assert (roof.import_energy, roof.export_energy) == (4.0, 0.0)  # the held export delta is stored, not summed
    assert [p[2] for p in batch.points].count("active_energy_export") == 1


def test_the_sqlite_migration_sums_the_export_points_stored_before(tmp_path: Path) -> None:
    path = tmp_path / "v3.sqlite"
    old = SqliteStore(path)
    _, batch = CONV.convert_to_batch(solar_day())
    batch.flows = {}  # as a version-3 store wrote them: plain points, no flow sums
    old.write(batch)
    old.close()
    db = sqlite3.connect(path)
    db.executescript("DROP TABLE flow_minute; DROP TABLE flow_hour; PRAGMA user_version = 3;")
    db.close()
    store = SqliteStore(path)
    try:
        flows = by_meter(store.energy_flows(SITE, T0, END))
        assert (flows["roof"].export_energy, flows["inverter"].generation_energy) == (12.0, 18.0)
        assert flows["roof"].import_energy == 30.0
    finally:
        store.close()
    SqliteStore(tmp_path / "new.sqlite").close()
    assert layout(path) == layout(tmp_path / "new.sqlite")  # exactly the tables of a new file
