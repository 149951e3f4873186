"""The API's /metrics carries every ingest worker's counters: a real ingest stores readings from a real Mosquitto,
the real API serves /metrics, and a Prometheus text parser (prometheus_client.parser) reads the counters back,
equal to what was sent and to the worker's snapshot; a worker that died shows by the age of its snapshot."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client.parser import text_string_to_metric_families

from calc import topics
from calc.schema import ReadingMessage, Sample, encode
from ingest.metrics import COUNTERS, GAUGES, NOT_METRICS, SNAPSHOT_AGE, IngestMetrics, metric_name
from tests.deploy.harness import System, wait_until

pytestmark = pytest.mark.integration

GOOD_MESSAGES = 5


def scrape(system: System) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """/metrics parsed: sample name -> labels -> value; every family must have HELP and a type."""
    resp = system.api.get("/metrics")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain")
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(resp.text):
        assert family.documentation, f"{family.name} has no HELP"
        assert family.type in ("counter", "gauge", "unknown"), family.type
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def worker_value(metrics: dict[str, dict[tuple[tuple[str, str], ...], float]], name: str, worker: str) -> float:
    return metrics[name][(("worker", worker),)]


@pytest.fixture
def system(tmp_path: Path, mqtt_url: str) -> Iterator[System]:
    sys_ = System(tmp_path, mqtt_url)
    try:
        sys_.start("ingest")
        sys_.start("api")
        yield sys_
    except BaseException:
        for name in ("ingest", "api"):
            print(f"--- {name} log ---\n{sys_.log(name)}")
        raise
    finally:
        sys_.stop_all()


def _publish(mqtt_url: str, messages: list[tuple[str, bytes]]) -> None:
    host, port = mqtt_url.split("://")[1].split(":")
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    client.connect(host, int(port))
    client.loop_start()
    try:
        for topic, payload in messages:
            client.publish(topic, payload, qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def test_ingest_counters_reach_metrics_and_a_dead_worker_shows(system: System, tmp_path: Path) -> None:
    snapshot_path = next((tmp_path / "var").glob("ingest-metrics-*.json"))
    worker = json.loads(snapshot_path.read_text())["worker"]
    now = datetime.now(UTC).replace(microsecond=0)
    messages = []
    for seq in range(GOOD_MESSAGES):
        ts = now - timedelta(seconds=10 * (GOOD_MESSAGES - seq))
        samples = (Sample(ts=ts, quantity="active_energy_import", value=100.0 + seq, unit="kWh", delta=1.0,
                          interval_s=10.0),)
        messages.append((topics.reading("e2e", "pressing", "press-1"),
                         encode(ReadingMessage(meter="press-1", seq=seq + 1, agent="metrics-test", samples=samples))))
    messages.append((topics.reading("e2e", "pressing", "press-1"), b"{not json"))
    _publish(system.mqtt_url, messages)

    def snapshot() -> dict[str, float]:
        try:
            return dict(json.loads(snapshot_path.read_text()))
        except (OSError, ValueError):
            return {}

    wait_until("ingest to count every message", lambda: snapshot().get("received_messages") == len(messages), 60)
    wait_until("ingest idle", lambda: snapshot().get("queue_depth") == 0, 30)
    # a second worker of the same plant whose process is gone: its last snapshot is an hour old
    dead = IngestMetrics(worker="w-dead")
    dead.add(received_messages=7, stored=3)
    dead_path = snapshot_path.parent / "ingest-metrics-w-dead.json"
    dead.write(dead_path)
    hour_ago = time.time() - 3600
    os.utime(dead_path, (hour_ago, hour_ago))

    metrics = scrape(system)
    state = snapshot()
    assert worker_value(metrics, "carbonwatch_ingest_received_messages_total", worker) == len(messages)
    assert worker_value(metrics, "carbonwatch_ingest_dead_lettered_total", worker) == 1  # the message that is no JSON
    assert worker_value(metrics, "carbonwatch_ingest_stored_total", worker) > 0
    for name in COUNTERS:  # counters stand still once ingest is idle: the scrape equals the snapshot
        assert worker_value(metrics, f"{metric_name(name)}_total", worker) == state.get(name, 0), name
    for name in ("buffered", "queue_depth"):
        assert worker_value(metrics, metric_name(name), worker) == state.get(name, 0), name
    assert worker_value(metrics, "carbonwatch_ingest_received_messages_total", "w-dead") == 7
    assert worker_value(metrics, "carbonwatch_ingest_stored_total", "w-dead") == 3
    dead_age = worker_value(metrics, SNAPSHOT_AGE, "w-dead")
    assert dead_age >= 3600
    assert worker_value(metrics, SNAPSHOT_AGE, worker) < dead_age, "a live worker rewrites its snapshot"
    # the API's own metrics are still there, labelled by site
    assert (("site", "e2e"),) in metrics["carbonwatch_api_messages_total"]

    system.kill("ingest")  # SIGKILL: its snapshot stops being rewritten, its age grows
    wait_until("the killed worker's snapshot ageing", lambda: worker_value(scrape(system), SNAPSHOT_AGE, worker) > 3,
               60, 0.5)


def test_every_ingest_counter_is_described() -> None:
    """A field added to IngestMetrics must be given a help text and a type in ingest/metrics.py (until then it is
    shown untyped)."""
    numeric = {f.name for f in fields(IngestMetrics) if not f.name.startswith("_") and f.name not in NOT_METRICS}
    assert numeric <= set(COUNTERS) | set(GAUGES), numeric - set(COUNTERS) - set(GAUGES)
    families = [metric_name(n) for n in (*COUNTERS, *GAUGES)]
    samples = [f"{metric_name(n)}_total" for n in COUNTERS] + [metric_name(n) for n in GAUGES]
    assert len(set(families)) == len(families) and len(set(samples)) == len(samples), "two metrics, one name"
