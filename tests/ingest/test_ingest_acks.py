"""A real ingest process behind a real Mosquitto: end-to-end acks to edge agents, and poison input mixed into
good traffic (every good reading stored, every poison message dead-lettered with its reason, the same process
running throughout)."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from calc import topics
from calc.acks import decode_acks
from calc.schema import MAX_SAMPLES, MAX_SEQ
from deploy.services import InfluxDB
from tests.ingest.helpers import (
    METERS,
    SITE,
    T0,
    IngestProcess,
    Publisher,
    counter_sample,
    plant_file,
    wait_for,
)

pytestmark = pytest.mark.integration


class AckListener:
    """Subscribes to every agent's ack topic of the site and keeps what each acknowledges, per meter."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.acked: dict[str, dict[str, set[int]]] = {}
        self.messages = 0
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
        self.client.subscribe(f"{topics.ROOT}/{SITE}/edge/+/ack", qos=1)
        self.client.loop_start()
        assert subscribed.wait(10)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        ack = decode_acks(msg.payload)
        assert msg.topic == topics.edge_ack(SITE, ack.agent)
        with self._lock:
            self.messages += 1
            for meter, ranges in ack.acks.items():
                seqs = self.acked.setdefault(ack.agent, {}).setdefault(meter, set())
                for lo, hi in ranges:
                    seqs.update(range(lo, hi + 1))

    def of(self, agent: str) -> dict[str, set[int]]:
        with self._lock:
            return {m: set(s) for m, s in self.acked.get(agent, {}).items()}

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def acks(mqtt_url: str) -> Iterator[AckListener]:
    listener = AckListener(mqtt_url)
    yield listener
    listener.close()


def reading(meter: str, seq: int, agent: str | None, minutes: int = 3, kwh: float = 2.0) -> tuple[str, bytes]:
    samples = [counter_sample(T0 + timedelta(minutes=seq * minutes + i), kwh, 1000.0 + seq * minutes + i)
               for i in range(minutes)]
    body: dict[str, Any] = {"v": 1, "meter": meter, "seq": seq, "samples": samples}
    if agent is not None:
        body["agent"] = agent
    return topics.reading(SITE, METERS[meter], meter), json.dumps(body).encode()


def store_rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_acks_name_exactly_what_is_durable_per_agent(mqtt_url: str, acks: AckListener, tmp_path: Path) -> None:
    proc = IngestProcess(plant_file(tmp_path, mqtt_url, client_id="ingest-acks", ingest_extra="ack_interval_s = 0.2"),
                         tmp_path / "metrics-ingest-acks.json", tmp_path)
    proc.start()
    sent = ([reading("press-1", s, "line-1") for s in range(40)] + [reading("press-2", s, "line-2") for s in range(25)]
            + [reading("paint-oven", s, None) for s in range(5)])  # a publisher that does not ask for acks
    pub = Publisher(mqtt_url)
    pub.publish(sent)
    pub.publish(sent[:10])  # replayed: duplicates are durable too, and acknowledged again
    ghost = reading("press-1", 3, "line-1")[1].replace(b"press-1", b"ghost")
    pub.publish([(topics.reading(SITE, "pressing", "ghost"), ghost)])  # no such meter: dead-lettered, acknowledged
    expected_1 = {"press-1": set(range(40)), "ghost": {3}}
    wait_for(lambda: acks.of("line-1") == expected_1, what="line-1's acks")
    wait_for(lambda: acks.of("line-2") == {"press-2": set(range(25))}, what="line-2's acks")
    metrics = wait_for(lambda: (m := proc.read_metrics()).get("duplicates") == 10 * 3 and m, what="duplicates")
    assert metrics["acked_messages"] >= 66  # each distinct message at least once (a replay within a second: once)
    pub.close()
    assert proc.stop() == 0
    assert set(acks.acked) == {"line-1", "line-2"}  # nothing for the agentless publisher
    assert store_rows(tmp_path / "store.sqlite", "SELECT COUNT(*) FROM points")[0][0] == 70 * 3


def test_poison_mixed_into_good_traffic_costs_only_itself(mqtt_url: str, acks: AckListener, tmp_path: Path) -> None:
    limit = 3 * 1024 * 1024  # above the 10,001-sample message (1.3 MB), so the sample cap is what refuses it
    proc = IngestProcess(plant_file(tmp_path, mqtt_url, client_id="ingest-poison",
                                    ingest_extra=f"ack_interval_s = 0.2\nmax_message_bytes = {limit}"),
                         tmp_path / "metrics-ingest-poison.json", tmp_path)
    proc.start()
    assert proc.proc is not None
    pid = proc.proc.pid
    topic = topics.reading(SITE, "pressing", "press-1")
    deep = reading("press-1", 1000, "line-1")[1].replace(b'"unit": "kWh"', b'"unit": "kWh", "x": '
                                                         + b"[" * 3000 + b"]" * 3000, 1)
    overflow = reading("press-1", 1001, "line-1")[1].replace(b'"seq": 1001', f'"seq": {MAX_SEQ + 1}'.encode())
    too_many = json.dumps({"v": 1, "meter": "press-1", "seq": 1002, "agent": "line-1", "samples": [
        counter_sample(T0 + timedelta(days=5, seconds=i), 0.001, float(i)) for i in range(MAX_SAMPLES + 1)]}).encode()
    oversize = b'{"v": 1, "pad": "' + b"x" * (limit + 10) + b'"}'
    poison = [(topic, deep), (topic, overflow), (topic, too_many), (topic, oversize), (topic, b"\x00\xff garbage"),
              (topic, b"[" * 100_000), (f"{topics.ROOT}/{SITE}/pressing/press-1/reading", b"{")]
    good = [reading("press-1", s, "line-1") for s in range(30)]
    mixed = [m for pair in zip(good, [*poison, *([None] * (len(good) - len(poison)))], strict=True)
             for m in pair if m is not None]
    pub = Publisher(mqtt_url)
    pub.publish(mixed)
    wait_for(lambda: acks.of("line-1").get("press-1", set()) >= set(range(30)), what="every good message acked")
    wait_for(lambda: proc.read_metrics().get("dead_lettered", 0) >= len(poison), what="the poison dead-lettered")
    assert proc.proc.poll() is None and proc.proc.pid == pid  # never restarted, never died
    db = tmp_path / "store.sqlite"
    assert store_rows(db, "SELECT COUNT(*), SUM(energy) FROM points") == [(90, pytest.approx(180.0))]
    reasons = [r[0] for r in store_rows(db, "SELECT reason FROM deadletter ORDER BY id")]
    assert len(reasons) == len(poison), reasons
    assert any("more than the limit" in r for r in reasons)
    assert any("less than or equal to 9223372036854775807" in r for r in reasons)
    assert any("at most 10000" in r for r in reasons)
    assert all(r for r in reasons)
    # deep nesting and 10,001 samples are refused, the seq overflow has no seq to name: none of them acked
    assert acks.of("line-1")["press-1"] == set(range(30))
    pub.close()
    assert proc.stop() == 0
    assert "Traceback" not in proc.output()


def influx_points(url: str, db: str) -> int:
    try:
        resp = httpx.post(f"{url}/query", params={"db": db}, data={"q": "SELECT COUNT(value) FROM points"}, timeout=2)
        series = resp.json()["results"][0].get("series", [])
    except (httpx.HTTPError, ValueError, KeyError):
        return -1
    return int(series[0]["values"][0][1]) if series else 0


def test_no_ack_while_readings_wait_in_the_disk_buffer(mqtt_url: str, influxdb: InfluxDB, acks: AckListener,
                                                        tmp_path: Path) -> None:
    """A message in ingest's disk buffer is acknowledged to the broker (back-pressure) but not to the edge: the
    edge's ack means the store has it."""
    store = f'[store]\nkind = "influxdb"\nurl = "{influxdb.url}"\ndatabase = "acks"\ntimeout_s = 2.0'
    extra = f'buffer_path = "{tmp_path / "buffer.sqlite"}"\nack_interval_s = 0.2'
    proc = IngestProcess(plant_file(tmp_path, mqtt_url, client_id="ingest-buffered", store=store, ingest_extra=extra),
                         tmp_path / "metrics-ingest-buffered.json", tmp_path)
    proc.start()
    pub = Publisher(mqtt_url)
    pub.publish([reading("press-2", s, "line-9") for s in range(5)])
    wait_for(lambda: acks.of("line-9") == {"press-2": set(range(5))}, what="the first five acked")
    influxdb.stop()
    pub.publish([reading("press-2", s, "line-9") for s in range(5, 20)])
    wait_for(lambda: proc.read_metrics().get("buffered") == 15, what="15 messages in the disk buffer")
    # written after the buffering (snapshots are rewritten each second): still nothing owed or sent
    first = proc.read_metrics()["updated"]
    metrics = wait_for(lambda: (m := proc.read_metrics()).get("updated", 0) > first and m, what="a later snapshot")
    assert metrics["acked_messages"] == 5 and metrics["acks_waiting"] == 0
    assert acks.of("line-9") == {"press-2": set(range(5))}
    influxdb.start()
    wait_for(lambda: acks.of("line-9") == {"press-2": set(range(20))}, timeout_s=60, what="all 20 acked after")
    assert influx_points(influxdb.url, "acks") == 60
    pub.close()
    assert proc.stop() == 0
