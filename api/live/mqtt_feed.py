"""The API's MQTT client (paho-mqtt 2.x, MQTT 3.1.1 so the embedded amqtt broker works too): it subscribes to
the reading topics and ingest's co2e topics for live evaluation and publishes alert notifications; it
reconnects by itself. URL, login and TLS: link.mqtt (one rule for every part).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import paho.mqtt.client as mqtt

from api.settings import MqttSection
from calc.topics import READING_FILTER
from link.mqtt import connect_args, make_client

Handler = Callable[[str, bytes, float], None]  # topic, payload, received (epoch s)


class MqttLink:
    """One client: QoS 1 subscription with a persistent session (the broker keeps readings while we are away)."""

    def __init__(self, settings: MqttSection, client_id: str, on_message: Handler,
                 topic_filter: str | Sequence[str] = READING_FILTER, clean_session: bool = False) -> None:
        self.settings = settings
        self.topic_filters = [topic_filter] if isinstance(topic_filter, str) else list(topic_filter)
        self.on_message = on_message
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.last_error: str | None = None
        self.client = make_client(settings, client_id, persistent=not clean_session)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_msg
        self.client.on_connect_fail = self._on_connect_fail

    def start(self) -> None:
        """Connect in the background: a broker that is not there yet is retried, never fatal."""
        self.client.connect_async(**connect_args(self.settings, keepalive_s=30))
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        self.client.publish(topic, payload, qos=qos)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self.last_error = f"broker {self.settings.effective_url} refused the connection: {reason}"
            return
        self.connected.set()
        self.last_error = None
        client.subscribe([(f, 1) for f in self.topic_filters])

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        self.last_error = f"cannot connect to {self.settings.effective_url}; retrying"

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        if all(not r.is_failure for r in reasons):
            self.subscribed.set()
        else:
            self.last_error = f"subscription to {self.topic_filters!r} refused"

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.connected.clear()
        self.subscribed.clear()
        self.last_error = f"disconnected from {self.settings.effective_url}: {reason}"

    def _on_msg(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self.on_message(msg.topic, bytes(msg.payload), time.time())


class Inbox:
    """Messages from the network thread to the event loop, handed over in batches: the network thread appends
    under a lock and wakes the loop only when the inbox was empty, the loop takes everything at once (one
    thread hop per batch, not per message). While `max_messages` wait, the network thread waits too, so the
    broker holds the rest (back-pressure, nothing dropped)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, max_messages: int = 10_000) -> None:
        self.loop = loop
        self.max_messages = max_messages
        self._items: list[tuple[str, bytes, float]] = []
        self._cond = threading.Condition()
        self._ready = asyncio.Event()

    def put(self, topic: str, payload: bytes, received: float) -> None:
        """The network thread's handler (a `Handler`)."""
        with self._cond:
            while len(self._items) >= self.max_messages and not self.loop.is_closed():
                self._cond.wait(1.0)
            self._items.append((topic, payload, received))
            first = len(self._items) == 1
        if first and not self.loop.is_closed():
            with contextlib.suppress(RuntimeError):   # the loop closed in between: nothing will read it
                self.loop.call_soon_threadsafe(self._ready.set)

    async def take(self) -> list[tuple[str, bytes, float]]:
        """Every message waiting now (at least one), oldest first."""
        while True:
            await self._ready.wait()
            self._ready.clear()
            with self._cond:
                items, self._items = self._items, []
                self._cond.notify_all()
            if items:
                return items
