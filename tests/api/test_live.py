"""Live over real parts: a reading published to a real Mosquitto reaches the API (uvicorn on a free port), fires
an alert that arrives on MQTT, at a webhook receiver and on the SSE stream; a failing webhook is retried."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from api.notify import verify
from api.settings import MqttSection, Webhook
from calc import topics
from calc.schema import encode
from deploy.services import free_port, wait_for_port
from tests.api.conftest import Env, Server, reading

T = TypeVar("T")
SECRET = "s3cret-for-the-webhook-test"


def wait_until(what: str, probe: Callable[[], T | None], timeout_s: float = 20.0) -> T:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


class Receiver:
    """A real HTTP webhook receiver on a free loopback port; answers 500 to the first `fail_first` posts."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.posts: list[tuple[dict[str, str], bytes, int]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                code = 500 if len(outer.posts) < outer.fail_first else 200
                outer.posts.append(({k.lower(): v for k, v in self.headers.items()}, body, code))
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers() -> Iterator[tuple[Receiver, Receiver]]:
    ok, flaky = Receiver(), Receiver(fail_first=2)
    yield ok, flaky
    ok.close()
    flaky.close()


def mqtt_client(url: str) -> mqtt.Client:
    parts = urlsplit(url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:8]}",
                         protocol=mqtt.MQTTv311)
    client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
    client.loop_start()
    return client


def sse_events(url: str, headers: dict[str, str], out: list[tuple[str, dict[str, Any]]],
               stop: threading.Event) -> None:
    try:
        with httpx.stream("GET", url, headers=headers, timeout=httpx.Timeout(5.0, read=None)) as resp:
            event = ""
            for line in resp.iter_lines():
                if stop.is_set():
                    return
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    out.append((event, json.loads(line[6:])))
    except httpx.RemoteProtocolError:
        if not stop.is_set():  # the server closing the stream at shutdown is expected; before that it is not
            raise


@pytest.fixture(params=["mosquitto", "amqtt"])
def broker_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A real Mosquitto, or the embedded amqtt broker (MQTT 3.1.1 only) run as `carbonwatch broker`."""
    if request.param == "mosquitto":
        yield request.getfixturevalue("mqtt_url")
        return
    port = free_port()
    log = (tmp_path / "amqtt.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "deploy.cli", "broker", "--host", "127.0.0.1", "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port("127.0.0.1", port, 30, proc)
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def test_alert_reaches_mqtt_webhooks_and_the_stream(env: Env, broker_url: str,
                                                    receivers: tuple[Receiver, Receiver]) -> None:
    mqtt_url = broker_url
    ok, flaky = receivers
    env.clock.now = datetime.now(UTC)
    hooks = (Webhook(url=ok.url, secret=SECRET, backoff_s=0.05),
             Webhook(url=flaky.url, secret=SECRET, backoff_s=0.05, max_attempts=4))
    app = env.app(mqtt=MqttSection(url=mqtt_url), live=True, webhooks=hooks,
                  client_id=f"api-test-{uuid.uuid4().hex[:8]}")
    got: list[tuple[str, bytes]] = []
    sub = mqtt_client(mqtt_url)
    subscribed = threading.Event()
    sub.on_message = lambda c, u, m: got.append((m.topic, m.payload))
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.subscribe(f"{topics.ROOT}/s1/alerts/#", qos=1)
    assert subscribed.wait(10)
    pub = mqtt_client(mqtt_url)
    stop = threading.Event()
    events: list[tuple[str, dict[str, Any]]] = []
    with Server(app) as server:
        api = httpx.Client(base_url=server.url, headers=env.h("engineer"), timeout=10)
        wait_until("the API to subscribe", lambda: api.get("/v1/status").json()["mqtt_subscribed"])
        watching = f"{server.url}/v1/stream?meter=m3"   # m3's every update (others get aggregates only)
        reader = threading.Thread(target=sse_events, args=(watching, env.h("viewer"), events, stop), daemon=True)
        reader.start()
        wait_until("the stream subscriber", lambda: api.get("/v1/status").json()["stream_subscribers"] == 1)
        rule = {"id": "oven-hot", "name": "oven power", "metric": "power", "threshold": 200.0,
                "clear_threshold": 150.0, "scope": "meter", "target": "m3", "severity": "critical"}
        assert api.post("/v1/rules", json=rule).status_code == 201
        now = datetime.now(UTC).replace(microsecond=0)
        pub.publish(topics.reading("s1", "b", "m3"), encode(reading("m3", 1, now, kw=250.0)), qos=1).wait_for_publish()

        fired = wait_until("the alert on MQTT", lambda: [json.loads(p) for _, p in got])
        assert got[0][0] == "carbonwatch/v1/s1/alerts/oven-hot"
        assert fired[0]["transition"] == "fire" and fired[0]["alert"]["value"] == 250.0
        wait_until("the webhook", lambda: len(ok.posts) == 1)
        wait_until("the retried webhook", lambda: len(flaky.posts) == 3)
        for headers, body, _ in ok.posts + flaky.posts:
            assert verify(SECRET, headers["x-carbonwatch-timestamp"], body, headers["x-carbonwatch-signature"])
            assert json.loads(body)["alert"]["rule"] == "oven-hot"
        assert [code for _, _, code in flaky.posts] == [500, 500, 200]
        assert [h["x-carbonwatch-attempt"] for h, _, _ in flaky.posts] == ["1", "2", "3"]
        assert len({body for _, body, _ in flaky.posts}) == 1  # the same delivery each time
        assert not verify("wrong-secret-wrong-secret", ok.posts[0][0]["x-carbonwatch-timestamp"], ok.posts[0][1],
                          ok.posts[0][0]["x-carbonwatch-signature"])

        alert_events = wait_until("the alert on the stream", lambda: [d for e, d in events if e == "alert"])
        assert alert_events[0]["transition"] == "fire" and alert_events[0]["rule"] == "oven-hot"
        meter_events = [d for e, d in events if e == "meter"]
        assert meter_events[0]["meter"] == "m3" and meter_events[0]["power_kw"] == 250.0

        # it clears below the clear threshold, and that is notified too
        later = reading("m3", 2, now + timedelta(seconds=1), kw=140.0)
        pub.publish(topics.reading("s1", "b", "m3"), encode(later), qos=1).wait_for_publish()
        wait_until("the resolve on MQTT", lambda: len(got) >= 2)
        assert json.loads(got[1][1])["transition"] == "resolve"
        wait_until("the resolve webhook", lambda: len(ok.posts) == 2)
        deliveries = app.state.db.query("SELECT url, attempt, status, error FROM webhook_deliveries "
                                        "WHERE url = ? ORDER BY id", (flaky.url,))
        assert [(d["attempt"], d["status"], d["error"]) for d in deliveries[:3]] == [
            (1, 500, "HTTP 500"), (2, 500, "HTTP 500"), (3, 200, None)]
        stop.set()
        api.close()
    sub.loop_stop()
    pub.loop_stop()


def test_the_api_starts_without_a_broker_and_says_so(env: Env) -> None:
    dead = f"mqtt://127.0.0.1:{free_port()}"
    app = env.app(mqtt=MqttSection(url=dead), live=True, client_id="api-no-broker")
    with Server(app) as server:
        api = httpx.Client(base_url=server.url, headers=env.h("viewer"), timeout=10)
        assert api.get("/healthz").json()["ok"] is True
        status = wait_until("an error", lambda: (s := api.get("/v1/status").json())["mqtt_error"] and s)
        assert status["mqtt_connected"] is False and status["mqtt_url"] == dead
        assert api.get("/v1/balance").status_code == 200
        api.close()
