"""The live engine fed message by message (no broker, no sleeps): alerts fire and clear at exactly the expected
samples, offline rules follow an injected clock, the lifecycle is kept, and a restart does not fire twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.live.rule_runner import Engine
from calc import topics
from calc.schema import encode
from tests.api.conftest import Env, reading

T0 = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)


def feed(app: FastAPI, client: TestClient, meter: str, area: str, values: list[float], step_s: float = 10.0,
         t0: datetime = T0, first_seq: int = 0) -> None:
    """Publish-equivalent: hand each message to the engine on the app's own event loop."""
    engine: Engine = app.state.engine
    for i, kw in enumerate(values):
        msg = reading(meter, first_seq + i, t0 + timedelta(seconds=i * step_s), kw=kw)
        payload = encode(msg)
        client.portal.call(engine.handle, topics.reading("s1", area, meter), payload, 0.0)  # type: ignore[union-attr]


def alerts(client: TestClient, env: Env) -> list[dict[str, Any]]:
    return list(reversed(client.get("/v1/alerts", headers=env.h("viewer")).json()["alerts"]))


def test_for_duration_and_hysteresis_fire_and_clear_at_the_expected_samples(env: Env) -> None:
    app = env.app()
    with TestClient(app) as c:
        rule = {"id": "press-peak", "name": "press peak", "metric": "power", "threshold": 400.0,
                "clear_threshold": 350.0, "for_s": 30.0, "scope": "area", "target": "a", "severity": "critical"}
        assert c.post("/v1/rules", json=rule, headers=env.h("engineer")).status_code == 201
        # m1 alone carries area a (m2 silent): samples every 10 s
        #        0    1    2    3    4    5    6    7
        feed(app, c, "m1", "a", [100, 410, 420, 430, 440, 390, 360, 349])
        got = alerts(c, env)
    assert len(got) == 1
    a = got[0]
    assert a["fired_at"] == (T0 + timedelta(seconds=40)).isoformat()     # sample 4: 30 s after the breach at 1
    assert a["value"] == 440.0 and a["unit"] == "kW" and a["severity"] == "critical"
    assert a["resolved_at"] == (T0 + timedelta(seconds=70)).isoformat()  # sample 7: first below 350
    assert a["resolved_value"] == 349.0 and a["rule_version"] == 1


def test_area_power_is_the_sum_of_its_meters(env: Env) -> None:
    app = env.app()
    with TestClient(app) as c:
        c.post("/v1/rules", json={"id": "a-sum", "name": "area a", "metric": "power", "threshold": 500.0,
                                  "scope": "area", "target": "a"}, headers=env.h("engineer"))
        feed(app, c, "m1", "a", [300])
        feed(app, c, "m3", "b", [900], t0=T0 + timedelta(seconds=1))   # other area: no effect
        assert alerts(c, env) == []
        feed(app, c, "m2", "a", [250], t0=T0 + timedelta(seconds=2))   # 300 + 250 > 500
        got = alerts(c, env)
    assert [(x["rule"], x["value"]) for x in got] == [("a-sum", 550.0)]


def test_lifecycle_acknowledge_then_resolve(env: Env) -> None:
    app = env.app()
    with TestClient(app) as c:
        c.post("/v1/rules", json={"id": "r", "name": "m1 high", "metric": "power", "threshold": 100.0,
                                  "scope": "meter", "target": "m1"}, headers=env.h("engineer"))
        feed(app, c, "m1", "a", [150])
        alert_id = alerts(c, env)[0]["id"]
        assert c.post(f"/v1/alerts/{alert_id}/acknowledge", json={"comment": "tool change"},
                      headers=env.h("viewer")).status_code == 403
        ack = c.post(f"/v1/alerts/{alert_id}/acknowledge", json={"comment": "tool change"},
                     headers=env.h("engineer"))
        assert ack.status_code == 200 and ack.json()["acknowledged_by"] == "engineer"
        assert c.post(f"/v1/alerts/{alert_id}/acknowledge", json={"comment": "again"},
                      headers=env.h("engineer")).status_code == 409
        feed(app, c, "m1", "a", [150, 90], t0=T0 + timedelta(seconds=10), first_seq=1)
        detail = c.get(f"/v1/alerts/{alert_id}", headers=env.h("viewer")).json()
    assert detail["state"] == "resolved"
    assert [(e["transition"], e["actor"]) for e in detail["events"]] == [
        ("fire", "rule-engine"), ("acknowledge", "engineer"), ("resolve", "rule-engine")]
    assert detail["events"][1]["comment"] == "tool change"


def test_offline_rule_follows_the_injected_clock(env: Env) -> None:
    app = env.app()
    with TestClient(app) as c:
        c.post("/v1/rules", json={"id": "m3-offline", "name": "m3 offline", "metric": "meter_offline",
                                  "threshold": 120.0, "scope": "meter", "target": "m3"}, headers=env.h("engineer"))
        engine: Engine = app.state.engine
        feed(app, c, "m3", "b", [10.0])                      # last sample at T0
        for seconds in (60, 120):                            # 120 s silent is not > 120
            c.portal.call(engine.tick, T0 + timedelta(seconds=seconds))  # type: ignore[union-attr]
        assert alerts(c, env) == []
        c.portal.call(engine.tick, T0 + timedelta(seconds=121))  # type: ignore[union-attr]
        assert [(x["state"], x["value"]) for x in alerts(c, env)] == [("firing", 121.0)]
        env.clock.now = T0 + timedelta(seconds=130)
        feed(app, c, "m3", "b", [10.0], t0=T0 + timedelta(seconds=125), first_seq=1)
        c.portal.call(engine.tick, T0 + timedelta(seconds=130))  # type: ignore[union-attr]
        got = alerts(c, env)
    assert [(x["state"], x["resolved_value"]) for x in got] == [("resolved", 5.0)]


def test_a_restart_does_not_fire_an_open_alert_again(env: Env) -> None:
    rule = {"id": "r", "name": "m1 high", "metric": "power", "threshold": 100.0, "scope": "meter", "target": "m1"}
    app = env.app()
    with TestClient(app) as c:
        c.post("/v1/rules", json=rule, headers=env.h("engineer"))
        feed(app, c, "m1", "a", [150, 160])
    app = env.app()
    with TestClient(app) as c:
        feed(app, c, "m1", "a", [170, 50], t0=T0 + timedelta(seconds=20), first_seq=2)
        got = alerts(c, env)
    assert [(x["state"], x["value"], x["resolved_value"]) for x in got] == [("resolved", 150.0, 50.0)]


def test_bad_messages_are_counted_and_never_raise(env: Env) -> None:
    app = env.app()
    with TestClient(app) as c:
        engine: Engine = app.state.engine
        for topic, payload in [("carbonwatch/v1/s1/a/m1/reading", b"{not json"),
                               ("carbonwatch/v1/s1/a/m1/reading", b'{"v": 2}'),
                               ("not/a/carbonwatch/topic", b"{}"),
                               ("carbonwatch/v1/s9/a/m1/reading", encode(reading("m1", 0, T0, kw=1.0)))]:
            c.portal.call(engine.handle, topic, payload, 0.0)  # type: ignore[union-attr]
        status = c.get("/v1/status", headers=env.h("viewer")).json()
    assert (status["messages"], status["bad_messages"]) == (4, 3)
