"""MQTT side of the agent (paho-mqtt 2.x): MQTT 5 first with a fallback to 3.1.1, QoS 1, TLS and credentials,
retained birth and last-will status per agent.

paho runs its network loop on its own thread; every callback is handed to the asyncio loop with
call_soon_threadsafe, so the agent's state is only touched from the loop. paho keeps unacknowledged QoS 1
messages across reconnects and sends them again; the spool covers everything else (a restart, a new client).
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from edge.config import MqttSettings

log = logging.getLogger(__name__)

UNSUPPORTED_PROTOCOL = (132, 1)  # MQTT 5 reason code, MQTT 3.1.1 CONNACK return code
HANDSHAKE_TIMEOUT_S = 3.0  # a socket that gets no CONNACK to MQTT 5 in this time: try 3.1.1


def status_payload(status: str, site: str, agent: str, **extra: Any) -> bytes:
    body = {"v": 1, "status": status, "site": site, "agent": agent,
            "ts": datetime.now(UTC).isoformat().replace("+00:00", "Z"), **extra}
    return json.dumps(body).encode()


class Publisher:
    """One paho client at a time; `generation` changes whenever unacknowledged messages were forgotten."""

    def __init__(self, settings: MqttSettings, site: str, agent: str, status_topic: str,
                 on_ack: Callable[[int, int], None], on_connection: Callable[[bool], None],
                 window: int = 256) -> None:
        self.settings = settings
        self.site = site
        self.agent = agent
        self.status_topic = status_topic
        self._on_ack = on_ack
        self._on_connection = on_connection
        self.window = window
        self.protocol = mqtt.MQTTv5
        self.generation = 0
        self.connected = False
        self.last_error: str | None = None
        self._client: mqtt.Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._switching = False
        self._handshake_failures = 0  # connections closed before any CONNACK, while speaking MQTT 5
        self._watch: asyncio.Task[None] | None = None
        self.status_extra: Callable[[], dict[str, Any]] = dict

    @property
    def protocol_name(self) -> str:
        return "5" if self.protocol == mqtt.MQTTv5 else "3.1.1"

    def _make_client(self) -> mqtt.Client:
        s = self.settings
        tls = s.host_port_tls[2]
        client_id = s.client_id or f"carbonwatch-edge-{self.site}-{self.agent}"
        if self.protocol == mqtt.MQTTv5:
            client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        else:
            client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311,
                                 clean_session=True)
        if s.username is not None:
            client.username_pw_set(s.username, s.password)
        if tls or s.cert_file is not None:
            client.tls_set(ca_certs=str(s.ca_file) if s.ca_file else None,
                           certfile=str(s.cert_file) if s.cert_file else None,
                           keyfile=str(s.key_file) if s.key_file else None,
                           cert_reqs=ssl.CERT_REQUIRED)
        client.will_set(self.status_topic, status_payload("offline", self.site, self.agent, reason="lost"),
                        qos=1, retain=True)
        client.max_inflight_messages_set(self.window + 8)  # status messages come on top of the window
        client.max_queued_messages_set(0)
        client.reconnect_delay_set(1, max(1, self.settings.reconnect_max_s))
        gen = self.generation
        client.on_connect = lambda c, u, f, rc, p: self._call(self._connected, gen, rc)
        client.on_disconnect = lambda c, u, f, rc, p: self._call(self._disconnected, gen, rc)
        client.on_publish = lambda c, u, mid, rc, p: self._call(self._on_ack, gen, mid)
        return client

    def _call(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(fn, *args)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._client = self._make_client()
        host, port, _ = self.settings.host_port_tls
        self._client.connect_async(host, port, keepalive=self.settings.keepalive_s)
        self._client.loop_start()
        if self.protocol == mqtt.MQTTv5 and self._watch is None:
            self._watch = self._loop.create_task(self._watch_handshake(), name="mqtt-handshake-watch")

    async def _watch_handshake(self) -> None:
        """Some 3.1.1-only brokers (amqtt) neither answer nor close on an MQTT 5 CONNECT: the socket is up
        and no CONNACK comes. Then fall back to 3.1.1 instead of waiting for the keep-alive to expire."""
        since: float | None = None
        loop = asyncio.get_running_loop()
        while self.protocol == mqtt.MQTTv5:
            await asyncio.sleep(0.25)
            client = self._client
            if client is None or self.connected or client.socket() is None:
                since = None
                continue
            since = since if since is not None else loop.time()
            if loop.time() - since >= HANDSHAKE_TIMEOUT_S and not self._switching:
                log.info("no CONNACK to MQTT 5 within %.0f s", HANDSHAKE_TIMEOUT_S)
                self._switching = True
                await self._fall_back()
        self._watch = None

    def _connected(self, gen: int, rc: ReasonCode) -> None:
        if gen != self.generation:
            return
        if rc.is_failure:
            self.last_error = f"broker refused: {rc}"
            if rc.value in UNSUPPORTED_PROTOCOL and self.protocol == mqtt.MQTTv5 and not self._switching:
                self._switching = True
                asyncio.get_running_loop().create_task(self._fall_back(), name="mqtt-fallback-3.1.1")
            else:
                log.warning("MQTT connection refused: %s", rc)
            return
        self.connected = True
        self._handshake_failures = 0
        self.last_error = None
        log.info("connected to %s (MQTT %s)", self.settings.effective_url, self.protocol_name)
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
        elif self.protocol == mqtt.MQTTv5 and not self._switching:
            # Some 3.1.1-only brokers (amqtt) cannot parse an MQTT 5 CONNECT and just close the socket.
            self._handshake_failures += 1
            if self._handshake_failures >= 2:
                self._switching = True
                asyncio.get_running_loop().create_task(self._fall_back(), name="mqtt-fallback-3.1.1")

    async def _fall_back(self) -> None:
        """The broker speaks only MQTT 3.1.1: replace the client (its unacknowledged messages go with it)."""
        old = self._client
        self.generation += 1
        self.protocol = mqtt.MQTTv311
        if old is not None:
            old.disconnect()
            await asyncio.to_thread(old.loop_stop)
        log.info("broker refused MQTT 5; using MQTT 3.1.1")
        self.start()
        self._switching = False

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
        watch, self._watch = self._watch, None
        if watch is not None and watch is not asyncio.current_task():
            watch.cancel()
        client, self._client = self._client, None
        if client is None:
            return
        if self.connected:
            self._client = client
            info = self.publish_status("offline", reason="stopped")
            self._client = None
            if info is not None:
                await asyncio.to_thread(info.wait_for_publish, timeout_s)
        client.disconnect()
        await asyncio.to_thread(client.loop_stop)
        self.connected = False
