"""/v1/targets over a real SQLite store filled through ingest's converter: a target's lifecycle (create, new
version, retire) with its audit rows and the chain verified; the year's progress equals a hand computation from
the stored rows (used so far + the flat hour-of-week profile × the hours left); a projection that misses the next
milestone fires a `target:` alert, a revised target that the projection meets resolves it."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.records_watch import RecordsWatch
from tests.api.conftest import Env, fill_store, hourly, plant_data

YEAR_START = datetime(2026, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def target(base: float, **extra: Any) -> dict[str, Any]:
    return {"title": "site 2028", "owner": "plant manager", "kind": "reduction_pct", "base_year": 2024,
            "base_value": base, "milestones": [{"year": 2026, "value": 10}, {"year": 2028, "value": 40}], **extra}


@pytest.fixture
def filled(env: Env) -> Env:
    env.clock.now = NOW
    hours = int((NOW - YEAR_START).total_seconds() // 3600)
    fill_store(env.store, plant_data(), {"m1": hourly(YEAR_START, hours, 10.0)})
    return env


def by_hand(env: Env) -> tuple[float, float]:
    """(kg CO2e so far this year, the year projected): used + the mean hourly kg of the last 28 days (flat: every
    hour stored the same) × the hours to the year's end."""
    used = sum(t.co2e_kg for t in env.store.totals("s1", YEAR_START, NOW))
    hourly_kg = {p.start: p.co2e_kg for p in env.store.series("s1", NOW - timedelta(days=28), NOW, "1h", "UTC")}
    rates = set(round(v, 9) for v in hourly_kg.values())
    assert len(hourly_kg) == 28 * 24 and len(rates) == 1, "the profile is flat by construction"
    hours_left = (datetime(2027, 1, 1, tzinfo=UTC) - NOW).total_seconds() / 3600
    return used, used + rates.pop() * hours_left


def target_alerts(c: TestClient, env: Env) -> list[dict[str, Any]]:
    return [a for a in c.get("/v1/alerts", headers=env.h("viewer")).json()["alerts"] if a["rule"] == "target:site"]


def test_target_lifecycle_progress_and_milestone_alert(filled: Env) -> None:
    env = filled
    with TestClient(env.app(tick_s=3600)) as c:
        watch: RecordsWatch = c.app.state.records_watch  # type: ignore[attr-defined]
        watch.targets_every_s = 0.0
        used, projected = by_hand(env)
        base = projected / 0.95                       # the projection is 5 % below the base year
        made = c.post("/v1/targets", json={"id": "site", **target(base)}, headers=env.h("admin"))
        assert made.status_code == 201, made.text
        doc = c.get("/v1/targets/site", headers=env.h("viewer")).json()
        p = doc["progress"]
        assert p["year"] == 2026 and p["unit"] == "kg" and p["projection_method"] == "hour_of_week_profile"
        assert p["actual_to_date"] == pytest.approx(used, rel=1e-9)
        assert p["projected"] == pytest.approx(projected, rel=1e-9)
        assert p["allowed"] == pytest.approx(0.9 * base)      # 2026 is the first milestone: 10 % below
        assert p["reduction_pct"] == pytest.approx(5.0)
        assert p["required_pct"] == pytest.approx(10.0)
        assert p["gap"] == pytest.approx(projected - 0.9 * base)
        assert not p["on_track"] and p["misses_next"]
        assert p["next_milestone"] == {"year": 2026, "value": 10.0}
        # 2024 → 2026: base → 0.9 base; 2026 → 2028: 0.9 base → 0.6 base
        assert [y for y, _ in doc["trajectory"]] == [2024, 2025, 2026, 2027, 2028]
        assert [v for _, v in doc["trajectory"]] == pytest.approx([base, 0.95 * base, 0.9 * base, 0.75 * base,
                                                                   0.6 * base])

        report = c.get("/v1/reports/period", headers=env.h("viewer")).json()
        assert [(t["id"], t["progress"]) for t in report["targets"]] == [("site", p)]
        csv_text = c.get("/v1/reports/period", params={"format": "csv"}, headers=env.h("viewer")).text
        rows = {r[0]: r for r in csv.reader(io.StringIO(csv_text)) if r[0].startswith("target_")}
        assert rows["target_projected"][1:4] == ["site v1", "", "kg"]
        assert float(rows["target_projected"][4]) == pytest.approx(projected, rel=1e-9)
        assert float(rows["target_allowed"][4]) == pytest.approx(0.9 * base)
        assert "Targets (ISO 50001 6.6)" in c.get("/v1/reports/period", params={"format": "html"},
                                                  headers=env.h("viewer")).text

        watch.check()
        alerts = target_alerts(c, env)
        assert [(a["state"], a["target"], a["unit"]) for a in alerts] == [("firing", "site", "kg")]
        assert alerts[0]["value"] == pytest.approx(projected, rel=1e-9)
        watch.check()                                 # still missed: no second alert
        assert len(target_alerts(c, env)) == 1

        # a revised base (new version): the projection is now 50 % below it, the milestone is met
        revised = c.put("/v1/targets/site", json=target(projected / 0.5), headers=env.h("admin"))
        assert revised.status_code == 200 and revised.json()["version"] == 2
        assert c.get("/v1/targets", headers=env.h("viewer")).json()[0]["progress"]["on_track"] is True
        watch.check()
        alert = c.get(f"/v1/alerts/{alerts[0]['id']}", headers=env.h("viewer")).json()
        assert alert["state"] == "resolved"

        assert c.delete("/v1/targets/site", headers=env.h("admin")).json()["active"] is False
        assert c.get("/v1/targets", headers=env.h("viewer")).json() == []
        detail = c.get("/v1/targets/site", headers=env.h("viewer")).json()
        assert [(v["version"], v["active"]) for v in detail["versions"]] == [(1, True), (2, True), (3, False)]
        rows = c.get("/v1/audit", params={"entity": "target"}, headers=env.h("admin")).json()["rows"]
        assert [r["action"] for r in rows] == ["create", "update", "retire"]
        assert c.get("/v1/audit/verify", headers=env.h("viewer")).json()["ok"] is True


def test_intensity_target_and_bad_boundaries(env: Env) -> None:
    with TestClient(env.app(tick_s=3600)) as c:
        h = env.h("admin")
        # the small plant declares no production variable: an intensity target cannot name one
        bad = c.post("/v1/targets", json={"id": "t", **target(1.0, kind="intensity", production_variable="x")},
                     headers=h)
        assert bad.status_code == 422 and "production_variable" in bad.text
        assert c.post("/v1/targets", json={"id": "t", **target(1.0, scope="area", target="nowhere")},
                      headers=h).status_code == 422
        assert c.post("/v1/targets", json={"id": "t", **target(1.0, scope="area", target="a")},
                      headers=h).status_code == 201
        assert c.post("/v1/targets", json={"id": "t", **target(1.0)}, headers=h).status_code == 409
        assert c.put("/v1/targets/none", json=target(1.0), headers=h).status_code == 404
