"""One allowance projection for /v1/balance and the live allowance rule (api.projection): along the boundary's
hour-of-week profile of the 28 days before now when there is history, else the burn rate each used before.

A real SQLite store is filled through ingest's converter; the engine is fed ingest's derived co2e messages on
the app's loop with an injected clock (no broker). Expected figures are hand computations from the kWh written
and the grid factor.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.live.rule_runner import Engine
from tests.api.conftest import fill_store
from tests.api.test_live_cumulative import co2e_payload, send_co2e
from tests.api.test_live_rate import NOW, RateEnv, grid_f, plant

MARCH = datetime(2026, 3, 1, tzinfo=NOW.tzinfo)
APRIL = datetime(2026, 4, 1, tzinfo=NOW.tzinfo)


def weekday_weekend(start: datetime, hours: int) -> list[tuple[datetime, float]]:
    """10 kWh in each hour of a weekday, 1 kWh in each weekend hour (the hour that starts at the point's ts)."""
    return [(start + timedelta(hours=h), 10.0 if (start + timedelta(hours=h)).weekday() < 5 else 1.0)
            for h in range(hours)]


def _rule_and_allowance(c: TestClient, env: RateEnv) -> int:
    made = c.post("/v1/allowances", json={"start": MARCH.isoformat(), "end": APRIL.isoformat(), "amount": 100,
                                          "unit": "t"}, headers=env.h("admin"))
    assert made.status_code == 201, made.text
    rule = c.post("/v1/rules", json={"id": "proj", "name": "projection over the allowance",
                                     "metric": "allowance_projection", "threshold": 1.0}, headers=env.h("engineer"))
    assert rule.status_code == 201, rule.text
    return int(made.json()["id"])


def test_api_and_live_rule_project_along_the_same_weekly_profile(tmp_path: Path) -> None:
    env = RateEnv(tmp_path)
    env.clock.now = NOW                                     # Tuesday 10 March 2026, 12:00 UTC
    fill_store(env.store, plant(), {"m1": weekday_weekend(NOW - timedelta(days=28), 28 * 24)})
    f = grid_f()
    app = env.app()
    with TestClient(app) as c:
        engine: Engine = app.state.engine
        allowance = _rule_and_allowance(c, env)
        c.portal.call(engine.refresh_projection, app.state.store)  # type: ignore[union-attr]
        status = c.get(f"/v1/allowances/{allowance}", headers=env.h("viewer")).json()["status"]
        rule = c.get("/v1/rules/proj", headers=env.h("viewer")).json()
        # live: 5 kWh more after start-up, in the hour that is not whole yet (not in either profile)
        env.clock.now = NOW + timedelta(minutes=2)
        fill_store(env.store, plant(), {"m1": [(NOW + timedelta(minutes=1), 5.0)]})
        send_co2e(app, c, "m1", co2e_payload("m1", NOW + timedelta(minutes=1), NOW + timedelta(minutes=1), 5.0 * f))
        later = c.get(f"/v1/allowances/{allowance}", headers=env.h("viewer")).json()["status"]
        spec = next(r.spec for r in engine.rules if r.id == "proj")
        live_later = engine.live.allowance_projection(spec, env.clock.now)
    # used 1 – 10 March 12:00 (1 March a Sunday): 24 × 1 + 5 × 24 × 10 + 48 × 1 + 24 × 10 + 12 × 10 = 1632 kWh.
    # Every hour of the week was seen four times: weekday hours 10 f, weekend hours 1 f. 516 h left in March,
    # 144 of them at weekends (14/15, 21/22, 28/29): expected 372 × 10 f + 144 f = 3864 f.
    assert status["projection_method"] == "hour_of_week_profile"
    assert status["used_kg"] == pytest.approx(1632 * f)
    assert status["projected_kg"] == pytest.approx((1632 + 3864) * f)
    assert rule["projection_method"] == "hour_of_week_profile"
    assert rule["value"] == pytest.approx(status["projected_kg"] / status["allowance_kg"], rel=1e-12)
    # the flat 24 h burn rate (all weekday hours: 10 f/h) would have said 1632 f + 516 × 10 f
    assert status["projected_kg"] < (1632 + 5160) * f * 0.9
    # after a live message both still agree: the same used, the same profile, the same function
    assert later["used_kg"] == pytest.approx((1632 + 5) * f)
    assert live_later is not None
    assert live_later.check.projection.used_kg == pytest.approx(later["used_kg"], rel=1e-12)
    assert live_later.check.projection.projected_kg == pytest.approx(later["projected_kg"], rel=1e-12)
    assert live_later.check.projection.runs_out_at == datetime.fromisoformat(later["runs_out_at"]) \
        if later["runs_out_at"] else live_later.check.projection.runs_out_at is None


def test_without_history_each_falls_back_to_its_burn_rate(tmp_path: Path) -> None:
    """An empty store at start-up, then 30 min of readings in an hour that is not whole: no profile anywhere;
    the API projects with its 24 h burn rate, the live rule with its 1 h burn rate, as before."""
    env = RateEnv(tmp_path)
    start = NOW
    env.clock.now = start
    f = grid_f()
    app = env.app()
    with TestClient(app) as c:
        engine: Engine = app.state.engine
        allowance = _rule_and_allowance(c, env)
        c.portal.call(engine.refresh_projection, app.state.store)  # type: ignore[union-attr]
        for minute in range(1, 31):
            ts = start + timedelta(minutes=minute)
            fill_store(env.store, plant(), {"m1": [(ts, 2.0)]})
            send_co2e(app, c, "m1", co2e_payload("m1", ts, ts, 2.0 * f))
        env.clock.now = start + timedelta(minutes=31)
        status = c.get(f"/v1/allowances/{allowance}", headers=env.h("viewer")).json()["status"]
        rule = c.get("/v1/rules/proj", headers=env.h("viewer")).json()
    hours_left = (APRIL - env.clock.now).total_seconds() / 3600
    used = 60 * f
    assert status["projection_method"] == "burn_rate" and status["burn_window_h"] == 24
    assert status["used_kg"] == pytest.approx(used)
    assert status["projected_kg"] == pytest.approx(used + used / 24 * hours_left)
    assert rule["projection_method"] == "burn_rate"
    assert rule["value"] == pytest.approx((used + used / 1 * hours_left) / 100_000)
