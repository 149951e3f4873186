"""Each role against each mutating endpoint, and ids of another site refused (FastAPI TestClient, real SQLite)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.auth import KeyRing, hash_key
from api.main import create_app
from api.rulebook import RuleBook
from api.settings import ApiSection, Settings
from calc.plant import parse_plant
from calc.rules import RuleSpec
from ingest.store.sqlite import SqliteStore
from tests.api.conftest import Env, plant_data

RULE = {"name": "peak", "metric": "power", "threshold": 400.0, "scope": "area", "target": "a"}
OFFSET = {"kind": "credit", "standard": "CCER", "vintage": 2025, "serial": "CCER-1", "quantity": 2, "unit": "t",
          "applies_on": "2026-03-01", "evidence": "registry record 1"}
INSTRUMENT = {"kind": "gec", "serial_first": "GEC-000001", "serial_last": "GEC-000010", "valid_from": "2026-01-01",
              "valid_to": "2026-12-31", "evidence": "transfer record 1"}
ALLOWANCE = {"start": "2026-01-01T00:00:00Z", "end": "2027-01-01T00:00:00Z", "amount": 100, "unit": "t"}
FACTORS = ('[factors.plant_grid]\nvalue = 0.5\nunit = "kg/kWh"\ngas = "CO2"\nkind = "grid_average"\n'
           'scope = "scope2_location"\nregion = "CN"\nsource = "test"\n')

TARGET = {"title": "t", "owner": "o", "kind": "reduction_pct", "base_year": 2024, "base_value": 1000.0,
          "milestones": [{"year": 2030, "value": 50}]}
MEASURE = {"title": "VSD", "owner": "maintenance", "meters": ["m1"]}
REGISTER = {"serial": "S1", "make": "M", "model": "X", "accuracy_class": "0.5S", "installed_on": "2024-01-01",
            "calibration_due_on": "2027-01-01"}
NC = {"title": "leaks", "description": "night base load", "owner": "maintenance", "due_on": "2026-04-30"}
NC_ACTED = {**NC, "corrective_action": "fixed", "state": "action_taken", "action_taken_at": "2026-03-10T10:00:00Z"}
CALIBRATION = {"calibrated_on": "2026-03-01", "due_on": "2027-03-01", "reference": "CAL-1"}
ACTIVITY = {"kind": "fuel", "start": "2026-03-01", "quantity": 1, "unit": "t", "carrier": "diesel",
            "evidence": "delivery note 1"}
ACTIVITY_CSV = "kind,start,quantity,unit,carrier,evidence\nfuel,2026-03-02,2,t,diesel,delivery note 2\n"

Setup = Callable[[TestClient, Env], str]


def _rule(c: TestClient, env: Env) -> str:
    assert c.post("/v1/rules", json={"id": "r1", **RULE}, headers=env.h("admin")).status_code == 201
    return "r1"


def _alert(c: TestClient, env: Env) -> str:
    _rule(c, env)
    book: RuleBook = c.app.state.book  # type: ignore[attr-defined]
    row = book.fire(env.site, book.get(env.site, "r1"), 500.0, "2026-03-10T12:00:00+00:00")
    return str(row["id"])


def _offset(c: TestClient, env: Env) -> str:
    return str(c.post("/v1/offsets", json=OFFSET, headers=env.h("admin")).json()["id"])


def _instrument(c: TestClient, env: Env) -> str:
    return str(c.post("/v1/instruments", json=INSTRUMENT, headers=env.h("admin")).json()["id"])


def _allowance(c: TestClient, env: Env) -> str:
    return str(c.post("/v1/allowances", json=ALLOWANCE, headers=env.h("admin")).json()["id"])


def _activity(c: TestClient, env: Env) -> str:
    return str(c.post("/v1/activity", json=ACTIVITY, headers=env.h("engineer")).json()["id"])


def _key(c: TestClient, env: Env) -> str:
    return hash_key(env.keys["viewer"])[:12]


def _target(c: TestClient, env: Env) -> str:
    assert c.post("/v1/targets", json={"id": "t1", **TARGET}, headers=env.h("admin")).status_code == 201
    return "t1"


def _measure(c: TestClient, env: Env) -> str:
    assert c.post("/v1/measures", json={"id": "ms1", **MEASURE}, headers=env.h("admin")).status_code == 201
    return "ms1"


def _registered(c: TestClient, env: Env) -> str:
    assert c.put("/v1/meter-register/m1", json=REGISTER, headers=env.h("admin")).status_code == 200
    return "m1"


def _nc(c: TestClient, env: Env) -> str:
    assert c.post("/v1/nonconformities", json={"id": "nc1", **NC_ACTED}, headers=env.h("admin")).status_code == 201
    return "nc1"


# (method, path template, body (a str is sent as it is), minimum role, set-up returning the id)
ENDPOINTS: list[tuple[str, str, dict[str, Any] | str | None, str, Setup | None]] = [
    ("POST", "/v1/rules", {"id": "new", **RULE}, "engineer", None),
    ("PUT", "/v1/rules/{id}", {**RULE, "threshold": 450.0}, "engineer", _rule),
    ("DELETE", "/v1/rules/{id}", None, "engineer", _rule),
    ("POST", "/v1/alerts/{id}/acknowledge", {"comment": "seen"}, "engineer", _alert),
    ("POST", "/v1/alerts/{id}/resolve", {"comment": "fixed"}, "engineer", _alert),
    ("POST", "/v1/allowances", ALLOWANCE, "admin", None),
    ("POST", "/v1/allowances/{id}/void", {"reason": "wrong"}, "admin", _allowance),
    ("POST", "/v1/offsets", OFFSET, "admin", None),
    ("POST", "/v1/offsets/{id}/void", {"reason": "wrong"}, "admin", _offset),
    ("POST", "/v1/instruments", INSTRUMENT, "admin", None),
    ("POST", "/v1/instruments/{id}/void", {"reason": "wrong"}, "admin", _instrument),
    ("POST", "/v1/factor-sets", {"name": "plant", "toml": FACTORS}, "admin", None),
    ("POST", "/v1/keys", {"name": "scada", "role": "viewer", "sites": ["s1"]}, "admin", None),
    ("POST", "/v1/keys/{id}/revoke", None, "admin", _key),
    ("POST", "/v1/targets", {"id": "t2", **TARGET}, "admin", None),
    ("PUT", "/v1/targets/{id}", {**TARGET, "base_value": 900.0}, "admin", _target),
    ("DELETE", "/v1/targets/{id}", None, "admin", _target),
    ("POST", "/v1/measures", {"id": "ms2", **MEASURE}, "engineer", None),
    ("PUT", "/v1/measures/{id}", {**MEASURE, "status": "in_progress"}, "engineer", _measure),
    ("DELETE", "/v1/measures/{id}", None, "engineer", _measure),
    ("PUT", "/v1/meter-register/m1", REGISTER, "admin", None),
    ("DELETE", "/v1/meter-register/{id}", None, "admin", _registered),
    ("POST", "/v1/meter-register/{id}/calibrations", CALIBRATION, "engineer", _registered),
    ("POST", "/v1/nonconformities", {"id": "nc2", **NC}, "engineer", None),
    ("PUT", "/v1/nonconformities/{id}", {**NC_ACTED, "cause": "worn couplings"}, "engineer", _nc),
    ("POST", "/v1/nonconformities/{id}/close", {"note": "fixed for good"}, "engineer", _nc),
    ("POST", "/v1/activity", ACTIVITY, "engineer", None),
    ("POST", "/v1/activity/import", ACTIVITY_CSV, "engineer", None),
    ("POST", "/v1/activity/{id}/void", {"reason": "wrong"}, "engineer", _activity),
]
LEVEL = {"viewer": 1, "engineer": 2, "admin": 3}
# the organisation roll-up (api/routes/organisation.py): over the sites the key may see, none visible = 404
ORG_READS = ("/v1/org/sites", "/v1/org/balance", "/v1/org/history", "/v1/org/reports/period", "/v1/org/allowances",
             "/v1/org/instruments")


@pytest.mark.parametrize("caller", ["none", "viewer", "engineer", "admin", "other"])
@pytest.mark.parametrize(("method", "path", "body", "needs", "setup"), ENDPOINTS,
                         ids=[f"{m} {p}" for m, p, *_ in ENDPOINTS])
def test_role_matrix(env: Env, caller: str, method: str, path: str, body: dict[str, Any] | str | None, needs: str,
                     setup: Setup | None) -> None:
    with TestClient(env.app()) as c:
        entity_id = setup(c, env) if setup else ""
        before = c.get("/v1/audit", headers=env.h("admin")).json()["rows"]
        headers = {} if caller == "none" else env.h(caller)
        resp = (c.request(method, path.format(id=entity_id), content=body.encode(), headers=headers)
                if isinstance(body, str) else c.request(method, path.format(id=entity_id), json=body, headers=headers))
        if caller == "none":
            expected = {401}
        elif caller == "other":  # an admin of site s2 only
            expected = {403} if path == "/v1/keys" else {404}
        elif LEVEL[caller] < LEVEL[needs]:
            expected = {403}
        else:
            expected = {200, 201}
        assert resp.status_code in expected, (caller, resp.status_code, resp.text)
        after = c.get("/v1/audit", headers=env.h("admin")).json()["rows"]
        # a refused call changes nothing; an allowed one leaves exactly one audit row
        assert len(after) - len(before) == (1 if resp.status_code in (200, 201) else 0)


def test_reads_need_a_key_and_the_site(env: Env) -> None:
    with TestClient(env.app()) as c:
        for path in ("/v1/rules", "/v1/alerts", "/v1/offsets", "/v1/allowances", "/v1/audit", "/v1/history",
                     "/v1/reports/period", "/v1/factor-sets", "/metrics", "/v1/status", "/v1/audit/verify",
                     "/v1/instruments", "/v1/targets", "/v1/measures", "/v1/meter-register",
                     "/v1/nonconformities", "/v1/activity", *ORG_READS):
            assert c.get(path).status_code == 401, path
            assert c.get(path, headers=env.h("viewer")).status_code == 200, path
        for path in ("/v1/rules", "/v1/alerts", "/v1/offsets", "/v1/allowances", "/v1/audit", "/v1/history",
                     "/v1/reports/period", "/v1/stream", "/v1/instruments", "/v1/targets", "/v1/measures",
                     "/v1/meter-register", "/v1/nonconformities", "/v1/activity", *ORG_READS):
            assert c.get(path, headers=env.h("other")).status_code == 404, path
        assert c.get("/v1/keys", headers=env.h("engineer")).status_code == 403


def test_ids_of_another_site_are_refused(env: Env) -> None:
    """Two servers (sites s1 and s2) sharing one API database: s1's keys never reach s2's entries."""
    data = plant_data("s2")
    s2 = Settings(plant=parse_plant(data), plant_data=data, base_dir=env.tmp,
                  api=ApiSection(keys_file=str(env.keys_file), db_path=str(env.tmp / "api.sqlite"), live=False))
    app2 = create_app(s2, SqliteStore(env.tmp / "store.sqlite"), KeyRing.load(env.keys_file), clock=env.clock)
    with TestClient(app2) as c2, TestClient(env.app()) as c1:
        other = env.h("other")  # admin of s2
        assert c2.post("/v1/rules", json={"id": "s2-rule", **RULE}, headers=other).status_code == 201
        offset_id = c2.post("/v1/offsets", json=OFFSET, headers=other).json()["id"]
        allowance_id = c2.post("/v1/allowances", json=ALLOWANCE, headers=other).json()["id"]
        instrument_id = c2.post("/v1/instruments", json=INSTRUMENT, headers=other).json()["id"]
        activity_id = c2.post("/v1/activity", json=ACTIVITY, headers=other).json()["id"]
        book: RuleBook = app2.state.book
        alert_id = book.fire("s2", book.get("s2", "s2-rule"), 1.0, datetime.now(UTC).isoformat())["id"]
        admin = env.h("admin")  # admin of s1
        assert c1.get("/v1/rules/s2-rule", headers=admin).status_code == 404
        assert c1.put("/v1/rules/s2-rule", json=RULE, headers=admin).status_code == 404
        assert c1.post("/v1/rules", json={"id": "s2-rule", **RULE}, headers=admin).status_code == 409
        assert c1.get(f"/v1/offsets/{offset_id}", headers=admin).status_code == 404
        assert c1.post(f"/v1/offsets/{offset_id}/void", json={"reason": "x"}, headers=admin).status_code == 404
        assert c1.get(f"/v1/allowances/{allowance_id}", headers=admin).status_code == 404
        assert c1.get(f"/v1/instruments/{instrument_id}", headers=admin).status_code == 404
        assert c1.post(f"/v1/instruments/{instrument_id}/void", json={"reason": "x"},
                       headers=admin).status_code == 404
        assert c1.get("/v1/instruments", headers=admin).json() == []
        assert c1.get(f"/v1/alerts/{alert_id}", headers=admin).status_code == 404
        assert c1.post(f"/v1/alerts/{alert_id}/acknowledge", json={"comment": "x"},
                       headers=admin).status_code == 404
        assert c1.get("/v1/offsets", headers=admin).json() == []
        assert c1.get(f"/v1/activity/{activity_id}", headers=admin).status_code == 404
        assert c1.post(f"/v1/activity/{activity_id}/void", json={"reason": "x"}, headers=admin).status_code == 404
        assert c1.get("/v1/activity", headers=admin).json() == []
        assert c2.get(f"/v1/activity/{activity_id}", headers=other).json()["voided"] is False
        # and the owner still sees its own
        assert c2.get(f"/v1/offsets/{offset_id}", headers=other).status_code == 200
        assert c2.get(f"/v1/instruments/{instrument_id}", headers=other).json()["voided"] is False
        assert c2.get(f"/v1/alerts/{alert_id}", headers=other).json()["state"] == "firing"


def test_revoked_key_is_refused_and_new_keys_work_at_once(env: Env) -> None:
    with TestClient(env.app()) as c:
        made = c.post("/v1/keys", json={"name": "scada", "role": "viewer", "sites": ["s1"]}, headers=env.h("admin"))
        assert made.status_code == 201
        secret = made.json()["secret"]
        assert "secret" not in str(c.get("/v1/keys", headers=env.h("admin")).json())
        assert c.get("/v1/rules", headers={"X-API-Key": secret}).status_code == 200
        fp = made.json()["fingerprint"]
        assert c.post(f"/v1/keys/{fp}/revoke", headers=env.h("admin")).status_code == 200
        assert c.get("/v1/rules", headers={"X-API-Key": secret}).status_code == 401
    with TestClient(env.app()) as c:  # revocation survives a restart
        assert c.get("/v1/rules", headers={"X-API-Key": secret}).status_code == 401


def test_request_size_is_bounded(env: Env) -> None:
    with TestClient(env.app(max_body_bytes=2048)) as c:
        resp = c.post("/v1/factor-sets", json={"name": "big", "toml": "#" * 5000}, headers=env.h("admin"))
        assert resp.status_code == 413
        assert c.get("/v1/alerts", params={"limit": 501}, headers=env.h("viewer")).status_code == 422


def test_rule_versions_are_kept(env: Env) -> None:
    with TestClient(env.app()) as c:
        h = env.h("engineer")
        c.post("/v1/rules", json={"id": "r", **RULE}, headers=h)
        c.put("/v1/rules/r", json={**RULE, "threshold": 450.0}, headers=h)
        c.delete("/v1/rules/r", headers=h)
        detail = c.get("/v1/rules/r", headers=h).json()
        assert [(v["version"], v["enabled"], v["spec"]["threshold"]) for v in detail["versions"]] == [
            (1, True, 400.0), (2, True, 450.0), (3, False, 450.0)]
        assert c.get("/v1/rules", headers=h).json() == []
        book = RuleBook(c.app.state.db)  # type: ignore[attr-defined]
        assert book.get("s1", "r", 1).spec == RuleSpec.model_validate(RULE)


# Baselines, performance and manual production entries, on the baseline plant (a production counter, a driver,
# days of stored data to fit on). (method, path, body, minimum role); {id} is an entry made by the set-up.
_T0 = "2026-01-05T00:00:00+00:00"
_BASELINE = {"id": "b1", "scope": "meter", "target": "m1", "resolution": "hourly", "period_start": _T0,
             "period_end": "2026-01-19T00:00:00+00:00", "drivers": [{"name": "pieces", "variable": "out-1"}]}
_ENTRY = {"start": "2026-01-20T06:00:00+00:00", "end": "2026-01-20T14:00:00+00:00", "value": 4200, "unit": "piece"}
_CSV = "variable,start,end,value,unit\nout-1,2026-01-20T14:00:00+00:00,2026-01-20T22:00:00+00:00,3900,piece\n"
PRODUCTION_READS = ["/v1/baselines", "/v1/baselines/b1", "/v1/variables/out-1/entries",
                    "/v1/performance?baseline=b1&from=2026-01-05T00:00:00Z&to=2026-01-07T00:00:00Z"]
PRODUCTION_ACTS: list[tuple[str, str, Any, str]] = [
    ("POST", "/v1/baselines", {**_BASELINE, "id": "b2"}, "engineer"),
    ("PUT", "/v1/baselines/b1", {k: v for k, v in _BASELINE.items() if k != "id"}, "engineer"),
    ("DELETE", "/v1/baselines/b1", None, "engineer"),
    ("POST", "/v1/variables/out-1/entries", _ENTRY, "engineer"),
    ("POST", "/v1/variables/out-1/entries/{id}/void", {"reason": "wrong"}, "engineer"),
    ("POST", "/v1/variables/out-1/entries/{id}/send", None, "engineer"),
    ("POST", "/v1/variable-entries/import", _CSV, "engineer"),
]


@pytest.fixture(scope="module")
def production_env(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from tests.api.baseline_data import T0, BaselineEnv, Hours, Model, fill, generate

    env = BaselineEnv(tmp_path_factory.mktemp("production-auth"))
    env.clock.now = datetime(2026, 4, 1, tzinfo=UTC)
    hours = generate(Model(), T0, 15 * 24)
    fill(env.store, Hours(hours.start, hours.pieces, hours.temp_c, hours.m1_kwh), Model().m2_kwh)
    env.store.close()
    return env


def _unsent(topic: str, payload: bytes) -> str | None:
    return "no broker in this test"   # the matrix is about who may act; tests/api/test_variable_entries_e2e sends


@pytest.mark.parametrize("caller", ["none", "viewer", "engineer", "admin", "other"])
@pytest.mark.parametrize(("method", "path", "body", "needs"), PRODUCTION_ACTS,
                         ids=[f"{m} {p}" for m, p, *_ in PRODUCTION_ACTS])
def test_production_role_matrix(production_env: Any, caller: str, method: str, path: str, body: Any,
                                needs: str) -> None:
    env = production_env
    (env.tmp / "api.sqlite").unlink(missing_ok=True)
    for wal in ("api.sqlite-wal", "api.sqlite-shm"):
        (env.tmp / wal).unlink(missing_ok=True)
    with TestClient(env.app()) as c:
        c.app.state.entry_sender = _unsent  # type: ignore[attr-defined]
        eng = env.h("engineer")
        assert c.post("/v1/baselines", json=_BASELINE, headers=eng).status_code == 201
        made = c.post("/v1/variables/out-1/entries", json={**_ENTRY, "start": "2026-01-21T06:00:00+00:00",
                                                           "end": "2026-01-21T14:00:00+00:00"}, headers=eng)
        assert made.status_code == 201, made.text
        for read in PRODUCTION_READS:   # viewers read, other sites are refused
            assert c.get(read).status_code == 401, read
            assert c.get(read, headers=env.h("viewer")).status_code == 200, read
            assert c.get(read, headers=env.h("other")).status_code == 404, read
        before = c.get("/v1/audit", headers=env.h("admin")).json()["rows"]
        headers = {} if caller == "none" else env.h(caller)
        target = path.format(id=made.json()["id"])
        if isinstance(body, str):
            resp = c.request(method, target, content=body, headers={**headers, "Content-Type": "text/csv"})
        else:
            resp = c.request(method, target, json=body, headers=headers)
        expected = ({401} if caller == "none" else {404} if caller == "other"
                    else {403} if LEVEL[caller] < LEVEL[needs] else {200, 201})
        assert resp.status_code in expected, (caller, resp.status_code, resp.text)
        after = c.get("/v1/audit", headers=env.h("admin")).json()["rows"]
        assert len(after) - len(before) == (1 if resp.status_code in (200, 201) else 0)


def test_targets_measures_and_register_of_another_site_are_refused(env: Env) -> None:
    """Targets, measures and meter-register entries of site s2 (same API database) never reach s1's keys."""
    data = plant_data("s2")
    s2 = Settings(plant=parse_plant(data), plant_data=data, base_dir=env.tmp,
                  api=ApiSection(keys_file=str(env.keys_file), db_path=str(env.tmp / "api.sqlite"), live=False))
    app2 = create_app(s2, SqliteStore(env.tmp / "store.sqlite"), KeyRing.load(env.keys_file), clock=env.clock)
    with TestClient(app2) as c2, TestClient(env.app()) as c1:
        other, admin = env.h("other"), env.h("admin")
        assert c2.post("/v1/targets", json={"id": "s2-t", **TARGET}, headers=other).status_code == 201
        assert c2.post("/v1/measures", json={"id": "s2-m", **MEASURE}, headers=other).status_code == 201
        assert c2.put("/v1/meter-register/m1", json=REGISTER, headers=other).status_code == 200
        assert c2.post("/v1/nonconformities", json={"id": "s2-nc", **NC_ACTED}, headers=other).status_code == 201
        assert c1.post("/v1/nonconformities/s2-nc/close", json={"note": "x"}, headers=admin).status_code == 404
        for path in ("/v1/targets/s2-t", "/v1/measures/s2-m", "/v1/meter-register/m1", "/v1/nonconformities/s2-nc"):
            assert c1.get(path, headers=admin).status_code == 404, path
        assert c1.put("/v1/targets/s2-t", json=TARGET, headers=admin).status_code == 404
        assert c1.delete("/v1/measures/s2-m", headers=admin).status_code == 404
        assert c1.post("/v1/meter-register/m1/calibrations", json=CALIBRATION, headers=admin).status_code == 404
        assert c1.post("/v1/targets", json={"id": "s2-t", **TARGET}, headers=admin).status_code == 409
        for path in ("/v1/targets", "/v1/measures", "/v1/meter-register", "/v1/nonconformities"):
            assert c1.get(path, headers=admin).json() == [], path
            assert len(c2.get(path, headers=other).json()) == 1, path


def test_virtual_meter_reads_need_a_key_and_the_site(tmp_path: Any) -> None:
    """/v1/reconciliation and a virtual meter's balance and history: a key of the site, any role."""
    from tests.api.test_virtual import VirtualEnv

    venv = VirtualEnv(tmp_path)
    with TestClient(venv.app()) as c:
        for path, params in (("/v1/reconciliation", {"meter": "rest"}), ("/v1/balance", {"meter": "rest"}),
                             ("/v1/history", {"meter": "rest"})):
            assert c.get(path, params=params).status_code == 401, path
            for role in ("viewer", "engineer", "admin"):
                assert c.get(path, params=params, headers=venv.h(role)).status_code == 200, (path, role)
            assert c.get(path, params={**params, "site": "s2"}, headers=venv.h("other")).status_code == 404, path
