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


def _key(c: TestClient, env: Env) -> str:
    return hash_key(env.keys["viewer"])[:12]


# (method, path template, body, minimum role, set-up returning the id)
ENDPOINTS: list[tuple[str, str, dict[str, Any] | None, str, Setup | None]] = [
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
]
LEVEL = {"viewer": 1, "engineer": 2, "admin": 3}


@pytest.mark.parametrize("caller", ["none", "viewer", "engineer", "admin", "other"])
@pytest.mark.parametrize(("method", "path", "body", "needs", "setup"), ENDPOINTS,
                         ids=[f"{m} {p}" for m, p, *_ in ENDPOINTS])
def test_role_matrix(env: Env, caller: str, method: str, path: str, body: dict[str, Any] | None, needs: str,
                     setup: Setup | None) -> None:
    with TestClient(env.app()) as c:
        entity_id = setup(c, env) if setup else ""
        before = c.get("/v1/audit", headers=env.h("admin")).json()["rows"]
        headers = {} if caller == "none" else env.h(caller)
        resp = c.request(method, path.format(id=entity_id), json=body, headers=headers)
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
                     "/v1/instruments"):
            assert c.get(path).status_code == 401, path
            assert c.get(path, headers=env.h("viewer")).status_code == 200, path
        for path in ("/v1/rules", "/v1/alerts", "/v1/offsets", "/v1/allowances", "/v1/audit", "/v1/history",
                     "/v1/reports/period", "/v1/stream", "/v1/instruments"):
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
