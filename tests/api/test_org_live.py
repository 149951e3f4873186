"""Live over real parts with one API serving two sites: readings of both sites on one real Mosquitto, each goes
to its own site's engine (rules, alerts and stream of that site only)."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

from api.auth import KeyRing, write_key
from api.main import create_app
from api.settings import MqttSection, Settings
from calc import topics
from calc.plant import parse_plant
from calc.schema import encode
from ingest.store.sqlite import SqliteStore
from tests.api.conftest import Env, Server, reading
from tests.api.test_live import mqtt_client, sse_events, wait_until
from tests.api.test_org import s2_data

RULE = {"name": "power", "metric": "power", "threshold": 200.0, "clear_threshold": 150.0,
        "scope": "meter", "target": "m3", "severity": "critical"}


def test_each_reading_reaches_its_own_sites_engine(env: Env, mqtt_url: str) -> None:
    env.clock.now = datetime.now(UTC)
    both = {"Authorization": f"Bearer {write_key(env.keys_file, 'org-admin', 'admin', ('s1', 's2'))}"}
    mqtt = MqttSection(url=mqtt_url)
    primary = env.settings(mqtt, live=True, client_id=f"api-org-{uuid.uuid4().hex[:8]}")
    data = s2_data()
    second = Settings(plant=parse_plant(data), plant_data=data, base_dir=env.tmp, api=primary.api, mqtt=mqtt)
    app = create_app(primary, SqliteStore(env.tmp / "store.sqlite"), KeyRing.load(env.keys_file), clock=env.clock,
                     sites=[(second, SqliteStore(env.tmp / "store-s2.sqlite"))])
    got: list[tuple[str, bytes]] = []
    sub = mqtt_client(mqtt_url)
    subscribed = threading.Event()
    sub.on_message = lambda c, u, m: got.append((m.topic, m.payload))
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.subscribe(f"{topics.ROOT}/+/alerts/#", qos=1)
    assert subscribed.wait(10)
    pub = mqtt_client(mqtt_url)
    stop = threading.Event()
    s2_events: list[tuple[str, dict[str, Any]]] = []
    s1_events: list[tuple[str, dict[str, Any]]] = []
    try:
        with Server(app) as server, httpx.Client(base_url=server.url, headers=both, timeout=10) as api:
            def status(site: str) -> dict[str, Any]:
                found: dict[str, Any] = api.get("/v1/status", params={"site": site}).json()
                return found

            wait_until("the API to subscribe", lambda: status("s1")["mqtt_subscribed"])
            for site, out in (("s1", s1_events), ("s2", s2_events)):
                url = f"{server.url}/v1/stream?site={site}&meters=all"   # meter events only when asked for
                threading.Thread(target=sse_events, args=(url, both, out, stop), daemon=True).start()
                wait_until(f"{site}'s stream subscriber", lambda s=site: status(s)["stream_subscribers"] == 1)
            for site in ("s1", "s2"):   # the same rule on both sites (rule ids are unique in the API database)
                assert api.post("/v1/rules", params={"site": site}, json={**RULE, "id": f"hot-{site}"}
                                ).status_code == 201
            now = datetime.now(UTC).replace(microsecond=0)
            pub.publish(topics.reading("s2", "b", "m3"), encode(reading("m3", 1, now, kw=250.0)),
                        qos=1).wait_for_publish()
            pub.publish(topics.reading("s1", "b", "m3"), encode(reading("m3", 1, now, kw=120.0)),
                        qos=1).wait_for_publish()
            fired = wait_until("s2's alert on MQTT", lambda: [(t, json.loads(p)) for t, p in got])
            assert fired[0][0] == f"{topics.ROOT}/s2/alerts/hot-s2" and fired[0][1]["alert"]["value"] == 250.0
            wait_until("s1's reading counted", lambda: status("s1")["messages"] >= 1)
            assert status("s2")["open_alerts"] == 1 and status("s1")["open_alerts"] == 0
            assert status("s2")["messages"] == 1   # only its own (anything else on the broker goes to s1's)
            wait_until("s2's meter on its stream", lambda: [d for e, d in s2_events if e == "meter"])
            wait_until("s1's meter on its stream", lambda: [d for e, d in s1_events if e == "meter"])
            assert {d["power_kw"] for e, d in s2_events if e == "meter"} == {250.0}
            assert {d["power_kw"] for e, d in s1_events if e == "meter"} == {120.0}
            assert [d["rule"] for e, d in s2_events if e == "alert"] == ["hot-s2"]
            assert [a["site"] for a in api.get("/v1/alerts", params={"site": "s2"}).json()["alerts"]] == ["s2"]
            assert api.get("/v1/alerts", params={"site": "s1"}).json()["alerts"] == []
            stop.set()
    finally:
        stop.set()
        sub.loop_stop()
        pub.loop_stop()
