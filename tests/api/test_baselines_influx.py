"""The same baseline and performance through the API over a real InfluxDB store as over SQLite: both filled through
ingest's converter with the same hours of a known model, the fitted terms and the performance figures agree."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.auth import KeyRing
from api.main import create_app
from ingest.config import InfluxStoreSettings
from ingest.store.influx import InfluxStore
from tests.api.baseline_data import T0, BaselineEnv, Model, fill, generate

MODEL = Model()
BASELINE = {"id": "m1", "scope": "line", "target": "l1", "resolution": "daily", "period_start": T0.isoformat(),
            "period_end": (T0 + timedelta(days=40)).isoformat(),
            "drivers": [{"name": "pieces", "production_of": "line", "target": "l1"},
                        {"name": "hdd", "variable": "temp", "transform": "heating_degree_days"}]}
WINDOW = {"baseline": "m1", "from": (T0 + timedelta(days=40)).isoformat(),
          "to": (T0 + timedelta(days=45)).isoformat(), "resolution": "hourly"}


@pytest.fixture(scope="module")
def clients(tmp_path_factory: pytest.TempPathFactory, influx_url: str) -> Iterator[dict[str, TestClient]]:
    env = BaselineEnv(tmp_path_factory.mktemp("influx-baselines"))
    env.clock.now = datetime(2026, 4, 1, tzinfo=UTC)
    hours = generate(MODEL, T0, 45 * 24)
    fill(env.store, hours, MODEL.m2_kwh)
    influx = InfluxStore(InfluxStoreSettings(kind="influxdb", url=influx_url, database=f"b{uuid.uuid4().hex[:12]}"))
    fill(influx, hours, MODEL.m2_kwh)
    settings = env.settings()
    influx_settings = settings.model_copy(update={"api": settings.api.model_copy(
        update={"db_path": str(env.tmp / "api-influx.sqlite")})})
    influx_app = create_app(influx_settings, influx, KeyRing.load(env.keys_file), clock=env.clock)
    with TestClient(env.app()) as sqlite_client, TestClient(influx_app) as influx_client:
        yield {"sqlite": sqlite_client, "influxdb": influx_client, "headers": env.h("engineer")}  # type: ignore[dict-item]


def test_both_stores_give_the_same_fit_and_performance(clients: dict[str, Any]) -> None:
    h = clients["headers"]
    fits = {k: clients[k].post("/v1/baselines", json=BASELINE, headers=h) for k in ("sqlite", "influxdb")}
    for k, resp in fits.items():
        assert resp.status_code == 201, (k, resp.text)
    terms = {k: {t["name"]: t["value"] for t in r.json()["model"]["terms"]} for k, r in fits.items()}
    assert terms["influxdb"] == pytest.approx(terms["sqlite"], rel=1e-9)
    assert fits["influxdb"].json()["model"]["stats"]["n"] == 40
    perf = {k: clients[k].get("/v1/performance", params=WINDOW, headers=h).json() for k in ("sqlite", "influxdb")}
    for name in ("actual", "expected", "cusum", "actual_co2e_kg", "expected_co2e_kg"):
        assert perf["influxdb"]["series"][name] == pytest.approx(perf["sqlite"]["series"][name], rel=1e-9, abs=1e-6)
    assert perf["influxdb"]["series"]["drivers"] == perf["sqlite"]["series"]["drivers"]
    assert len(perf["sqlite"]["series"]["start"]) == 5 * 24
