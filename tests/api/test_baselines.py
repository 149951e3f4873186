"""Baselines through the API over a real SQLite store filled through ingest's converter with energy from a known
model (a + b·production + c·HDD + seeded noise): the fit recovers a, b and c within their 95 % intervals; a model
that misses its limits is refused with each limit and its value and nothing is stored; versions, retirement,
the audit log, roles and the read the deviation rule uses."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from records.baselines import Baselines
from tests.api.baseline_data import T0, BaselineEnv, Model, fill, generate

MODEL = Model()
DAYS = 60
PERIOD = {"period_start": T0.isoformat(), "period_end": (T0 + timedelta(days=DAYS)).isoformat()}
DRIVERS = [{"name": "pieces", "variable": "out-1"},
           {"name": "hdd", "variable": "temp", "transform": "heating_degree_days"}]
M1_DAILY = {"id": "m1-daily", "scope": "meter", "target": "m1", "resolution": "daily", **PERIOD, "drivers": DRIVERS}


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> BaselineEnv:
    env = BaselineEnv(tmp_path_factory.mktemp("baselines"))
    fill(env.store, generate(MODEL, T0, DAYS * 24), MODEL.m2_kwh)
    return env


@pytest.fixture
def env(filled: BaselineEnv) -> Iterator[BaselineEnv]:
    """The filled store (module-wide) with a fresh API database per test."""
    yield filled
    (filled.tmp / "api.sqlite").unlink(missing_ok=True)
    for suffix in ("-wal", "-shm"):
        (filled.tmp / f"api.sqlite{suffix}").unlink(missing_ok=True)


@pytest.fixture
def client(env: BaselineEnv) -> Iterator[TestClient]:
    with TestClient(env.app()) as c:
        yield c


def terms(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in doc["model"]["terms"]}


def within_ci(term: dict[str, Any], truth: float) -> None:
    assert term["ci95_low"] <= truth <= term["ci95_high"], (term, truth)
    # and the interval is informative, so the check above could fail
    assert term["ci95_high"] - term["ci95_low"] < 0.25 * abs(truth), term


def test_fit_recovers_the_models_coefficients(client: TestClient, env: BaselineEnv) -> None:
    resp = client.post("/v1/baselines", json=M1_DAILY, headers=env.h("engineer"))
    assert resp.status_code == 201, resp.text
    doc = resp.json()
    assert (doc["id"], doc["version"], doc["active"], doc["created_by"]) == ("m1-daily", 1, True, "engineer")
    t = terms(doc)
    within_ci(t["intercept"], 24 * MODEL.a)      # a daily model: a is per hour
    within_ci(t["pieces"], MODEL.b)
    within_ci(t["hdd"], MODEL.c)
    assert (t["intercept"]["unit"], t["pieces"]["unit"], t["hdd"]["unit"]) == (
        "kWh", "kWh / (count)", "kWh / (K * d)")
    stats = doc["model"]["stats"]
    assert stats["n"] == DAYS and stats["r2"] > 0.75 and stats["cv_rmse"] < 0.30
    assert doc["model"]["carrier"] == "electricity" and doc["model"]["subject"] == "s1/meter/m1"
    assert doc["model_version"].startswith("sha256-") and doc["period_hours"] == 24.0

    # the line's meters added up (m2 draws a flat m2_kwh), on the line's production added up
    line = {"id": "l1", "scope": "line", "target": "l1", "resolution": "daily", **PERIOD,
            "drivers": [{"name": "pieces", "production_of": "line", "target": "l1"}, DRIVERS[1]]}
    resp = client.post("/v1/baselines", json=line, headers=env.h("admin"))
    assert resp.status_code == 201, resp.text
    within_ci(terms(resp.json())["intercept"], 24 * (MODEL.a + MODEL.m2_kwh))
    within_ci(terms(resp.json())["pieces"], MODEL.b)

    listed = client.get("/v1/baselines", headers=env.h("viewer")).json()
    assert [b["id"] for b in listed] == ["l1", "m1-daily"]
    audit = client.get("/v1/audit", params={"entity": "baseline"}, headers=env.h("viewer")).json()["rows"]
    assert [(r["action"], r["entity_id"], r["actor"]) for r in audit] == [
        ("create", "m1-daily", "engineer"), ("create", "l1", "admin")]


def test_hourly_fit_recovers_the_hourly_model(client: TestClient, env: BaselineEnv) -> None:
    body = {**M1_DAILY, "id": "m1-hourly", "resolution": "hourly"}
    resp = client.post("/v1/baselines", json=body, headers=env.h("engineer"))
    assert resp.status_code == 201, resp.text
    t = terms(resp.json())
    within_ci(t["intercept"], MODEL.a)
    within_ci(t["pieces"], MODEL.b)
    within_ci(t["hdd"], MODEL.c)
    assert resp.json()["model"]["stats"]["n"] == DAYS * 24


def test_a_model_that_misses_the_limits_is_refused_with_each_reason(client: TestClient, env: BaselineEnv) -> None:
    # no drivers: an intercept explains nothing (R² = 0); ten days are fewer than ASHRAE 14's 30 points
    short = {**M1_DAILY, "id": "bad", "drivers": [],
             "period_end": (T0 + timedelta(days=10)).isoformat()}
    resp = client.post("/v1/baselines", json=short, headers=env.h("engineer"))
    assert resp.status_code == 422, resp.text
    misses = resp.json()["misses"]
    assert "n = 10 points < minimum 30" in misses
    assert any(m.startswith("R² = 0.0000 < 0.7500") for m in misses), misses
    assert resp.json()["stats"]["n"] == 10

    # configurable limits: a CV(RMSE) limit tighter than the noise allows names the model's value
    tight = {**M1_DAILY, "id": "bad", "limits": {"max_cv_rmse": 0.001, "max_abs_nmbe": 0.1, "min_points": 30}}
    resp = client.post("/v1/baselines", json=tight, headers=env.h("engineer"))
    assert resp.status_code == 422
    [miss] = resp.json()["misses"]
    cv = resp.json()["stats"]["cv_rmse"]
    assert miss == f"CV(RMSE) = {cv:.2%} > 0.10%"

    # energy that never varies (m2 draws a flat load): R² is 0/0, refused as undefined, not stored as NaN
    flat = {**M1_DAILY, "id": "bad", "target": "m2", "drivers": []}
    resp = client.post("/v1/baselines", json=flat, headers=env.h("engineer"))
    assert resp.status_code == 422, resp.text
    assert any(m.startswith("R² is undefined") for m in resp.json()["misses"]), resp.json()

    # nothing was stored, nothing audited
    assert client.get("/v1/baselines", params={"include_retired": True}, headers=env.h("admin")).json() == []
    assert client.get("/v1/audit", params={"entity": "baseline"}, headers=env.h("admin")).json()["rows"] == []
    assert client.get("/v1/baselines/bad", headers=env.h("admin")).status_code == 404


def test_requests_that_cannot_be_fitted_say_why(client: TestClient, env: BaselineEnv) -> None:
    h = env.h("engineer")
    cases = [
        ({**M1_DAILY, "scope": "area", "target": "press"}, "name one carrier"),
        ({**M1_DAILY, "target": "nope"}, "no meter 'nope'"),
        ({**M1_DAILY, "drivers": [{"name": "x", "variable": "nope"}]}, "no variable 'nope'"),
        ({**M1_DAILY, "drivers": [{"name": "t", "variable": "temp"}]}, "is a gauge"),
        ({**M1_DAILY, "period_start": (T0 + timedelta(hours=3)).isoformat()}, "is not midnight"),
        ({**M1_DAILY, "period_end": (env.clock.now + timedelta(days=1)).isoformat()}, "is in the future"),
    ]
    for body, reason in cases:
        resp = client.post("/v1/baselines", json=body, headers=h)
        assert resp.status_code == 422, (body, resp.text)
        assert reason in resp.text, (reason, resp.text)


def test_refit_and_retire_make_versions(client: TestClient, env: BaselineEnv) -> None:
    h = env.h("engineer")
    assert client.post("/v1/baselines", json=M1_DAILY, headers=h).status_code == 201
    spec = {k: v for k, v in M1_DAILY.items() if k != "id"}
    later = {**spec, "period_start": (T0 + timedelta(days=14)).isoformat()}
    resp = client.put("/v1/baselines/m1-daily", json=later, headers=h)
    assert resp.status_code == 200, resp.text
    assert resp.json()["version"] == 2 and resp.json()["model"]["stats"]["n"] == DAYS - 14

    repo = Baselines(client.app.state.db)  # type: ignore[attr-defined]
    active = repo.latest_active(env.site, "m1-daily")
    assert active is not None and active.version == 2 and active.model.stats.n == DAYS - 14

    retired = client.delete("/v1/baselines/m1-daily", headers=h)
    assert retired.status_code == 200 and retired.json()["version"] == 3 and not retired.json()["active"]
    assert repo.latest_active(env.site, "m1-daily") is None
    assert client.get("/v1/baselines", headers=h).json() == []
    assert [b["active"] for b in client.get("/v1/baselines", params={"include_retired": True},
                                            headers=h).json()] == [False]
    detail = client.get("/v1/baselines/m1-daily", headers=env.h("viewer")).json()
    assert [(v["version"], v["active"], v["model"]["stats"]["n"]) for v in detail["versions"]] == [
        (1, True, DAYS), (2, True, DAYS - 14), (3, False, DAYS - 14)]
    assert client.delete("/v1/baselines/m1-daily", headers=h).status_code == 404
    # a retired baseline is not in force, but each version stays usable for looking back
    window = {"baseline": "m1-daily", "from": PERIOD["period_start"], "to": PERIOD["period_end"]}
    assert client.get("/v1/performance", params=window, headers=h).status_code == 404
    old = client.get("/v1/performance", params={**window, "version": 2}, headers=h)
    assert old.status_code == 200 and old.json()["baseline_version"] == 2
    assert client.post("/v1/baselines", json=M1_DAILY, headers=h).status_code == 409
    audit = client.get("/v1/audit", params={"entity": "baseline"}, headers=h).json()["rows"]
    assert [r["action"] for r in audit] == ["create", "update", "retire"]


def test_roles(client: TestClient, env: BaselineEnv) -> None:
    assert client.post("/v1/baselines", json=M1_DAILY, headers=env.h("viewer")).status_code == 403
    assert client.post("/v1/baselines", json=M1_DAILY).status_code == 401
    assert client.post("/v1/baselines", json=M1_DAILY, headers=env.h("other")).status_code == 404
    assert client.get("/v1/baselines", headers=env.h("viewer")).json() == []
    assert client.post("/v1/baselines", json=M1_DAILY, headers=env.h("engineer")).status_code == 201
    spec = {k: v for k, v in M1_DAILY.items() if k != "id"}
    assert client.put("/v1/baselines/m1-daily", json=spec, headers=env.h("viewer")).status_code == 403
    assert client.delete("/v1/baselines/m1-daily", headers=env.h("viewer")).status_code == 403
    assert client.get("/v1/baselines/m1-daily", headers=env.h("other")).status_code == 404
    assert client.get("/v1/baselines/m1-daily", headers=env.h("viewer")).status_code == 200


def test_the_live_deviation_rules_read_the_baseline_in_force(client: TestClient, env: BaselineEnv) -> None:
    """create_app hands the rule runner the stored baselines: the model in force, none once retired."""
    engine = client.app.state.engine  # type: ignore[attr-defined]
    assert engine.baselines("m1-daily") is None
    assert client.post("/v1/baselines", json=M1_DAILY, headers=env.h("engineer")).status_code == 201
    stored = client.get("/v1/baselines/m1-daily", headers=env.h("viewer")).json()
    model = engine.baselines("m1-daily")
    assert model is not None and model.model_dump(mode="json") == stored["model"]
    assert client.delete("/v1/baselines/m1-daily", headers=env.h("engineer")).status_code in (200, 204)
    assert engine.baselines("m1-daily") is None
