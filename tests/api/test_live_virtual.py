"""Rules on a virtual meter over real parts: power readings of a main meter and two submeters published to a real
Mosquitto reach the API's live engine (uvicorn on a free port); an unmetered load appearing on the main fires the
rule "unmetered above 10 % for 2 minutes" on the rest `main - press-1 - press-2` (alert on MQTT, as any rule's),
and it resolves when the load is gone; a power rule on the rest watches main − Σ submeters."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from api.settings import MqttSection
from calc import topics
from calc.schema import encode
from tests.api.conftest import Server, reading
from tests.api.test_live import mqtt_client, wait_until
from tests.api.test_virtual import VirtualEnv

UNMETERED = {"id": "rest-unmetered", "name": "unmetered load", "metric": "unmetered", "comparison": ">",
             "threshold": 10.0, "clear_threshold": 5.0, "for_s": 120.0, "scope": "meter", "target": "rest"}
REST_POWER = {"id": "rest-power", "name": "rest power", "metric": "power", "threshold": 30.0, "scope": "meter",
              "target": "rest"}


def test_unmetered_rule_fires_and_resolves(tmp_path: Path, mqtt_url: str) -> None:
    env = VirtualEnv(tmp_path)
    env.clock.now = datetime.now(UTC)
    app = env.app(mqtt=MqttSection(url=mqtt_url), live=True, client_id=f"api-virtual-{uuid.uuid4().hex[:8]}")
    got: list[dict[str, object]] = []
    sub = mqtt_client(mqtt_url)
    subscribed = threading.Event()
    sub.on_message = lambda c, u, m: got.append(json.loads(m.payload))
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.subscribe(f"{topics.ROOT}/s1/alerts/#", qos=1)
    assert subscribed.wait(10)
    pub = mqtt_client(mqtt_url)
    seq = {"main": 0, "press-1": 0, "press-2": 0}

    def minute(ts: datetime, main_kw: float, p1_kw: float, p2_kw: float) -> None:
        for meter, kw in (("press-1", p1_kw), ("press-2", p2_kw), ("main", main_kw)):
            seq[meter] += 1
            pub.publish(topics.reading("s1", "a", meter), encode(reading(meter, seq[meter], ts, kw=kw)),
                        qos=1).wait_for_publish()

    try:
        with Server(app) as server:
            api = httpx.Client(base_url=server.url, headers=env.h("engineer"), timeout=10)
            wait_until("the API to subscribe", lambda: api.get("/v1/status").json()["mqtt_subscribed"])
            assert api.post("/v1/rules", json=UNMETERED).status_code == 201
            assert api.post("/v1/rules", json=REST_POWER).status_code == 201
            bad = {**UNMETERED, "id": "bad", "target": "main"}
            assert api.post("/v1/rules", json=bad).status_code == 422   # not a virtual meter
            t0 = datetime.now(UTC).replace(microsecond=0)
            minute(t0, 100.0, 50.0, 48.0)                 # 2 % unmetered: quiet
            for i in range(1, 5):                         # a 42 kW load no submeter sees: 29.6 %, four minutes
                minute(t0 + timedelta(minutes=i), 142.0, 52.0, 48.0)
            fired = wait_until("both alerts to fire", lambda: (f := [g for g in got if g["transition"] == "fire"])
                               and len(f) == 2 and f)
            by_rule = {f["alert"]["rule"]: f["alert"] for f in fired}  # type: ignore[index]
            assert abs(by_rule["rest-power"]["value"] - 42.0) < 1e-9
            assert abs(by_rule["rest-unmetered"]["value"] - 42.0 / 142.0 * 100) < 1e-9
            # it fired at the first sample 2 minutes into the breach, not before
            assert by_rule["rest-unmetered"]["fired_at"] == (t0 + timedelta(minutes=3)).isoformat()
            alerts = api.get("/v1/alerts").json()["alerts"]
            assert {a["rule"] for a in alerts if a["state"] == "firing"} == {"rest-power", "rest-unmetered"}
            minute(t0 + timedelta(minutes=5), 103.0, 52.0, 48.0)   # the load is gone: 2.9 %
            resolved = wait_until("both to resolve", lambda: (r := [g for g in got if g["transition"] == "resolve"])
                                  and len(r) == 2 and r)
            assert {r["alert"]["rule"] for r in resolved} == {"rest-power", "rest-unmetered"}  # type: ignore[index]
            api.close()
    finally:
        sub.loop_stop()
        pub.loop_stop()
