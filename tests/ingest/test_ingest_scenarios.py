"""Scenarios from issue 6 through real brokers: replays, mixed bad batches, the CO2e stream, shared
subscriptions between two workers, and MQTT 3.1.1 with the embedded amqtt broker."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from calc import topics
from calc.factors import default_factor_set
from deploy.services import free_port, wait_for_port
from ingest.store.sqlite import SqliteStore
from tests.ingest.helpers import (
    REPO,
    SITE,
    T0,
    IngestProcess,
    Publisher,
    counter_sample,
    day_of_messages,
    iso,
    message,
    plant_file,
    wait_for,
)

pytestmark = pytest.mark.integration


def count(db: Path) -> int:
    store = SqliteStore(db)
    try:
        return store.point_count()
    finally:
        store.close()


class Listener:
    """A plain subscriber collecting what ingest publishes (CO2e stream, dead letters)."""

    def __init__(self, url: str, topic_filter: str, protocol: int = mqtt.MQTTv311) -> None:
        host, port = url.removeprefix("mqtt://").split(":")
        self.messages: list[tuple[str, dict[str, object]]] = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=protocol)
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.qos: list[int] = []
        self.client.on_message = lambda c, u, m: (self.messages.append((m.topic, json.loads(m.payload))),
                                                  self.qos.append(m.qos))
        self.client.connect(host, int(port))
        self.client.subscribe(topic_filter, qos=1)
        self.client.loop_start()
        assert subscribed.wait(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_a_day_replayed_twice_gives_identical_totals(mqtt_url: str, tmp_path: Path) -> None:
    proc = IngestProcess(plant_file(tmp_path, mqtt_url, client_id="replay"), tmp_path / "metrics-replay.json",
                         tmp_path)
    proc.start()
    day = (day_of_messages("press-1", T0, 1440, 30, lambda i: 0.1 * (1 + i % 17))
           + day_of_messages("paint-oven", T0, 1440, 60, lambda i: 2.0 + 0.01 * (i % 50)))
    db = tmp_path / "store.sqlite"
    pub = Publisher(mqtt_url)
    pub.publish(day)
    wait_for(lambda: count(db) == 2880, what="the day stored")
    store = SqliteStore(db)
    first = store.totals(SITE, T0, T0 + timedelta(days=1))
    pub.publish(day)
    pub.close()
    wait_for(lambda: proc.read_metrics().get("duplicates") == 2880, what="the replay seen as duplicates")
    second = store.totals(SITE, T0, T0 + timedelta(days=1))
    assert first == second
    assert sum(t.points for t in second) == 2880
    assert {t.meter: round(t.energy, 6) for t in second} == {
        "press-1": round(sum(0.1 * (1 + i % 17) for i in range(1440)), 6),
        "paint-oven": round(sum(2.0 + 0.01 * (i % 50) for i in range(1440)), 6)}
    store.close()
    assert proc.stop() == 0


def test_batch_with_nan_future_and_unknown_meter_stores_the_good_samples_and_holds_the_future(mqtt_url: str,
                                                                                       tmp_path: Path) -> None:
    proc = IngestProcess(plant_file(tmp_path, mqtt_url, client_id="mixed"), tmp_path / "metrics-mixed.json",
                         tmp_path)
    proc.start()
    listener = Listener(mqtt_url, topics.deadletter(SITE))
    good = [counter_sample(T0 + timedelta(minutes=i), 1.0, 10.0 + i) for i in range(4)]
    nan = {**counter_sample(T0 + timedelta(minutes=10), 1.0, 20.0), "delta": float("nan")}
    future = counter_sample(T0 + timedelta(days=3650), 1.0, 30.0)
    topic = topics.reading(SITE, "pressing", "press-1")
    pub = Publisher(mqtt_url)
    pub.publish([(topic, message("press-1", 1, [good[0], nan, good[1], future, good[2]])),
                 (topics.reading(SITE, "pressing", "lathe-9"), message("lathe-9", 1, [good[3]])),
                 (topic, message("press-1", 2, [good[3]]))])
    pub.close()
    db = tmp_path / "store.sqlite"
    wait_for(lambda: count(db) == 4, what="the four good samples")
    store = SqliteStore(db)
    dead = wait_for(lambda: d if len(d := store.dead_letters(SITE)) == 2 else None, what="two dead letters")
    by_reason = sorted(d.reason for d in dead)
    assert sum("samples.1.delta" in r and "finite" in r for r in by_reason) == 1, by_reason
    assert sum("'lathe-9' is not a meter" in r for r in by_reason) == 1, by_reason
    (held,) = store.held(SITE)  # the future counted delta cannot be placed: held, not dropped
    assert "samples.3: ts:" in held.reason and "in the future" in held.reason and held.energy == 1.0
    assert sorted(p[0] for p in store._query("SELECT ts_us FROM points")) == sorted(
        int((T0 + timedelta(minutes=i)).timestamp() * 1_000_000) for i in range(4))
    wait_for(lambda: len(listener.messages) == 2, what="two dead letters on MQTT")
    assert {m["index"] for _, m in listener.messages} == {1, None}
    listener.close()
    store.close()
    assert proc.stop() == 0


def test_co2e_stream_is_published_per_meter_for_new_points_only(mqtt_url: str, tmp_path: Path) -> None:
    proc = IngestProcess(plant_file(tmp_path, mqtt_url, client_id="stream"), tmp_path / "metrics-stream.json",
                         tmp_path)
    proc.start()
    listener = Listener(mqtt_url, f"{topics.ROOT}/{SITE}/+/+/co2e")

    def points_seen() -> int:
        return sum(int(m["points"]) for _, m in listener.messages)  # type: ignore[call-overload]

    msgs = day_of_messages("press-2", T0, 10, 5, lambda i: 4.0)
    pub = Publisher(mqtt_url)
    pub.publish(msgs)
    wait_for(lambda: points_seen() == 10, what="CO2e of ten points")
    pub.publish(msgs)  # a replay stores nothing new and publishes nothing
    wait_for(lambda: proc.read_metrics().get("duplicates") == 10, what="the replay processed")
    pub.publish(day_of_messages("press-2", T0 + timedelta(hours=1), 5, 5, lambda i: 1.0, seq0=7))
    wait_for(lambda: points_seen() == 15, what="CO2e of five more points")
    pub.close()
    assert {t for t, _ in listener.messages} == {topics.co2e(SITE, "pressing", "press-2")}
    assert set(listener.qos) == {1}, "the CO2e stream is published at QoS 1 (the API's live sums add it up)"
    factor = default_factor_set().grid_factor("CN", T0).value
    first_day = [m for _, m in listener.messages if str(m["from"]) < iso(T0 + timedelta(hours=1))]
    assert sum(float(m["co2e_kg"]) for m in first_day) == pytest.approx(40.0 * factor)  # type: ignore[arg-type]
    first = first_day[0]
    assert first["meter"] == "press-2" and first["area"] == "pressing" and first["from"] == iso(T0)
    (part,) = first["by_factor"]  # type: ignore[misc]
    assert part["energy_unit"] == "kWh" and part["factor_id"] and part["scope"] == "scope2_location"
    listener.close()
    assert proc.stop() == 0


def test_two_workers_on_a_shared_subscription_store_every_reading_once(mqtt_url: str, tmp_path: Path) -> None:
    db = tmp_path / "store.sqlite"
    workers = []
    for name in ("w1", "w2"):
        folder = tmp_path / name
        folder.mkdir()
        config = plant_file(folder, mqtt_url, client_id=f"shared-{name}",
                            store=f'[store]\nkind = "sqlite"\npath = "{db}"',
                            ingest_extra='share_group = "ingest"\nbatch_max_messages = 20')
        worker = IngestProcess(config, folder / f"metrics-shared-{name}.json", folder)
        worker.start()
        workers.append(worker)
    msgs = (day_of_messages("press-1", T0, 3000, 5, lambda i: 0.3)
            + day_of_messages("press-2", T0, 3000, 5, lambda i: 0.2))
    pub = Publisher(mqtt_url)
    pub.publish(msgs)
    pub.close()
    wait_for(lambda: count(db) == 6000, timeout_s=60, what="every reading stored")
    received = [w.read_metrics().get("received_messages", 0) for w in workers]
    wait_for(lambda: sum(w.read_metrics().get("received_messages", 0) for w in workers) == len(msgs),
             what="both workers' metrics")
    received = [w.read_metrics()["received_messages"] for w in workers]
    assert all(r > 0 for r in received), received  # the load was split
    assert sum(w.read_metrics()["duplicates"] for w in workers) == 0
    store = SqliteStore(db)
    totals = {t.meter: t for t in store.totals(SITE, T0, T0 + timedelta(days=3))}
    assert totals["press-1"].points == 3000 and totals["press-1"].energy == pytest.approx(900.0)
    assert totals["press-2"].points == 3000 and totals["press-2"].energy == pytest.approx(600.0)
    store.close()
    for w in workers:
        assert w.stop() == 0


@pytest.fixture
def amqtt_url(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    script = ("import asyncio, logging, signal, sys\n"
              f"sys.path.insert(0, {str(REPO)!r})\n"
              "from deploy.broker import run_amqtt\n"
              "logging.getLogger('amqtt').setLevel(logging.CRITICAL)\n"
              "async def main():\n"
              "    stop = asyncio.Event()\n"
              "    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)\n"
              f"    await run_amqtt('127.0.0.1', {port}, stop)\n"
              "asyncio.run(main())\n")
    log = (tmp_path / "amqtt.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port("127.0.0.1", port, 20, proc)  # type: ignore[arg-type]
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def test_mqtt_311_with_the_embedded_amqtt_broker_and_a_stray_retained_message(amqtt_url: str,
                                                                              tmp_path: Path) -> None:
    pub = Publisher(amqtt_url)
    # a retained message on a topic ingest never subscribes to: amqtt may still hand it over
    pub.publish([(topics.edge_status(SITE, "agent-1"), b"online")], retain=True)
    proc = IngestProcess(plant_file(tmp_path, amqtt_url, client_id="amqtt"), tmp_path / "metrics-amqtt.json",
                         tmp_path)
    proc.start()
    pub.publish(day_of_messages("paint-oven", T0, 100, 10, lambda i: 1.5))
    db = tmp_path / "store.sqlite"
    wait_for(lambda: count(db) == 100, what="100 readings through amqtt")
    pub.close()
    assert proc.stop() == 0
    assert json.loads((tmp_path / "metrics-amqtt.json").read_text())["duplicates"] == 0
    # (amqtt 0.12 keeps no session across reconnects, so crash recovery is shown with Mosquitto only)
    store = SqliteStore(db)
    (total,) = store.totals(SITE, T0, T0 + timedelta(days=1))
    assert total.energy == pytest.approx(150.0)
    for d in store.dead_letters(SITE):  # the stray retained status message, if it came, was set aside
        assert "not a carbonwatch reading topic" in d.reason
    store.close()
