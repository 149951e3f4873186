"""Sparkplug B edge node (paho-mqtt 2.x, MQTT 3.1.1): NDEATH registered as the will with the session's bdSeq,
NBIRTH then one DBIRTH per area on every connect and on a Rebirth command, NDATA/DDATA with only what changed,
seq 0..255 shared by every message of the node, an explicit NDEATH on a clean stop. bdSeq survives restarts.
Client (URL, login, TLS): link.mqtt.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from google.protobuf.message import DecodeError

from link.mqtt import connect_args, make_client
from scada import spb_payloads as spb
from scada.config import MqttSettings, SparkplugSettings
from scada.figures import BoundaryKind, Snapshot, changed

log = logging.getLogger("carbonwatch.scada.sparkplug")


class BdSeqStore:
    """The next bdSeq, kept in a small JSON file so a restarted node does not repeat its last one."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def take(self) -> int:
        value = 0
        try:
            value = int(json.loads(self.path.read_text())["next_bd_seq"]) % 256
        except (OSError, ValueError, KeyError, TypeError):
            value = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"next_bd_seq": (value + 1) % 256}))
        tmp.replace(self.path)
        return value


class SparkplugSink:
    def __init__(self, settings: SparkplugSettings, mqtt_settings: MqttSettings, site: str, state_file: Path) -> None:
        self.settings = settings
        self.group = settings.group_id
        self.node = settings.edge_node_id or site
        self.bd_store = BdSeqStore(state_file)
        self.lock = threading.RLock()
        self.seq = 0
        self.bd_seq = self.bd_store.take()
        self.born = False
        self.snapshot: Snapshot | None = None
        self.births = 0
        self.connected = threading.Event()
        self.client = make_client(mqtt_settings, settings.client_id or f"carbonwatch-spb-{self.group}-{self.node}")
        self.mqtt_settings = mqtt_settings
        self._set_will()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    def topic(self, kind: str, device: str | None = None) -> str:
        return spb.topic(self.group, kind, self.node, device)

    def _set_will(self) -> None:
        self.client.will_set(self.topic("NDEATH"), spb.ndeath(self.bd_seq, _now_ms()), qos=1, retain=False)

    def _next_seq(self) -> int:
        seq = self.seq
        self.seq = (self.seq + 1) % 256
        return seq

    # ---- MQTT callbacks (network thread) ------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            log.error("Sparkplug: broker %s refused the connection: %s", self.mqtt_settings.effective_url, reason)
            return
        client.subscribe([(self.topic("NCMD"), 1), (self.topic("DCMD") + "/+", 1)])
        self.connected.set()
        self.birth()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        with self.lock:
            self.connected.clear()
            self.born = False
            # the broker has sent (or will send) the NDEATH of this session: the next session needs a new bdSeq
            self.bd_seq = self.bd_store.take()
            self._set_will()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic != self.topic("NCMD"):
            return   # no device commands are defined: figures are computed, not set
        try:
            rebirth = spb.rebirth_requested(bytes(msg.payload))
        except DecodeError as exc:
            log.warning("Sparkplug: NCMD payload is not a Sparkplug B payload: %s", exc)
            return
        if rebirth:
            log.info("Sparkplug: rebirth requested")
            self.birth()

    # ---- publishing ---------------------------------------------------------------------------------

    def birth(self) -> None:
        """NBIRTH (seq 0, the session's bdSeq) and every DBIRTH, from the latest snapshot."""
        with self.lock:
            snap = self.snapshot
            if snap is None or not self.connected.is_set():
                return
            self.seq = 0
            at = _now_ms()
            self.client.publish(self.topic("NBIRTH"), spb.nbirth(snap, self._next_seq(), self.bd_seq, at), qos=0)
            for area in spb.devices(snap):
                self.client.publish(self.topic("DBIRTH", area), spb.dbirth(snap, area, self._next_seq(), at), qos=0)
            self.born = True
            self.births += 1

    async def start(self, snapshot: Snapshot) -> None:
        with self.lock:
            self.snapshot = snapshot
        s = self.mqtt_settings
        self.client.connect_async(**connect_args(s, s.keepalive_s))
        self.client.loop_start()

    async def update(self, snapshot: Snapshot) -> None:
        with self.lock:
            old, self.snapshot = self.snapshot, snapshot
            if not self.born:
                return
            diff = set(changed(old, snapshot))
            if not diff:
                return
            at = _now_ms()
            site_key = next(k for k, f in snapshot.items.items() if f.boundary.kind is BoundaryKind.SITE)
            node_names = {n for k, n in diff if k == site_key}
            if node_names:
                metrics = spb.node_metrics(snapshot, node_names)
                self.client.publish(self.topic("NDATA"), spb.encode(metrics, self._next_seq(), at), qos=0)
            for area in spb.devices(snapshot):
                metrics = spb.device_metrics(snapshot, area, diff)
                if metrics:
                    self.client.publish(self.topic("DDATA", area), spb.encode(metrics, self._next_seq(), at), qos=0)

    async def stop(self) -> None:
        """A clean stop publishes the NDEATH itself (the broker sends the will only on an unclean loss)."""
        info = None
        with self.lock:
            if self.connected.is_set():
                info = self.client.publish(self.topic("NDEATH"), spb.ndeath(self.bd_seq, _now_ms()), qos=1)
        if info is not None:
            with contextlib.suppress(RuntimeError, ValueError):  # not connected any more: the will covers it
                await asyncio.to_thread(info.wait_for_publish, 5.0)
        self.client.disconnect()
        self.client.loop_stop()


def _now_ms() -> int:
    return int(time.time() * 1000)
