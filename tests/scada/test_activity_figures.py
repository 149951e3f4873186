"""SCADA's site and area CO2e include manual activity entries exactly as the API's balance does (a real SQLite store
and API database; the entry added through /v1/activity); a meter's own figure does not."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from calc.plant import parse_plant
from scada.figures import collect, compute
from scada.ledger import ApiRecords
from tests.api.conftest import Env, env, fill_store, hourly, plant_data

__all__ = ["env"]   # fixture

DIESEL_KG_PER_T = 42.652 * 20.2 * 0.98 * 44 / 12   # GB/T 32150 defaults, kg CO2 per t of diesel


def test_scada_counts_manual_entries_as_the_api(env: Env) -> None:
    fill_store(env.store, plant_data(), {"m1": hourly(datetime(2026, 3, 10, tzinfo=UTC), 12, 10.0)})
    with TestClient(env.app()) as c:
        made = c.post("/v1/activity", headers=env.h("engineer"), json={
            "kind": "fuel", "start": "2026-03-10", "quantity": 1.5, "unit": "t", "carrier": "diesel", "area": "b",
            "evidence": "delivery note DN-5"})
        assert made.status_code == 201, made.text
        h = env.h("viewer")
        today = c.get("/v1/balance", params={"period": "today"}, headers=h).json()
        month = c.get("/v1/balance", params={"period": "month"}, headers=h).json()
        area_b = c.get("/v1/balance", params={"period": "today", "area": "b"}, headers=h).json()
        meter_m1 = c.get("/v1/balance", params={"period": "today", "meter": "m1"}, headers=h).json()
    p = parse_plant(plant_data())
    snap = compute(p, collect(p, env.store, ApiRecords(env.tmp / "api.sqlite"), env.clock.now, {}), 60.0)
    figs: dict[str, Any] = {k: {n: f.value for n, f in v.figures.items()} for k, v in snap.items.items()}
    assert today["manual_co2e_kg"] == pytest.approx(1.5 * DIESEL_KG_PER_T, rel=1e-12)
    assert figs["site:s1"]["TodayCO2e"] == pytest.approx(today["co2e_kg"], rel=1e-12)
    assert figs["site:s1"]["MonthCO2e"] == pytest.approx(month["co2e_kg"], rel=1e-12)
    assert figs["area:b"]["TodayCO2e"] == pytest.approx(area_b["co2e_kg"]) == pytest.approx(1.5 * DIESEL_KG_PER_T)
    assert figs["meter:m1"]["TodayCO2e"] == pytest.approx(meter_m1["co2e_kg"], rel=1e-12)
    assert figs["site:s1"]["TodayCO2e"] == pytest.approx(meter_m1["co2e_kg"] + 1.5 * DIESEL_KG_PER_T, rel=1e-12)
