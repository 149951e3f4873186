"""Helpers for the edge tests: an MQTT collector and an acker (ingest's acknowledgements, without ingest) on a real
broker, config files, polling waits with deadlines."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from calc import topics
from calc.acks import encode_acks
from calc.schema import ReadingMessage, decode


def wait_until(condition: Callable[[], bool], timeout_s: float = 15.0, what: str = "condition") -> None:
    """Poll a condition until it holds; fail naming what was awaited (readiness, never a fixed sleep)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


async def eventually(condition: Callable[[], bool], timeout_s: float = 15.0, what: str = "condition") -> None:
    """Async twin of wait_until, for tests whose servers run on the test's own event loop."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


class Collector:
    """Subscribes to everything under one site and keeps decoded reading messages and status payloads."""

    def __init__(self, url: str, site: str, username: str | None = None, password: str | None = None,
                 ca_file: Path | None = None, cert_file: Path | None = None, key_file: Path | None = None) -> None:
        parts = urlsplit(url)
        self.site = site
        self.readings: list[tuple[str, ReadingMessage]] = []
        self.status: list[dict[str, Any]] = []
        self.invalid: list[bytes] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:8]}",
                                  protocol=mqtt.MQTTv311)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"carbonwatch/v1/{site}/#", qos=1)
        self.subscriptions = 0  # one more after each (re)connection
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self._on_subscribe()
        self.client.reconnect_delay_set(1, 2)
        if username is not None:
            self.client.username_pw_set(username, password)
        if ca_file is not None:
            self.client.tls_set(ca_certs=str(ca_file), certfile=str(cert_file) if cert_file else None,
                                keyfile=str(key_file) if key_file else None)
        self.client.on_message = self._on_message
        self.client.connect_async(parts.hostname or "127.0.0.1",
                                  parts.port or (8883 if parts.scheme == "mqtts" else 1883))
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise AssertionError(f"collector could not subscribe on {url}")

    def _on_subscribe(self) -> None:
        self.subscriptions += 1
        self._subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            if msg.topic.endswith("/reading"):
                try:
                    self.readings.append((msg.topic, decode(msg.payload)))
                except ValueError:
                    self.invalid.append(msg.payload)
            elif msg.topic.endswith("/status"):
                self.status.append(json.loads(msg.payload))

    def messages(self, meter: str | None = None) -> list[ReadingMessage]:
        with self._lock:
            return [m for _, m in self.readings if meter is None or m.meter == meter]

    def topics(self) -> set[str]:
        with self._lock:
            return {t for t, _ in self.readings}

    def statuses(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.status)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def unique_site() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


def plant_toml(site: str, gateways: str, meters: str, mqtt_url: str, state_dir: Path, edge_extra: str = "") -> str:
    """A plant file in the demo's shape, with the given gateways and meters sections."""
    return f"""
[site]
id = "{site}"
region = "CN"
start = 2026-01-01T00:00:00Z

{gateways}

{meters}

[mqtt]
url = "{mqtt_url}"

[edge]
agent = "edge-test"
state_dir = "{state_dir}"
status_interval_s = 1.0
{edge_extra}
"""


def write_plant(path: Path, *args: Any, **kwargs: Any) -> Path:
    path.write_text(plant_toml(*args, **kwargs))
    return path


class Acker:
    """Stands in for ingest's acknowledgements: a real paho client that subscribes to a site's readings and, about
    every `interval_s`, publishes on each agent's ack topic (calc.acks) the (meter, seq) of what it received.

    `hold(predicate)`: messages for which it returns True are received but not acknowledged (a store that failed);
    `release()` acknowledges them too. A persistent session (`client_id` fixed, clean_session False), as ingest's:
    what is published while it is away waits at the broker, until the broker loses it.
    """

    def __init__(self, url: str, site: str, interval_s: float = 0.1, client_id: str | None = None) -> None:
        parts = urlsplit(url)
        self.site = site
        self.interval_s = interval_s
        self.received: dict[tuple[str, int], int] = {}  # (meter, seq) -> copies received
        self.messages: dict[tuple[str, int], ReadingMessage] = {}
        self.acked: set[tuple[str, int]] = set()
        self.ack_payloads = 0
        self._held: Callable[[ReadingMessage], bool] | None = None
        self._due: dict[str, dict[str, set[int]]] = {}  # agent -> meter -> seqs to acknowledge
        self._kept: dict[str, dict[str, set[int]]] = {}  # held back: agent -> meter -> seqs
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"acker-{uuid.uuid4().hex[:8]}",
                                  protocol=mqtt.MQTTv311, clean_session=False)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"carbonwatch/v1/{site}/+/+/reading", qos=1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 2)
        self.client.connect_async(parts.hostname or "127.0.0.1", parts.port or 1883)
        self.client.loop_start()
        self._thread = threading.Thread(target=self._ack_loop, name="acker", daemon=True)
        self._thread.start()
        if not self._subscribed.wait(10):
            self.close()
            raise AssertionError(f"acker could not subscribe on {url}")

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        message = decode(msg.payload)
        key = (message.meter, message.seq)
        with self._lock:
            self.received[key] = self.received.get(key, 0) + 1
            self.messages.setdefault(key, message)
            held = self._held is not None and self._held(message)
            target = self._kept if held else self._due
            target.setdefault(message.agent or "", {}).setdefault(message.meter, set()).add(message.seq)

    def _ack_loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.flush()

    def flush(self) -> None:
        """Acknowledge now what is due."""
        with self._lock:
            due, self._due = self._due, {}
        for agent, seqs in due.items():
            self.client.publish(topics.edge_ack(self.site, agent), encode_acks(agent, seqs), qos=1)
            with self._lock:
                self.acked |= {(meter, seq) for meter, ss in seqs.items() for seq in ss}
                self.ack_payloads += 1

    def hold(self, predicate: Callable[[ReadingMessage], bool]) -> None:
        with self._lock:
            self._held = predicate

    def release(self) -> None:
        with self._lock:
            self._held = None
            for agent, meters in self._kept.items():
                for meter, seqs in meters.items():
                    self._due.setdefault(agent, {}).setdefault(meter, set()).update(seqs)
            self._kept = {}

    def copies(self, meter: str, seq: int) -> int:
        with self._lock:
            return self.received.get((meter, seq), 0)

    def seqs(self, meter: str) -> list[int]:
        """Sequence numbers received of a meter, each once, in order."""
        with self._lock:
            return sorted(s for m, s in self.messages if m == meter)

    def acked_seqs(self, meter: str) -> set[int]:
        with self._lock:
            return {s for m, s in self.acked if m == meter}

    def readings(self, meter: str) -> list[ReadingMessage]:
        """One copy of each message of a meter, in seq order."""
        with self._lock:
            return [self.messages[(meter, s)] for s in sorted(s for m, s in self.messages if m == meter)]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.client.disconnect()
        self.client.loop_stop()
