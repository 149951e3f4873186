"""MQTT side of the agent (paho-mqtt 2.x, client from link.mqtt): MQTT 5 first with a fallback to 3.1.1, QoS 1,
TLS and credentials, retained birth and last-will status per agent, and the subscription to ingest's acknowledgements.

paho runs on the agent's asyncio loop, not on a thread of its own (the aiomqtt way): its socket is watched
with add_reader/add_writer and a supervisor task does keep-alive and reconnects with capped, jittered
backoff. A network thread would hand the GIL back and forth on every publish, which costs more than the
publishing itself. paho keeps unacknowledged QoS 1 messages across reconnects and sends them again; the spool
covers everything else (a restart, a new client after the protocol fallback). The session is clean, so the ack
topic is subscribed afresh on every connection (acks sent meanwhile are lost; the outbox publishes again).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import ssl
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from edge.config import MqttSettings
from link.backoff import backoff_delay
from link.mqtt import V5, ProtocolChoice, Version, make_client

log = logging.getLogger(__name__)

MISC_INTERVAL_S = 0.5  # keep-alive bookkeeping and reconnect checks


def status_payload(status: str, site: str, agent: str, **extra: Any) -> bytes:
    body = {"v": 1, "status": status, "site": site, "agent": agent,
            "ts": datetime.now(UTC).isoformat().replace("+00:00", "Z"), **extra}
    return json.dumps(body).encode()


class Publisher:
    """One paho client at a time; `generation` changes whenever unacknowledged messages were forgotten."""

    def __init__(self, settings: MqttSettings, site: str, agent: str, status_topic: str,
                 on_puback: Callable[[int, int], None], on_connection: Callable[[bool], None],
                 window: int = 256, rng: random.Random | None = None, ack_topic: str | None = None,
                 on_ack_message: Callable[[bytes], None] | None = None) -> None:
        self.settings = settings
        self.site = site
        self.agent = agent
        self.status_topic = status_topic
        self.ack_topic = ack_topic  # subscribed (QoS 1) on every connection, when given
        self._on_puback = on_puback
        self._on_ack_message = on_ack_message
        self._on_connection = on_connection
        self.window = window
        self._rng = rng or random.Random()
        self.choice = ProtocolChoice(settings.protocol)
        self.generation = 0
        self.connected = False
        self.last_error: str | None = None
        self._client: mqtt.Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._sock: Any = None
        self._fd = -1
        self._waiting: dict[int, asyncio.Future[None]] = {}  # mid -> acknowledged
        self._supervisor: asyncio.Task[None] | None = None
        self._closing = False
        self.status_extra: Callable[[], dict[str, Any]] = dict

    @property
    def protocol(self) -> Version:
        return self.choice.protocol

    @property
    def protocol_name(self) -> str:
        return self.choice.name

    # -- the client and its socket on our loop ------------------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        client_id = self.settings.client_id or f"carbonwatch-edge-{self.site}-{self.agent}"
        # no paho reconnects: the supervisor below reconnects on this loop; status messages come on top of the window
        client = make_client(self.settings, client_id, self.protocol, max_inflight=self.window + 8,
                             reconnect_delay_s=None)
        client.will_set(self.status_topic, status_payload("offline", self.site, self.agent, reason="lost"),
                        qos=1, retain=True)
        gen = self.generation
        client.on_connect = lambda c, u, f, rc, p: self._call(self._connected, gen, rc)
        client.on_disconnect = lambda c, u, f, rc, p: self._call(self._disconnected, gen, rc)
        client.on_publish = lambda c, u, mid, rc, p: self._call(self._acked, gen, mid)
        client.on_message = lambda c, u, msg: self._call(self._message, gen, msg.topic, msg.payload)
        client.on_subscribe = lambda c, u, mid, rcs, p: self._call(self._subscribed, gen, rcs)
        client.on_socket_open = lambda c, u, sock: self._call(self._socket_open, gen, sock)
        client.on_socket_close = lambda c, u, sock: self._call(self._socket_close, gen, sock)
        client.on_socket_register_write = lambda c, u, sock: self._call(self._want_write, gen, sock, True)
        client.on_socket_unregister_write = lambda c, u, sock: self._call(self._want_write, gen, sock, False)
        return client

    def _call(self, fn: Callable[..., None], *args: Any) -> None:
        """Run on the loop: directly when already there, else handed over (connect runs on a thread)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        if threading.get_ident() == self._loop_thread:
            fn(*args)
        else:
            loop.call_soon_threadsafe(fn, *args)

    def _acked(self, gen: int, mid: int) -> None:
        waiter = self._waiting.pop(mid, None) if gen == self.generation else None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self._on_puback(gen, mid)

    def _message(self, gen: int, topic: str, payload: bytes) -> None:
        if gen == self.generation and topic == self.ack_topic and self._on_ack_message is not None:
            self._on_ack_message(payload)

    def _subscribed(self, gen: int, reason_codes: list[ReasonCode]) -> None:
        if gen == self.generation and any(rc.is_failure for rc in reason_codes):
            log.error("the broker refused the subscription to %s (%s): ingest's acknowledgements cannot arrive, "
                      "so messages stay in the spool and are published again; grant the agent read access to that "
                      "topic, or set [edge] confirm = \"broker\" where nothing sends acknowledgements",
                      self.ack_topic, ", ".join(str(rc) for rc in reason_codes))

    def _socket_open(self, gen: int, sock: Any) -> None:
        if gen != self.generation or self._client is None or self._loop is None:
            return
        self._sock = sock
        self._fd = sock.fileno()  # kept: paho may have closed the socket by the time we unregister it
        self._loop.add_reader(self._fd, self._client.loop_read)
        if self._client.want_write():
            self._want_write(gen, sock, True)

    def _socket_close(self, gen: int, sock: Any) -> None:
        if sock is not self._sock:
            return
        if self._loop is not None and self._fd >= 0:
            self._loop.remove_reader(self._fd)
            self._loop.remove_writer(self._fd)
        self._sock, self._fd = None, -1

    def _want_write(self, gen: int, sock: Any, want: bool) -> None:
        if gen != self.generation or self._client is None or self._loop is None or sock is not self._sock:
            return
        if want:
            self._loop.add_writer(self._fd, self._client.loop_write)
        else:
            self._loop.remove_writer(self._fd)

    # -- life cycle -------------------------------------------------------------------------------------------
    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._client = self._make_client()
        if self._supervisor is None:
            self._supervisor = self._loop.create_task(self._supervise(), name="mqtt-supervisor")

    async def _supervise(self) -> None:
        """Run the connection for ever; an unexpected error is logged with its traceback and the connection
        started afresh, since a dead supervisor would leave the agent spooling silently for good."""
        while not self._closing:
            try:
                await self._connection()
            except (OSError, ValueError, RuntimeError, AttributeError):
                log.exception("MQTT connection supervisor failed; starting again")
                client = self._client
                if client is not None:
                    self._close_client(client)
                await asyncio.sleep(1.0)

    async def _connection(self) -> None:
        """Connect, reconnect after a loss (capped, jittered backoff), keep-alive, MQTT 5 handshake watch."""
        host, port = self.settings.host, self.settings.port
        failures = 0
        handshake_since: float | None = None
        loop = asyncio.get_running_loop()
        while not self._closing:
            client = self._client
            if client is None:
                await asyncio.sleep(MISC_INTERVAL_S)
                continue
            if self._sock is not None:  # up, or waiting for the CONNACK
                client.loop_misc()
                if self.connected:
                    failures, handshake_since = 0, None
                elif self.protocol == V5:
                    # Some 3.1.1-only brokers (amqtt) neither answer nor close on an MQTT 5 CONNECT.
                    handshake_since = handshake_since or loop.time()
                    if self.choice.waited_for_connack(loop.time() - handshake_since):
                        log.info("no CONNACK to MQTT 5 within %.0f s", loop.time() - handshake_since)
                        handshake_since = None
                        await self._fall_back()
                        continue
                await asyncio.sleep(MISC_INTERVAL_S)
                continue
            handshake_since = None
            try:
                # connect() blocks on the TCP (and TLS) handshake: on a thread; its callbacks come back here
                await asyncio.to_thread(client.connect, host, port, self.settings.keepalive_s)
            except (OSError, ssl.SSLError, ValueError) as exc:
                self.last_error = f"cannot connect to {self.settings.effective_url}: {exc}"[:200]
                log.debug("%s", self.last_error)
                failures += 1
                await asyncio.sleep(backoff_delay(failures, 0.5, float(self.settings.reconnect_max_s), self._rng))
                continue
            await asyncio.sleep(0.05)  # let the socket callbacks arrive
            if self._sock is None:  # the broker closed at once: count it, back off
                failures += 1
                await asyncio.sleep(backoff_delay(failures, 0.5, float(self.settings.reconnect_max_s), self._rng))

    def _connected(self, gen: int, rc: ReasonCode) -> None:
        if gen != self.generation:
            return
        if rc.is_failure:
            self.last_error = f"broker refused: {rc}"
            if self.choice.refused(rc):
                asyncio.get_running_loop().create_task(self._fall_back(), name="mqtt-fallback-3.1.1")
            else:
                log.warning("MQTT connection refused: %s", rc)
            return
        self.connected = True
        self.choice.connected()
        self.last_error = None
        log.info("connected to %s (MQTT %s)", self.settings.effective_url, self.protocol_name)
        if self.ack_topic is not None and self._client is not None:
            self._client.subscribe(self.ack_topic, qos=1)
        self.publish_status("online")
        self._on_connection(True)

    def _disconnected(self, gen: int, rc: ReasonCode) -> None:
        if gen != self.generation:
            return
        was = self.connected
        self.connected = False
        if was:
            log.warning("disconnected from broker: %s", rc)
            self._on_connection(False)
        elif not self._closing and self.choice.closed_before_connack():
            # Some 3.1.1-only brokers cannot parse an MQTT 5 CONNECT and just close the socket.
            asyncio.get_running_loop().create_task(self._fall_back(), name="mqtt-fallback-3.1.1")

    async def _fall_back(self) -> None:
        """The broker speaks only MQTT 3.1.1: replace the client (its unacknowledged messages go with it).
        Only with `protocol = "auto"`; with "5" the agent keeps asking for MQTT 5 and says why it gets nowhere."""
        if self.protocol != V5:
            return
        if self.settings.protocol == "5":
            self.last_error = f"{self.settings.effective_url} did not take MQTT 5 (protocol = \"5\", no fallback)"
            log.warning("%s", self.last_error)
            if self._client is not None and self._sock is not None:
                self._close_client(self._client)  # and try again, as after any failed connection
            return
        old, self._client = self._client, None
        self.generation += 1
        self.choice.fall_back()
        if old is not None:
            self._close_client(old)
        log.info("broker did not take MQTT 5; using MQTT 3.1.1")
        self._client = self._make_client()

    # -- publishing -------------------------------------------------------------------------------------------
    def publish(self, topic: str, payload: bytes) -> int | None:
        """Publish at QoS 1; returns the message id to match with its acknowledgement, None if refused."""
        if self._client is None:
            return None
        info = self._client.publish(topic, payload, qos=1)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            return None
        return int(info.mid)

    def publish_status(self, status: str, **extra: Any) -> mqtt.MQTTMessageInfo | None:
        if self._client is None:
            return None
        payload = status_payload(status, self.site, self.agent, protocol=self.protocol_name,
                                 **self.status_extra(), **extra)
        return self._client.publish(self.status_topic, payload, qos=1, retain=True)

    async def stop(self, timeout_s: float = 1.5) -> None:
        """Say offline (retained), wait briefly for the broker's acknowledgement, disconnect."""
        self._closing = True
        supervisor, self._supervisor = self._supervisor, None
        client = self._client
        if client is not None and self.connected:
            info = self.publish_status("offline", reason="stopped")
            if info is not None and not info.is_published():
                acked = asyncio.get_running_loop().create_future()
                self._waiting[info.mid] = acked
                await asyncio.wait([acked], timeout=timeout_s)
        if supervisor is not None:
            supervisor.cancel()
            await asyncio.wait([supervisor], timeout=2.0)
        self._client = None
        if client is not None:
            self._close_client(client)
        self.connected = False

    def _close_client(self, client: mqtt.Client) -> None:
        """Send DISCONNECT (so the broker does not publish the will) and close the socket."""
        sock = self._sock
        client.disconnect()
        if sock is not None:
            with contextlib.suppress(OSError):
                client.loop_write()  # flushes the DISCONNECT; paho closes the socket after it
            self._socket_close(self.generation, sock)
