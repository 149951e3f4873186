"""Two sites in one store, with the same meter ids: two meters each, every figure exact per site (SQLite and
InfluxDB), also with two ingest processes (one per site, each its own plant file) writing one store."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from calc import topics
from ingest.config import InfluxStoreSettings
from ingest.points import Batch, DeadLetter
from ingest.store.influx import InfluxStore
from ingest.store.sqlite import SqliteStore
from tests.ingest.helpers import (
    OTHER_SITE,
    SITE,
    STORE_NOW_US,
    T0,
    IngestProcess,
    Publisher,
    counter_batch,
    day_of_messages,
    plant_file,
    wait_for,
)

Store = SqliteStore | InfluxStore
DAY = T0 + timedelta(days=1)


@pytest.fixture(params=["sqlite", "influxdb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        s: Store = SqliteStore(tmp_path / "s.sqlite")
    else:
        url = request.getfixturevalue("influx_url")
        s = InfluxStore(InfluxStoreSettings(kind="influxdb", url=url, database=f"t{uuid.uuid4().hex[:12]}"))
    yield s
    s.close()


def by_meter(store: Store, site: str) -> dict[str, tuple[str, int, float]]:
    return {t.meter: (t.area, t.points, t.energy) for t in store.totals(site, T0, DAY)}


@pytest.mark.integration
def test_the_same_meter_ids_on_two_sites_are_two_meters(store: Store) -> None:
    # same meters, same times, other readings: on one site these would be conflicts
    demo = counter_batch("m1", T0, 120, 60, kwh=1.0)
    north = counter_batch("m1", T0, 120, 60, kwh=2.0, site=OTHER_SITE)
    north_m2 = counter_batch("m2", T0, 30, 60, kwh=0.5, site=OTHER_SITE)
    for batch in (demo, north, north_m2):
        result = store.write(batch)
        assert (result.stored, result.duplicates, result.conflicts) == (len(batch.points), 0, 0)
    assert by_meter(store, SITE) == {"m1": ("a1", 120, 120.0)}
    assert by_meter(store, OTHER_SITE) == {"m1": ("n1", 120, 240.0), "m2": ("n2", 30, 15.0)}
    # a replay of one site's readings is a duplicate there and nowhere else; a changed one a conflict there
    again = store.write(counter_batch("m1", T0, 120, 60, kwh=2.0, site=OTHER_SITE))
    assert (again.stored, again.duplicates, again.conflicts) == (0, 120, 0)
    changed = store.write(counter_batch("m1", T0, 1, 60, kwh=5.0, site=OTHER_SITE))
    assert (changed.conflicts, changed.dead_lettered) == (1, 1)
    assert [d.reason[:9] for d in store.dead_letters(OTHER_SITE)] == ["conflict:"] and store.dead_letters(SITE) == []
    assert by_meter(store, SITE) == {"m1": ("a1", 120, 120.0)}
    assert by_meter(store, OTHER_SITE)["m1"] == ("n1", 120, 240.0)
    summaries = {site: [(m.meter, m.area, m.samples) for m in store.meter_summaries(site)]
                 for site in (SITE, OTHER_SITE)}
    assert summaries == {SITE: [("m1", "a1", 120)], OTHER_SITE: [("m1", "n1", 120), ("m2", "n2", 30)]}
    latest = {site: [(v.meter, v.site, v.value) for v in store.latest_values(site)] for site in (SITE, OTHER_SITE)}
    assert latest == {SITE: [("m1", SITE, 100 + 119 * 1.0)],
                      OTHER_SITE: [("m1", OTHER_SITE, 100 + 119 * 2.0), ("m2", OTHER_SITE, 100 + 29 * 0.5)]}
    dead = Batch(dead=[DeadLetter(STORE_NOW_US, topics.reading(SITE, "a1", "m1"), b"x", "for demo", "m1")])
    store.write(dead)
    assert [d.reason for d in store.dead_letters(SITE)] == ["for demo"]


def test_sqlite_flat_view_and_api_series_keep_the_sites_apart(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite")
    store.write(counter_batch("m1", T0, 120, 60, kwh=1.0))
    store.write(counter_batch("m1", T0, 120, 60, kwh=2.0, site=OTHER_SITE))
    rows = store._query("SELECT site, meter, area, COUNT(*), SUM(energy) FROM points_full GROUP BY site, meter")
    assert rows == [(SITE, "m1", "a1", 120, 120.0), (OTHER_SITE, "m1", "n1", 120, 240.0)]
    history = store  # series and factor usage are the store's own (ingest.store.base.StoreReader)
    for step in ("1m", "15m", "1h", "1d"):
        for site, area, kwh in ((SITE, "a1", 120.0), (OTHER_SITE, "n1", 240.0)):
            series = history.series(site, T0 - timedelta(days=1), DAY, step, "UTC")
            assert {(p.meter, p.area) for p in series} == {("m1", area)}, (step, site)
            assert sum(p.energy for p in series) == pytest.approx(kwh), (step, site)
    (use,) = history.factor_usage(OTHER_SITE, T0, DAY)
    assert use.points == 120
    store.close()


def test_api_day_series_of_a_half_hour_time_zone_are_cut_at_local_midnight(tmp_path: Path) -> None:
    """Asia/Kolkata is +05:30: its days start at 18:30 UTC, inside an hour bucket; quarter hours cut them."""
    store = SqliteStore(tmp_path / "s.sqlite")
    store.write(counter_batch("m1", T0 + timedelta(hours=17), 180, 60, kwh=1.0, site=OTHER_SITE))  # 17:00-20:00
    history = store
    days = history.series(OTHER_SITE, T0, DAY, "1d", "Asia/Kolkata")
    assert [(p.start.isoformat(), p.points) for p in days] == [("2026-02-28T18:30:00+00:00", 90),
                                                               ("2026-03-01T18:30:00+00:00", 90)]
    store.close()


# ---- two ingest processes, one per site, one store ------------------------------------------------------------

def ingest_pair(tmp_path: Path, mqtt_url: str, store: str, sites: tuple[str, str]) -> list[IngestProcess]:
    procs = []
    for site in sites:
        folder = tmp_path / site
        folder.mkdir()
        client = f"two-{site}-{uuid.uuid4().hex[:6]}"
        config = plant_file(folder, mqtt_url, client_id=client, store=store, site=site,
                            ingest_extra=f'buffer_path = "{folder / "buffer.sqlite"}"')
        procs.append(IngestProcess(config, folder / f"metrics-{client}.json", folder))
    return procs


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["sqlite", "influxdb"])
def test_two_ingest_processes_one_per_site_write_one_store_and_both_are_exact(
        kind: str, mqtt_url: str, influx_url: str, tmp_path: Path) -> None:
    database = f"two{uuid.uuid4().hex[:10]}"
    store_toml = (f'[store]\nkind = "sqlite"\npath = "{tmp_path / "shared.sqlite"}"' if kind == "sqlite" else
                  f'[store]\nkind = "influxdb"\nurl = "{influx_url}"\ndatabase = "{database}"')
    # sites of this test alone: the shared broker keeps other tests' persistent sessions on "demo" topics
    sites = (f"a{uuid.uuid4().hex[:8]}", f"b{uuid.uuid4().hex[:8]}")
    procs = ingest_pair(tmp_path, mqtt_url, store_toml, sites)
    try:
        for proc in procs:
            proc.start()
        kwh: dict[str, Any] = {sites[0]: lambda i: 0.5 + (i % 7) * 0.1, sites[1]: lambda i: 2.0 - (i % 5) * 0.25}
        msgs = [m for site in sites for meter in ("press-1", "paint-oven")
                for m in day_of_messages(meter, T0, 300, 20, kwh[site], site=site)]
        pub = Publisher(mqtt_url)
        pub.publish(msgs)
        pub.close()
        wait_for(lambda: all(p.read_metrics().get("stored", 0) == 600 for p in procs), timeout_s=60,
                 what="600 readings stored by each ingest")
        for proc in procs:
            assert proc.stop() == 0
        shared: Store = (SqliteStore(tmp_path / "shared.sqlite") if kind == "sqlite" else
                         InfluxStore(InfluxStoreSettings(kind="influxdb", url=influx_url, database=database)))
        for site in sites:
            got = {t.meter: (t.points, t.energy) for t in shared.totals(site, T0, DAY)}
            want = sum(kwh[site](i) for i in range(300))
            assert got.keys() == {"press-1", "paint-oven"}, site
            for meter in got:
                assert got[meter][0] == 300 and got[meter][1] == pytest.approx(want), (site, meter)
            assert shared.dead_letters(site) == []
        shared.close()
    finally:
        for proc in procs:
            if proc.proc is not None and proc.proc.poll() is None:
                proc.kill()
