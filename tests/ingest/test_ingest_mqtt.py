"""End to end through a real Mosquitto: `carbonwatch ingest` as a subprocess storing into SQLite."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from calc import topics
from calc.factors import default_factor_set
from ingest.store.sqlite import SqliteStore
from tests.ingest.helpers import (
    SITE,
    T0,
    IngestProcess,
    Publisher,
    counter_sample,
    day_of_messages,
    message,
    plant_file,
    power_sample,
    wait_for,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def ingest(tmp_path: Path, mqtt_url: str, request: pytest.FixtureRequest) -> Iterator[IngestProcess]:
    client_id = f"ingest-{request.node.name}"[:60]
    config = plant_file(tmp_path, mqtt_url, client_id=client_id)
    proc = IngestProcess(config, tmp_path / f"metrics-{client_id}.json", tmp_path)
    proc.start()
    yield proc
    if proc.proc is not None and proc.proc.poll() is None:
        proc.stop()


def stored_count(path: Path) -> int:
    store = SqliteStore(path)
    try:
        return store.point_count()
    finally:
        store.close()


def test_readings_are_stored_with_co2e_and_totals(ingest: IngestProcess, mqtt_url: str, tmp_path: Path) -> None:
    pub = Publisher(mqtt_url)
    msgs = day_of_messages("press-1", T0, minutes=120, per_message=10, kwh=lambda i: 1.0 + (i % 7) * 0.5)
    msgs.append((topics.reading(SITE, "pressing", "press-1"), message("press-1", 99, [power_sample(T0, 61.5)])))
    pub.publish(msgs)
    pub.close()
    wait_for(lambda: stored_count(tmp_path / "store.sqlite") == 121, what="121 points stored")

    expected_kwh = sum(1.0 + (i % 7) * 0.5 for i in range(120))
    factor = default_factor_set().grid_factor("CN", T0).value
    store = SqliteStore(tmp_path / "store.sqlite")
    try:
        totals = store.totals(SITE, T0, T0 + timedelta(days=1))
        assert [t.meter for t in totals] == ["press-1"]
        t = totals[0]
        assert t.energy == pytest.approx(expected_kwh)
        assert t.energy_unit == "kWh"
        assert t.co2e_kg == pytest.approx(expected_kwh * factor)
        assert t.points == 120
        assert t.scope == "scope2_location"
        assert len(t.factor_ids) == 1
        summary = store.meter_summaries(SITE)
        assert [(s.meter, s.samples) for s in summary] == [("press-1", 121)]
        power = [v for v in store.latest_values(SITE) if v.quantity == "active_power"]
        assert [(v.value, v.unit) for v in power] == [(61.5, "kW")]
    finally:
        store.close()


def test_malformed_payload_is_dead_lettered_and_ingest_keeps_running(ingest: IngestProcess, mqtt_url: str,
                                                                     tmp_path: Path) -> None:
    dead_seen: list[dict[str, object]] = []
    got_dead = threading.Event()
    sub = mqtt.Client(CallbackAPIVersion.VERSION2)

    def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        dead_seen.append(json.loads(msg.payload))
        got_dead.set()

    subscribed = threading.Event()
    sub.on_message = on_message
    sub.on_subscribe = lambda *a: subscribed.set()
    host, port = mqtt_url.removeprefix("mqtt://").split(":")
    sub.connect(host, int(port))
    sub.subscribe(topics.deadletter(SITE), qos=1)
    sub.loop_start()
    assert subscribed.wait(10)

    topic = topics.reading(SITE, "pressing", "press-2")
    pub = Publisher(mqtt_url)
    pub.publish([(topic, b"{not json"),
                 (topic, b"\xff\xfe binary"),
                 (topics.reading(SITE, "pressing", "nosuch"), message("nosuch", 1, [counter_sample(T0, 1, 1)])),
                 (topic, message("press-2", 5, [counter_sample(T0, 2.0, 100.0)]))])
    pub.close()
    wait_for(lambda: stored_count(tmp_path / "store.sqlite") == 1, what="the good message stored")
    store = SqliteStore(tmp_path / "store.sqlite")
    try:
        dead = wait_for(lambda: store.dead_letters(SITE) if len(store.dead_letters(SITE)) == 3 else None,
                        what="three dead letters")
    finally:
        store.close()
    reasons = sorted(d.reason for d in dead)
    assert any("json" in r.lower() for r in reasons), reasons
    assert any("'nosuch' is not a meter of site 'demo'" in r for r in reasons), reasons
    assert {d.payload for d in dead} >= {b"{not json", b"\xff\xfe binary"}
    wait_for(lambda: len(dead_seen) == 3, what="three messages on the dead-letter topic")
    sub.disconnect()
    sub.loop_stop()
    assert ingest.proc is not None and ingest.proc.poll() is None
    assert ingest.stop() == 0


def test_duplicates_are_stored_once(ingest: IngestProcess, mqtt_url: str, tmp_path: Path) -> None:
    msgs = day_of_messages("paint-oven", T0, minutes=30, per_message=5, kwh=lambda i: 2.5)
    pub = Publisher(mqtt_url)
    pub.publish(msgs)
    pub.publish(msgs)  # a replay
    pub.publish(msgs[:3])
    pub.close()
    wait_for(lambda: ingest.read_metrics().get("duplicates") == 30 + 15, what="45 duplicates seen")
    assert stored_count(tmp_path / "store.sqlite") == 30
    store = SqliteStore(tmp_path / "store.sqlite")
    try:
        (total,) = store.totals(SITE, T0, T0 + timedelta(hours=1))
        assert total.energy == pytest.approx(75.0)
        assert total.points == 30
    finally:
        store.close()


def test_kill_9_and_restart_while_publishing_loses_nothing_counts_nothing_twice(
        mqtt_url: str, tmp_path: Path) -> None:
    config = plant_file(tmp_path, mqtt_url, client_id="ingest-kill9")
    proc = IngestProcess(config, tmp_path / "metrics-ingest-kill9.json", tmp_path)
    proc.start()
    msgs = day_of_messages("press-1", T0, minutes=24 * 60, per_message=4, kwh=lambda i: 0.5 + (i % 11) * 0.1)
    pub = Publisher(mqtt_url)

    def publish_all() -> None:
        for start in range(0, len(msgs), 20):
            pub.publish(msgs[start:start + 20])

    publisher = threading.Thread(target=publish_all)
    publisher.start()
    db = tmp_path / "store.sqlite"
    # Kill in the middle of the stream, twice, each time once some points have been stored.
    for threshold in (200, 700):
        wait_for(lambda t=threshold: stored_count(db) >= t, what=f"{threshold} points stored")
        proc.kill()
        proc.start()
    publisher.join(60)
    pub.close()
    wait_for(lambda: stored_count(db) == 24 * 60, timeout_s=60, what="every reading stored")
    assert proc.stop() == 0
    store = SqliteStore(db)
    try:
        (total,) = store.totals(SITE, T0, T0 + timedelta(days=1))
        expected = sum(0.5 + (i % 11) * 0.1 for i in range(24 * 60))
        assert total.points == 24 * 60
        assert total.energy == pytest.approx(expected)
        # the minute/hour rollups must agree with the raw points, i.e. nothing counted twice in them either
        raw = store._query("SELECT SUM(energy), COUNT(*) FROM points WHERE energy IS NOT NULL")[0]
        assert raw[0] == pytest.approx(expected) and raw[1] == 24 * 60
    finally:
        store.close()
