"""The MQTT side of ingest: a paho-mqtt 2.x client (link.mqtt) with a persistent session, QoS 1 and manual acks.

MQTT 5 (session expiry) or 3.1.1 (clean_session false); "auto" tries 5 and falls back to 3.1.1 when
the broker refuses the protocol (the embedded amqtt broker does). paho runs its own network thread here.
Received messages go to a bounded queue; when it is full the network thread waits, so the broker holds
the rest (back-pressure).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt

from ingest.config import MqttSettings
from ingest.errors import IngestError
from link.mqtt import ProtocolChoice, Version, connect_args, is_unsupported_protocol, make_client

log = logging.getLogger(__name__)


class MqttError(IngestError, RuntimeError):
    """The broker could not be reached or refused us."""


@dataclass(frozen=True, slots=True)
class Received:
    topic: str
    payload: bytes
    mid: int
    qos: int
    received_us: int
    generation: int  # which connection it came on: a mid means nothing on a later connection


class Subscriber:
    """A persistent-session subscriber that hands messages to a bounded queue and acks on request."""

    def __init__(self, settings: MqttSettings, client_id: str, topic_filter: str, queue_size: int = 20_000,
                 session_expiry_s: int = 7 * 24 * 3600) -> None:
        self.settings = settings
        self.client_id = client_id
        self.topic_filter = topic_filter
        self.session_expiry_s = session_expiry_s
        self.queue: queue.Queue[Received] = queue.Queue(maxsize=queue_size)
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.stopping = threading.Event()
        self.last_error: str | None = None
        self.refusal: str | None = None  # why the broker refused us (login, authorisation), kept over later noise
        self._refused_protocol = False
        self.generation = 0
        self.choice = ProtocolChoice(settings.protocol)
        self.client = self._make_client()

    # ---- set-up ---------------------------------------------------------------------------------------

    @property
    def protocol(self) -> Version:
        return self.choice.protocol

    def _make_client(self) -> mqtt.Client:
        client = make_client(self.settings, self.client_id, self.protocol, persistent=True, manual_ack=True,
                             max_inflight=1000, reconnect_delay_s=(1, 5))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    def _connect_args(self) -> dict[str, Any]:
        return connect_args(self.settings, self.settings.keepalive_s, self.protocol, self.session_expiry_s)

    def start(self, timeout_s: float = 10.0) -> None:
        """Connect (retrying until `timeout_s`), subscribe, and run the network loop in a thread."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.client.connect(**self._connect_args())
                break
            except OSError as exc:
                self.last_error = f"cannot connect to {self.settings.effective_url}: {exc}"
                if time.monotonic() > deadline:
                    raise MqttError(self.last_error) from exc
                time.sleep(0.2)
        self.client.loop_start()
        v5_since = time.monotonic()
        while not self.subscribed.wait(0.05):
            # amqtt answers an MQTT 5 CONNECT with "unsupported protocol", or not at all: fall back to 3.1.1
            no_v5 = self._refused_protocol or (self.generation == 0 and
                                               self.choice.waited_for_connack(time.monotonic() - v5_since))
            if no_v5 and self.choice.fall_back():
                self.client.loop_stop()
                sock = self.client.socket()
                if sock is not None:
                    sock.close()
                self._refused_protocol = False
                self.client = self._make_client()
                self.client.connect(**self._connect_args())
                self.client.loop_start()
            if self.refusal is not None:  # a wrong login does not get better by retrying
                self.client.loop_stop()
                raise MqttError(self.refusal)
            if time.monotonic() > deadline:
                raise MqttError(self.last_error or f"not subscribed to {self.settings.effective_url} "
                                f"after {timeout_s} s")

    def stop(self) -> None:
        self.stopping.set()
        self.client.disconnect()
        self.client.loop_stop()

    # ---- callbacks (network thread) -----------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self.last_error = f"broker {self.settings.effective_url} refused the connection: {reason}"
            if is_unsupported_protocol(reason):
                self._refused_protocol = True
            else:
                self.refusal = self.last_error
            return
        self.generation += 1
        self.connected.set()
        if self.generation > 1:
            log.info("reconnected to %s; the persistent session sends what was not acknowledged",
                     self.settings.effective_url)
        client.subscribe(self.topic_filter, qos=1)

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        if all(not r.is_failure for r in reasons):
            self.subscribed.set()
        else:
            self.last_error = f"subscription to {self.topic_filter!r} refused: {[str(r) for r in reasons]}"

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.connected.clear()
        if not self.stopping.is_set() and self.refusal is None:
            self.last_error = f"disconnected from {self.settings.effective_url}: {reason}"
            if self.generation:
                log.warning("%s; reconnecting", self.last_error)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            topic = msg.topic
        except UnicodeDecodeError:  # not valid UTF-8: keep it readable, it will be dead-lettered
            topic = bytes(msg._topic).decode("utf-8", "replace")
        item = Received(topic, bytes(msg.payload), msg.mid, msg.qos, int(time.time() * 1_000_000), self.generation)
        # Wait for room: while we wait the socket is not read, so the broker keeps what we have not taken.
        while not self.stopping.is_set():
            try:
                self.queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    # ---- used by the worker thread ------------------------------------------------------------------

    def ack(self, items: list[Received]) -> None:
        for item in items:
            # Messages of an earlier connection are sent again by the broker (stored idempotently then).
            if item.qos > 0 and item.generation == self.generation:
                self.client.ack(item.mid, item.qos)

    def publish(self, topic: str, payload: bytes, qos: int = 0) -> None:
        """Publish (paho queues QoS 1 messages while disconnected and sends them after reconnecting)."""
        self.client.publish(topic, payload, qos=qos)
