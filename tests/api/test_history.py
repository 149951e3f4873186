"""History series from the real SQLite store's rollups: buckets, grouping, local days, CSV = JSON; factor usage."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from calc.factors import default_factor_set
from ingest.store.base import SeriesPoint, StoreReader
from ingest.store.buckets import bucket_start
from ingest.store.sqlite import SqliteStore
from tests.api.conftest import Env, fill_store, hourly, plant_data

DAY = datetime(2026, 3, 2, tzinfo=UTC)


@pytest.fixture
def filled(env: Env) -> Env:
    # m1: 1 kWh every hour for 48 h from 2 March 00:00 UTC; m3: 3 kWh every hour for the first 6 h
    fill_store(env.store, plant_data(), {"m1": hourly(DAY, 48, 1.0), "m3": hourly(DAY, 6, 3.0)})
    return env


def test_hourly_series_per_meter_and_daily_per_area(filled: Env) -> None:
    f = default_factor_set().grid_factor("CN", DAY.date()).value
    with TestClient(filled.app()) as c:
        h = filled.h("viewer")
        window = {"from": DAY.isoformat(), "to": (DAY + timedelta(days=2)).isoformat()}
        hours = c.get("/v1/history", params={**window, "step": "1h", "group": "meter"}, headers=h).json()
        days = c.get("/v1/history", params={**window, "step": "1d", "group": "area"}, headers=h).json()
        text = c.get("/v1/history", params={**window, "step": "1d", "group": "area", "format": "csv"},
                     headers=h).text
        only_b = c.get("/v1/history", params={**window, "step": "1h", "area": "b"}, headers=h).json()
    m1 = [b for b in hours["buckets"] if b["boundary"] == "m1"]
    assert len(m1) == 48 and all(b["energy"] == pytest.approx(1.0) and b["points"] == 1 for b in m1)
    assert [b["energy"] for b in hours["buckets"] if b["boundary"] == "m3"] == pytest.approx([3.0] * 6)
    assert [(b["start"][:10], b["boundary"], round(b["energy"], 6)) for b in days["buckets"]] == [
        ("2026-03-02", "a", 24.0), ("2026-03-02", "b", 18.0), ("2026-03-03", "a", 24.0)]
    assert days["buckets"][0]["co2e_kg"] == pytest.approx(24.0 * f)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["boundary"], float(r["energy"]), float(r["co2e_kg"])) for r in rows] == [
        (b["boundary"], b["energy"], b["co2e_kg"]) for b in days["buckets"]]
    assert {b["boundary"] for b in only_b["buckets"]} == {"s1"} and len(only_b["buckets"]) == 6


def test_too_many_buckets_is_a_clear_422(env: Env) -> None:
    with TestClient(env.app()) as c:
        resp = c.get("/v1/history", params={"period": "year", "step": "1m"}, headers=env.h("viewer"))
    assert resp.status_code == 422 and "buckets" in resp.json()["detail"][0]["msg"]


def by_totals(store: StoreReader, site: str, start: datetime, end: datetime, tz: str) -> list[SeriesPoint]:
    """Local-day buckets asked of `totals` one day at a time (what a store without series would have to do)."""
    out = []
    cur = bucket_start(start, 86400, tz)
    while cur < end:
        nxt = bucket_start(cur + timedelta(hours=26), 86400, tz)
        for t in store.totals(site, max(cur, start), min(nxt, end)):
            out.append(SeriesPoint(cur, t.meter, t.area, t.carrier, t.scope, t.energy, t.energy_unit, t.co2e_kg,
                                   t.points, t.estimated_energy, t.estimated_co2e_kg))
        cur = nxt
    return out


def test_the_stores_series_agree_with_its_totals_bucket_by_bucket(filled: Env) -> None:
    """The store's series (from its rollups) gives the same day buckets as its `totals` asked day by day."""
    store = SqliteStore(filled.tmp / "store.sqlite")
    fast = store.series("s1", DAY, DAY + timedelta(days=2), "1d", "Asia/Shanghai")
    slow = by_totals(store, "s1", DAY, DAY + timedelta(days=2), "Asia/Shanghai")
    key = [(p.start, p.meter, round(p.energy, 9), round(p.co2e_kg, 9)) for p in fast]
    assert key == [(p.start, p.meter, round(p.energy, 9), round(p.co2e_kg, 9)) for p in slow]
    # local days in Shanghai start at 16:00 UTC: the first bucket holds 2 March 00:00-15:59 UTC
    assert fast[0].start == datetime(2026, 3, 1, 16, tzinfo=UTC) and fast[0].energy == pytest.approx(16.0)
    store.close()


def test_factor_usage_names_the_version_and_when(filled: Env) -> None:
    with TestClient(filled.app()) as c:
        used = c.get("/v1/factor-usage", params={"from": DAY.isoformat(), "to": "2026-03-10T00:00:00Z"},
                     headers=filled.h("viewer")).json()["used"]
        sets = c.get("/v1/factor-sets", headers=filled.h("viewer")).json()
    choice = default_factor_set().grid_factor("CN", DAY.date())
    assert [(u["factor_id"], u["factor_version"]) for u in used] == [(choice.factor_id, choice.version)]
    assert used[0]["first"].startswith("2026-03-02T00:00") and used[0]["last"].startswith("2026-03-03T23:00")
    assert sets[0]["name"] == "default" and sets[0]["version"] == choice.set_version
