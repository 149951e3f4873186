"""The audit log: every change leaves a row, the chain verifies, and tampering (edit, delete, reorder) is found."""

from __future__ import annotations

import sqlite3

import pytest
from fastapi.testclient import TestClient

from records.audit import AuditLog
from records.db import ApiDb
from tests.api.conftest import Env

RULE = {"id": "r", "name": "peak", "metric": "power", "threshold": 400.0}


def _history(env: Env) -> None:
    with TestClient(env.app()) as c:
        h = env.h("admin")
        assert c.post("/v1/rules", json=RULE, headers=h).status_code == 201
        spec = {k: v for k, v in RULE.items() if k != "id"}
        assert c.put("/v1/rules/r", json={**spec, "threshold": 410.0}, headers=h).status_code == 200
        c.post("/v1/offsets", json={"kind": "sink", "quantity": 3, "unit": "t", "applies_on": "2026-03-01",
                                    "evidence": "forest survey 2026"}, headers=h)
        c.post("/v1/offsets/1/void", json={"reason": "double entry"}, headers=h)
        c.post("/v1/keys", json={"name": "k", "role": "viewer", "sites": ["s1"]}, headers=h)


def _raw(env: Env) -> sqlite3.Connection:
    conn = sqlite3.connect(env.tmp / "api.sqlite", isolation_level=None)
    conn.execute("DROP TRIGGER audit_no_update")  # what someone with file access could do
    conn.execute("DROP TRIGGER audit_no_delete")
    return conn


def test_changes_are_logged_and_the_chain_verifies(env: Env) -> None:
    _history(env)
    with TestClient(env.app()) as c:
        rows = c.get("/v1/audit", headers=env.h("viewer")).json()["rows"]
        assert [(r["entity"], r["action"]) for r in rows] == [
            ("rule", "create"), ("rule", "update"), ("offset", "create"), ("offset", "void"), ("api_key", "create")]
        assert all(r["actor"] == "admin" for r in rows)
        assert rows[1]["prev_hash"] == rows[0]["hash"]
        verdict = c.get("/v1/audit/verify", headers=env.h("viewer")).json()
        assert verdict == {"ok": True, "rows": 5, "first_bad_seq": None, "reason": None, "head": rows[-1]["hash"]}


def test_the_log_refuses_updates_and_deletes(env: Env) -> None:
    _history(env)
    db = ApiDb(env.tmp / "api.sqlite")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.conn.execute("UPDATE audit SET actor = 'someone' WHERE seq = 1")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.conn.execute("DELETE FROM audit WHERE seq = 2")
    db.close()


@pytest.mark.parametrize(("tamper", "bad_seq", "reason"), [
    ("UPDATE audit SET body = replace(body, '3.0', '30.0') WHERE seq = 3", 3, "content"),
    ("UPDATE audit SET actor = 'viewer' WHERE seq = 1", 1, "content"),
    ("DELETE FROM audit WHERE seq = 2", 3, "missing"),
    ("UPDATE audit SET ts = '2020-01-01T00:00:00+00:00' WHERE seq = 5", 5, "content"),
])
def test_chain_verification_detects_a_tampered_row(env: Env, tamper: str, bad_seq: int, reason: str) -> None:
    _history(env)
    conn = _raw(env)
    assert conn.execute(tamper).rowcount == 1
    conn.close()
    with TestClient(env.app()) as c:
        verdict = c.get("/v1/audit/verify", headers=env.h("viewer")).json()
    assert verdict["ok"] is False
    assert verdict["first_bad_seq"] == bad_seq
    assert reason in verdict["reason"]


def test_rehashing_a_row_still_breaks_the_next_link(env: Env) -> None:
    """A forger who recomputes the edited row's own hash is caught by the following row's link."""
    from records.audit import row_hash

    _history(env)
    conn = _raw(env)
    r = conn.execute("SELECT seq, ts, site, actor, action, entity, entity_id, body, prev_hash FROM audit "
                     "WHERE seq = 3").fetchone()
    body = r[7].replace("3.0", "0.3")
    forged = row_hash(r[8], r[0], r[1], r[2], r[3], r[4], r[5], r[6], body)
    assert body != r[7]
    conn.execute("UPDATE audit SET body = ?, hash = ? WHERE seq = 3", (body, forged))
    conn.close()
    report = AuditLog(ApiDb(env.tmp / "api.sqlite")).verify()
    assert (report.ok, report.first_bad_seq, report.reason) == (False, 4, "link to the previous row does not match")
