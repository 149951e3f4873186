"""/v1/measures over a real SQLite store: a baseline fitted on 60 days of energy from a known model, then a
measure that cuts m1's energy by 15 % from day 62 10:00. The measure's lifecycle (planned, implemented, retired)
is audited and the chain verifies; its verified savings (whole days after it took effect) equal a hand
computation from the store's own rows and the stored coefficients."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.api.baseline_data import HDD_BASE_C, SITE, T0, BaselineEnv, Model, fill, generate

MODEL = Model()
FIT_DAYS, ALL_DAYS = 60, 74
IMPLEMENTED = T0 + timedelta(days=62, hours=10)
FIRST_DAY, END = T0 + timedelta(days=63), T0 + timedelta(days=ALL_DAYS)
BASELINE = {"id": "m1", "scope": "meter", "target": "m1", "resolution": "daily", "period_start": T0.isoformat(),
            "period_end": (T0 + timedelta(days=FIT_DAYS)).isoformat(),
            "drivers": [{"name": "pieces", "variable": "out-1"},
                        {"name": "hdd", "variable": "temp", "transform": "heating_degree_days"}]}
MEASURE: dict[str, Any] = {"title": "VSD on the press hydraulics", "owner": "maintenance", "status": "planned",
                           "cost": 120000, "cost_currency": "CNY", "resources": "two fitters, one week",
                           "planned_start": "2026-03-01", "meters": ["m1"], "areas": ["press"],
                           "expected_savings": 15, "expected_savings_unit": "%", "baseline_id": "m1"}


def by_hand(env: BaselineEnv, coef: dict[str, float]) -> tuple[float, float, float]:
    """(Σ expected, Σ actual, Σ (expected − actual) × the day's kg per kWh) over the whole days after the measure,
    from the store's hourly rows and the model's coefficients (intercept per day)."""
    days = (END - FIRST_DAY).days
    energy, co2e, pieces, hdd = (np.zeros(days) for _ in range(4))
    for r in env.store.series(SITE, FIRST_DAY, END, "1h", "UTC"):
        if r.meter == "m1":
            i = (r.start - FIRST_DAY).days
            energy[i] += r.energy
            co2e[i] += r.co2e_kg
    for v in env.store.variable_series(SITE, FIRST_DAY, END, "1h", "UTC"):
        assert v.start is not None
        i = (v.start - FIRST_DAY).days
        if v.variable == "out-1":
            pieces[i] += v.total or 0.0
        elif v.variable == "temp" and v.mean is not None:
            hdd[i] += max(HDD_BASE_C - v.mean, 0.0) / 24.0
    expected = coef["intercept"] + coef["pieces"] * pieces + coef["hdd"] * hdd
    return float(expected.sum()), float(energy.sum()), float(((expected - energy) * co2e / energy).sum())


def test_measure_lifecycle_and_verified_savings(tmp_path: Any) -> None:
    env = BaselineEnv(tmp_path)
    env.clock.now = END
    fill(env.store, generate(MODEL, T0, ALL_DAYS * 24, waste_from=IMPLEMENTED, waste_factor=0.85), MODEL.m2_kwh)
    with TestClient(env.app(tick_s=3600)) as c:
        eng = env.h("engineer")
        assert c.post("/v1/baselines", json=BASELINE, headers=eng).status_code == 201
        assert c.post("/v1/measures", json={"id": "vsd", **MEASURE}, headers=env.h("viewer")).status_code == 403
        made = c.post("/v1/measures", json={"id": "vsd", **MEASURE}, headers=eng)
        assert made.status_code == 201, made.text
        assert c.get("/v1/measures/vsd", headers=env.h("viewer")).json()["verified_savings"] is None

        done = {**MEASURE, "status": "implemented", "implemented_at": IMPLEMENTED.isoformat()}
        assert c.put("/v1/measures/vsd", json=done, headers=eng).json()["version"] == 2
        doc = c.get("/v1/measures/vsd", headers=env.h("viewer")).json()
        s = doc["verified_savings"]
        coef = {t["name"]: t["value"] for t in c.get("/v1/baselines/m1", headers=eng).json()["model"]["terms"]}
        expected, actual, saved_kg = by_hand(env, coef)
        assert (s["baseline"], s["baseline_version"], s["resolution"], s["energy_unit"]) == ("m1", 1, "daily", "kWh")
        assert (s["start"], s["end"], s["periods"]) == (FIRST_DAY.isoformat().replace("+00:00", "Z"),
                                                       END.isoformat().replace("+00:00", "Z"), 11)
        assert s["expected_energy"] == pytest.approx(expected, rel=1e-9)
        assert s["actual_energy"] == pytest.approx(actual, rel=1e-12)
        assert s["savings_energy"] == pytest.approx(expected - actual, rel=1e-9)
        assert s["savings_co2e_kg"] == pytest.approx(saved_kg, rel=1e-9)
        assert 10.0 < s["savings_pct"] < 20.0          # the 15 % cut, within the model's noise
        assert c.get("/v1/measures", headers=env.h("viewer")).json()[0]["verified_savings"] == s
        # a retired baseline verifies nothing, and the measure says why
        assert c.delete("/v1/baselines/m1", headers=eng).status_code == 200
        doc = c.get("/v1/measures/vsd", headers=env.h("viewer")).json()
        assert doc["verified_savings"] is None and "retired" in doc["savings_refused"]

        assert c.delete("/v1/measures/vsd", headers=eng).json()["active"] is False
        assert c.get("/v1/measures", headers=env.h("viewer")).json() == []
        versions = c.get("/v1/measures/vsd", headers=env.h("viewer")).json()["versions"]
        assert [(v["version"], v["spec"]["status"], v["active"]) for v in versions] == [
            (1, "planned", True), (2, "implemented", True), (3, "implemented", False)]
        rows = c.get("/v1/audit", params={"entity": "measure"}, headers=env.h("admin")).json()["rows"]
        assert [(r["action"], r["actor"]) for r in rows] == [("create", "engineer"), ("update", "engineer"),
                                                             ("retire", "engineer")]
        assert c.get("/v1/audit/verify", headers=env.h("viewer")).json()["ok"] is True


@pytest.mark.parametrize("change", [{"baseline_id": "nope"}, {"meters": ["m9"]}, {"areas": ["nowhere"]},
                                    {"status": "implemented"}, {"cost_currency": None}, {"target_id": "nope"}])
def test_measures_refused(tmp_path: Any, change: dict[str, Any]) -> None:
    env = BaselineEnv(tmp_path)
    with TestClient(env.app(tick_s=3600)) as c:
        body = {"id": "m", **MEASURE, "baseline_id": None, **change}
        assert c.post("/v1/measures", json=body, headers=env.h("engineer")).status_code == 422
