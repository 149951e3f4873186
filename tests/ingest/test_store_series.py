"""Series and factor usage are part of the store contract: the InfluxDB store (GROUP BY time() tz() in a real
influxd) gives the same buckets and sums as the SQLite store's rollups for the same points, for every step, in
UTC, a whole-hour zone, a half-hour zone and two zones with a DST change inside the data."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ingest.config import InfluxStoreSettings
from ingest.points import FACTOR, TS, Batch, FactorInfo, ts_to_us
from ingest.store.base import SeriesPoint, Store
from ingest.store.influx import InfluxStore
from ingest.store.sqlite import SqliteStore
from tests.ingest.helpers import SITE, counter_batch

START = datetime(2026, 3, 27, 20, tzinfo=UTC)   # 56 h of data across Europe/Berlin's DST start (29 March, 01:00 UTC)
WINDOW = (datetime(2026, 3, 26, tzinfo=UTC), datetime(2026, 3, 31, tzinfo=UTC))
OTHER = FactorInfo("scope2_location", "other-grid", "v9", "kWh")
SWITCH = (datetime(2026, 3, 28, 10, 20, tzinfo=UTC), datetime(2026, 3, 28, 10, 40, tzinfo=UTC))
ZONES = ("UTC", "Asia/Shanghai", "Asia/Kolkata", "Europe/Berlin", "America/New_York")


def batches() -> list[Batch]:
    """m1: 1 kWh a minute for 56 h, 20 of its minutes under another factor; m2: 2.5 kWh every 5 min."""
    m1 = counter_batch("m1", START, 56 * 60, 60, kwh=1.0)
    lo, hi = ts_to_us(SWITCH[0]), ts_to_us(SWITCH[1])
    points = [list(p) for p in m1.points]
    for p in points:
        if lo <= p[TS] < hi:
            p[FACTOR] = OTHER.ref
    m1.points, m1.counted = points, None
    m1.factors = {**m1.factors, OTHER.ref: OTHER}
    return [m1, counter_batch("m2", START, 56 * 12, 300, kwh=2.5, seq=100)]


@pytest.fixture(scope="module")
def stores(influx_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, Store]]:
    sqlite = SqliteStore(tmp_path_factory.mktemp("series") / "s.sqlite")
    influx = InfluxStore(InfluxStoreSettings(kind="influxdb", url=influx_url, database=f"series{uuid.uuid4().hex[:8]}"))
    try:
        for batch in batches():
            assert sqlite.write(batch).stored == influx.write(batch).stored == len(batch.points)
        yield sqlite, influx
    finally:
        sqlite.close()
        influx.close()


def key(points: list[SeriesPoint]) -> list[tuple[Any, ...]]:
    return [(p.start, p.meter, p.area, p.carrier, p.scope, p.energy_unit, p.points, round(p.energy, 6),
             round(p.co2e_kg, 6), round(p.estimated_energy, 6)) for p in points]


@pytest.mark.integration
@pytest.mark.parametrize("tz", ZONES)
@pytest.mark.parametrize("step", ["1m", "15m", "1h", "1d"])
def test_influxdb_series_equal_the_sqlite_series(stores: tuple[Store, Store], step: str, tz: str) -> None:
    sqlite, influx = stores
    a, b = sqlite.series(SITE, *WINDOW, step, tz), influx.series(SITE, *WINDOW, step, tz)
    assert key(a) == key(b)
    assert sum(p.points for p in a if p.meter == "m1") == 56 * 60 and len(a) > 2


@pytest.mark.integration
def test_day_buckets_start_at_local_midnight_and_a_dst_day_has_23_hours(stores: tuple[Store, Store]) -> None:
    for store in stores:
        days = [(p.start, p.points) for p in store.series(SITE, *WINDOW, "1d", "Europe/Berlin") if p.meter == "m1"]
        assert days == [(datetime(2026, 3, 26, 23, tzinfo=UTC), 3 * 60),     # 27 March: 21:00-24:00 local
                        (datetime(2026, 3, 27, 23, tzinfo=UTC), 24 * 60),
                        (datetime(2026, 3, 28, 23, tzinfo=UTC), 23 * 60),    # 29 March: clocks go forward
                        (datetime(2026, 3, 29, 22, tzinfo=UTC), 6 * 60)], type(store).__name__
        shanghai = [p.start for p in store.series(SITE, *WINDOW, "1d", "Asia/Shanghai")]
        assert {s.hour for s in shanghai} == {16}


@pytest.mark.integration
def test_influxdb_factor_usage_equals_the_sqlite_one(stores: tuple[Store, Store]) -> None:
    sqlite, influx = stores
    a, b = sqlite.factor_usage(SITE, *WINDOW), influx.factor_usage(SITE, *WINDOW)
    assert a == b
    other = next(u for u in a if u.factor_id == OTHER.factor_id)
    assert (other.factor_version, other.first, other.last, other.points) == ("v9", SWITCH[0].replace(minute=0),
                                                                             SWITCH[0].replace(minute=0), 20)
    assert sum(u.points for u in a) == 56 * 60 + 56 * 12
    # InfluxDB reads points, not hour rollups: a window cut inside the hour where the factor changed counts only
    # what lies in it
    cut = (SWITCH[0] + timedelta(minutes=5), SWITCH[1] + timedelta(hours=1))
    assert sum(u.points for u in influx.factor_usage(SITE, *cut) if u.factor_id == "other-grid") == 15

