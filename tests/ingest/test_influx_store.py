"""The InfluxDB store against a real influxd (v1 HTTP API), and ingest end to end with it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from calc import topics
from deploy.services import InfluxDB
from ingest.config import InfluxStoreSettings
from ingest.points import Batch, ts_to_us
from ingest.store import open_reader
from ingest.store.base import StoreError
from ingest.store.influx import InfluxStore, point_line
from ingest.store.sqlite import SqliteStore
from tests.ingest.helpers import (
    SITE,
    STORE_CONVERTER,
    STORE_NOW_US,
    STORE_PLANT,
    T0,
    IngestProcess,
    Publisher,
    counter_sample,
    day_of_messages,
    message,
    plant_file,
    power_sample,
    wait_for,
)


def points(meter: str, n: int, kwh: float = 1.0, step_s: int = 60) -> Batch:
    samples = [counter_sample(T0 + timedelta(seconds=i * step_s), kwh, 100 + i * kwh) for i in range(n)]
    area = STORE_PLANT.meter(meter).area
    out = STORE_CONVERTER.convert(f"carbonwatch/v1/demo/{area}/{meter}/reading", message(meter, 1, samples),
                                  STORE_NOW_US)
    assert out.dead == []
    return STORE_CONVERTER.batch([out])


def join(*batches: Batch) -> Batch:
    return Batch(points=[p for b in batches for p in b.points],
                 meters={k: v for b in batches for k, v in b.meters.items()}, factors=STORE_CONVERTER.factor_info)


def test_line_protocol_escapes_tags_and_strings() -> None:
    batch = points("m2", 1)
    p = list(batch.points[0])
    p[0] = "m 1,x=y"  # not a valid meter id, but tags must be escaped whatever they hold
    p[10] = 'say "hi"\\'
    batch.meters["m 1,x=y"] = batch.meters["m2"]
    line = point_line(p, batch)
    assert line.startswith("points,meter=m\\ 1\\,x\\=y,site=demo,area=a2,carrier=electricity,"
                           "quantity=active_energy_import,kind=counter,scope=scope2_location ")
    assert 'flags="say \\"hi\\"\\\\"' in line
    assert line.endswith(f" {ts_to_us(T0)}")


@pytest.fixture
def influx_store(influx_url: str) -> Iterator[InfluxStore]:
    store = InfluxStore(InfluxStoreSettings(kind="influxdb", url=influx_url, database=f"t{uuid.uuid4().hex[:12]}"))
    yield store
    store.close()


@pytest.mark.integration
def test_write_read_duplicates_and_conflicts(influx_store: InfluxStore) -> None:
    batch = join(points("m1", 30, kwh=0.5), points("m2", 20, kwh=2.0))
    first = influx_store.write(batch)
    assert (first.stored, first.duplicates, first.conflicts) == (50, 0, 0)
    again = influx_store.write(Batch(points=batch.points[:10] + batch.points[:1], meters=batch.meters,
                                     factors=batch.factors))
    assert (again.stored, again.duplicates, again.conflicts) == (0, 11, 0)
    changed = points("m2", 1, kwh=7.0)
    result = influx_store.write(changed)
    assert (result.stored, result.conflicts) == (0, 1)
    totals = {t.meter: t for t in influx_store.totals(SITE, T0, T0 + timedelta(days=1))}
    assert totals["m1"].energy == pytest.approx(15.0) and totals["m1"].points == 30
    assert totals["m2"].energy == pytest.approx(40.0)  # the stored value was kept
    assert totals["m2"].scope == "scope2_location" and totals["m2"].energy_unit == "kWh"
    assert len(totals["m2"].factor_ids) == 1 and len(totals["m2"].factor_versions) == 1
    (dead,) = influx_store.dead_letters(SITE)
    assert dead.reason.startswith("conflict:") and "delta: stored 2.0, got 7.0" in dead.reason
    summaries = {s.meter: s for s in influx_store.meter_summaries(SITE)}
    assert summaries["m2"].samples == 20 and summaries["m2"].last_ts == T0 + timedelta(minutes=19)


@pytest.mark.integration
def test_totals_equal_those_of_the_sqlite_store(influx_store: InfluxStore, tmp_path: Path) -> None:
    sqlite = SqliteStore(tmp_path / "s.sqlite")
    for meter, kwh in (("m1", 0.37), ("m2", 1.91)):
        batch = points(meter, 3000, kwh=kwh, step_s=37)
        influx_store.write(batch)
        sqlite.write(batch)
    for start, end in ((T0, T0 + timedelta(days=3)), (T0 + timedelta(hours=3, seconds=5), T0 + timedelta(hours=20))):
        a = {t.meter: (t.points, t.energy, t.co2e_kg, t.factor_versions) for t in influx_store.totals(SITE, start, end)}
        b = {t.meter: (t.points, t.energy, t.co2e_kg, t.factor_versions) for t in sqlite.totals(SITE, start, end)}
        assert a.keys() == b.keys() and a
        for m in a:
            assert a[m][0] == b[m][0] and a[m][3] == b[m][3]
            assert a[m][1] == pytest.approx(b[m][1]) and a[m][2] == pytest.approx(b[m][2])
    sqlite.close()


def test_unreachable_server_is_a_store_error() -> None:
    from deploy.services import free_port

    store = InfluxStore(InfluxStoreSettings(kind="influxdb", url=f"http://127.0.0.1:{free_port()}", timeout_s=1))
    with pytest.raises(StoreError, match="influxdb"):
        store.write(points("m2", 1))
    store.close()


@pytest.mark.integration
def test_open_reader_returns_the_influx_store(influx_url: str, tmp_path: Path) -> None:
    reader = open_reader({"store": {"kind": "influxdb", "url": influx_url, "database": "cw_reader"}}, tmp_path)
    assert isinstance(reader, InfluxStore)
    assert reader.totals(SITE, T0, T0 + timedelta(days=1)) == []
    reader.close()


# ---- ingest end to end with InfluxDB ------------------------------------------------------------------------

def influx_plant(tmp_path: Path, mqtt_url: str, influx: str, db: str, client_id: str, extra: str = "") -> Path:
    store = f'[store]\nkind = "influxdb"\nurl = "{influx}"\ndatabase = "{db}"\ntimeout_s = 2.0'
    return plant_file(tmp_path, mqtt_url, client_id=client_id, store=store,
                      ingest_extra=f'buffer_path = "{tmp_path / "buffer.sqlite"}"\n{extra}')


def influx_count(url: str, db: str) -> int:
    try:
        resp = httpx.post(f"{url}/query", params={"db": db}, data={"q": "SELECT COUNT(value) FROM points"},
                          timeout=2)
        series = resp.json()["results"][0].get("series", [])
    except (httpx.HTTPError, ValueError, KeyError):
        return -1
    return int(series[0]["values"][0][1]) if series else 0


@pytest.mark.integration
def test_same_end_to_end_totals_through_sqlite_and_influxdb(mqtt_url: str, influx_url: str, tmp_path: Path) -> None:
    db = f"e2e{uuid.uuid4().hex[:10]}"
    (tmp_path / "s").mkdir()
    (tmp_path / "i").mkdir()
    via_sqlite = IngestProcess(plant_file(tmp_path / "s", mqtt_url, client_id="e2e-sqlite"),
                               tmp_path / "s" / "metrics-e2e-sqlite.json", tmp_path / "s")
    via_influx = IngestProcess(influx_plant(tmp_path / "i", mqtt_url, influx_url, db, "e2e-influx"),
                               tmp_path / "i" / "metrics-e2e-influx.json", tmp_path / "i")
    via_sqlite.start()
    via_influx.start()
    msgs = (day_of_messages("press-1", T0, 600, 20, lambda i: 0.2 + (i % 13) * 0.05)
            + day_of_messages("paint-oven", T0, 600, 25, lambda i: 3.0 - (i % 5) * 0.1)
            + [(topics.reading(SITE, "pressing", "press-2"), message("press-2", 1, [power_sample(T0, 5.0)]))])
    pub = Publisher(mqtt_url)
    pub.publish(msgs)
    pub.close()
    wait_for(lambda: influx_count(influx_url, db) == 1201, what="1201 points in InfluxDB")
    db_path = tmp_path / "s" / "store.sqlite"
    wait_for(lambda: SqliteStore(db_path).point_count() == 1201, what="1201 points in SQLite")
    assert via_sqlite.stop() == 0 and via_influx.stop() == 0
    sqlite = SqliteStore(db_path)
    influx = InfluxStore(InfluxStoreSettings(kind="influxdb", url=influx_url, database=db))
    end = T0 + timedelta(days=1)
    a = {t.meter: t for t in sqlite.totals(SITE, T0, end)}
    b = {t.meter: t for t in influx.totals(SITE, T0, end)}
    assert sorted(a) == sorted(b) == ["paint-oven", "press-1"]
    for m in a:
        assert (a[m].points, a[m].scope, a[m].factor_ids) == (b[m].points, b[m].scope, b[m].factor_ids)
        assert a[m].energy == pytest.approx(b[m].energy) and a[m].co2e_kg == pytest.approx(b[m].co2e_kg)
    assert a["press-1"].energy == pytest.approx(sum(0.2 + (i % 13) * 0.05 for i in range(600)))
    power_a = [(v.meter, v.value) for v in sqlite.latest_values(SITE) if v.quantity == "active_power"]
    power_b = [(v.meter, v.value) for v in influx.latest_values(SITE) if v.quantity == "active_power"]
    assert power_a == power_b == [("press-2", 5.0)]
    sqlite.close()
    influx.close()


@pytest.mark.integration
def test_influxdb_stopped_and_started_again_loses_nothing(mqtt_url: str, influxdb: InfluxDB, tmp_path: Path) -> None:
    db = "outage"
    proc = IngestProcess(influx_plant(tmp_path, mqtt_url, influxdb.url, db, "ingest-outage"),
                         tmp_path / "metrics-ingest-outage.json", tmp_path)
    proc.start()
    msgs = day_of_messages("press-1", T0, 900, 10, lambda i: 1.0 + (i % 3))
    pub = Publisher(mqtt_url)
    pub.publish(msgs[:30])
    wait_for(lambda: influx_count(influxdb.url, db) == 300, what="the first 300 points")
    influxdb.stop()
    pub.publish(msgs[30:])
    wait_for(lambda: proc.read_metrics().get("buffered", 0) > 0, what="messages going to the disk buffer")
    influxdb.start()
    wait_for(lambda: influx_count(influxdb.url, db) == 900, timeout_s=60, what="all 900 points after the outage")
    wait_for(lambda: proc.read_metrics().get("buffered") == 0, what="the buffer to drain")
    pub.close()
    assert proc.stop() == 0
    store = InfluxStore(InfluxStoreSettings(kind="influxdb", url=influxdb.url, database=db))
    (total,) = store.totals(SITE, T0, T0 + timedelta(days=1))
    assert total.points == 900 and total.energy == pytest.approx(sum(1.0 + (i % 3) for i in range(900)))
    store.close()


@pytest.mark.integration
def test_full_buffer_stops_acking_and_nothing_is_dropped(mqtt_url: str, influxdb: InfluxDB, tmp_path: Path) -> None:
    db = "pressure"
    # a buffer of ~4 KB holds only a few of these ~1.3 KB messages
    proc = IngestProcess(influx_plant(tmp_path, mqtt_url, influxdb.url, db, "ingest-pressure",
                                      "buffer_max_mb = 0.004\nbatch_max_messages = 1"),
                         tmp_path / "metrics-ingest-pressure.json", tmp_path)
    proc.start()
    influxdb.stop()
    msgs = day_of_messages("press-2", T0, 400, 10, lambda i: 0.5)
    pub = Publisher(mqtt_url)
    pub.publish(msgs)
    wait_for(lambda: proc.read_metrics().get("store_errors", 0) >= 3, what="the store to be seen down")
    metrics = proc.read_metrics()
    cap = int(0.004 * 1024 * 1024)
    assert 0 < metrics["buffered"] < len(msgs)
    assert sum(len(p) for _, p in msgs[:metrics["buffered"]]) <= cap  # the bound held: the rest stayed unacked
    assert metrics["stored"] == 0
    influxdb.start()
    wait_for(lambda: influx_count(influxdb.url, db) == 400, timeout_s=60, what="all 400 points")
    pub.close()
    assert proc.stop() == 0
