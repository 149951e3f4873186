"""/v1/nonconformities over the API with a real API database: raised from a rule's alert, the corrective action
recorded as a new version, the effectiveness check (the rule stayed clear for 7 days) pending, then ineffective
when the rule fires again, then effective after 7 clear days; closing is refused until it is effective; an
overdue action fires a `nonconformity:` alert that closing resolves; every change is audited and the chain
verifies."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient

from api.records_watch import RecordsWatch
from api.rulebook import RuleBook
from tests.api.conftest import Env

RULE = {"name": "night base load", "metric": "power", "threshold": 400.0, "scope": "area", "target": "a"}
NC: dict[str, Any] = {"title": "Compressed air leaks", "description": "night base load above 400 kW",
                      "owner": "maintenance", "due_on": "2026-03-20"}


def nc_alerts(c: TestClient, env: Env) -> list[dict[str, Any]]:
    return [a for a in c.get("/v1/alerts", headers=env.h("viewer")).json()["alerts"]
            if a["rule"] == "nonconformity:nc1"]


def test_nonconformity_lifecycle_with_effectiveness_and_overdue_alert(env: Env) -> None:
    with TestClient(env.app(tick_s=3600)) as c:
        eng = env.h("engineer")
        watch: RecordsWatch = c.app.state.records_watch  # type: ignore[attr-defined]
        assert c.post("/v1/rules", json={"id": "base", **RULE}, headers=env.h("admin")).status_code == 201
        book: RuleBook = c.app.state.book  # type: ignore[attr-defined]
        t0 = env.clock.now
        first = book.fire(env.site, book.get(env.site, "base"), 480.0, t0.isoformat())
        assert c.post("/v1/nonconformities", json={"id": "nc1", **NC, "alert_ids": [999]},
                      headers=eng).status_code == 422          # no such alert
        made = c.post("/v1/nonconformities", json={"id": "nc1", **NC, "alert_ids": [first["id"]]}, headers=eng)
        assert made.status_code == 201, made.text
        assert made.json()["effectiveness"] is None

        # the corrective action, with its effectiveness check: the rule stays clear for 7 days
        acted_at = t0 + timedelta(hours=2)
        action = {**NC, "alert_ids": [first["id"]], "cause": "worn couplings", "correction": "valves closed",
                  "corrective_action": "couplings replaced, weekly leak walk", "state": "action_taken",
                  "action_taken_at": acted_at.isoformat(), "effectiveness": {"rule_id": "base", "clear_days": 7}}
        assert c.put("/v1/nonconformities/nc1", json=action, headers=eng).json()["version"] == 2
        env.clock.now = t0 + timedelta(days=3)
        e = c.get("/v1/nonconformities/nc1", headers=env.h("viewer")).json()["effectiveness"]
        assert (e["verdict"], e["fired_again"]) == ("pending", [])
        refused = c.post("/v1/nonconformities/nc1/close", json={"note": "done"}, headers=eng)
        assert refused.status_code == 409 and "pending" in refused.text

        # the rule fires again on day 4: ineffective
        book.resolve(env.site, first["id"], 300.0, (t0 + timedelta(days=1)).isoformat())
        again = t0 + timedelta(days=4)
        book.fire(env.site, book.get(env.site, "base"), 450.0, again.isoformat())
        env.clock.now = t0 + timedelta(days=5)
        e = c.get("/v1/nonconformities/nc1", headers=env.h("viewer")).json()["effectiveness"]
        assert e["verdict"] == "ineffective" and [x[:19] for x in e["fired_again"]] == [again.isoformat()[:19]]

        # a second corrective action on day 5: effective after 7 clear days
        action2 = {**action, "corrective_action": "compressor sequencing changed",
                   "action_taken_at": env.clock.now.isoformat()}
        assert c.put("/v1/nonconformities/nc1", json=action2, headers=eng).json()["version"] == 3

        # the due date (03-20) passes before the action has proved effective: the overdue alert fires
        env.clock.now = t0 + timedelta(days=11)      # 2026-03-21 12:00
        watch.check()
        fired = nc_alerts(c, env)
        assert [(a["state"], a["target"], a["unit"], a["value"]) for a in fired] == [("firing", "nc1", "d", 1.5)]

        report = c.get("/v1/reports/period", headers=env.h("viewer")).json()
        assert [(n["id"], n["state"], n["overdue"], n["alert_ids"]) for n in report["nonconformities"]] == [
            ("nc1", "action_taken", True, [first["id"]])]
        csv_text = c.get("/v1/reports/period", params={"format": "csv"}, headers=env.h("viewer")).text
        assert "nonconformity_open,nc1 Compressed air leaks" in csv_text and "overdue" in csv_text
        page = c.get("/v1/reports/period", params={"format": "html"}, headers=env.h("viewer")).text
        assert "Open nonconformities" in page and "nc1" in page

        env.clock.now = t0 + timedelta(days=12, hours=1)
        assert c.get("/v1/nonconformities/nc1", headers=env.h("viewer")).json()["effectiveness"]["verdict"] == \
            "effective"
        assert c.get("/v1/nonconformities", headers=env.h("viewer")).json()[0]["id"] == "nc1"
        closed = c.post("/v1/nonconformities/nc1/close", json={"note": "no alert for 7 days"}, headers=eng)
        assert closed.status_code == 200, closed.text
        spec = closed.json()["spec"]
        assert spec["state"] == "closed" and spec["closure"]["verdict"] == "effective"
        assert spec["closure"]["by"] == "engineer"
        watch.check()
        assert [a["state"] for a in nc_alerts(c, env)] == ["resolved"]
        assert c.get("/v1/nonconformities", headers=env.h("viewer")).json() == []
        assert c.get("/v1/reports/period", headers=env.h("viewer")).json()["nonconformities"] == []
        assert len(c.get("/v1/nonconformities", params={"include_closed": True},
                         headers=env.h("viewer")).json()) == 1
        assert c.put("/v1/nonconformities/nc1", json=action2, headers=eng).status_code == 409
        assert c.post("/v1/nonconformities/nc1/close", json={"note": "x"}, headers=eng).status_code == 409

        rows = c.get("/v1/audit", params={"entity": "nonconformity"}, headers=env.h("admin")).json()["rows"]
        assert [r["action"] for r in rows] == ["create", "update", "update", "close"]
        assert c.get("/v1/audit/verify", headers=env.h("viewer")).json()["ok"] is True


def test_nonconformity_refusals(env: Env) -> None:
    with TestClient(env.app(tick_s=3600)) as c:
        eng = env.h("engineer")
        assert c.post("/v1/nonconformities", json={"id": "n", **NC, "state": "action_taken"},
                      headers=eng).status_code == 422      # no corrective action
        assert c.post("/v1/nonconformities", json={"id": "n", **NC, "state": "closed"},
                      headers=eng).status_code == 422
        assert c.post("/v1/nonconformities", json={"id": "n", **NC}, headers=env.h("viewer")).status_code == 403
        assert c.post("/v1/nonconformities", json={"id": "n", **NC}, headers=eng).status_code == 201
        assert c.post("/v1/nonconformities/n/close", json={"note": "x"}, headers=eng).status_code == 409
