"""Test helpers for ingest: a plant file, reading messages, a paho publisher, an ingest subprocess, polling."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from calc import topics
from calc.plant import parse_plant
from calc.schema import MAX_SAMPLES
from ingest.convert import Converter
from ingest.points import Batch, ts_to_us

REPO = Path(__file__).resolve().parents[2]
SITE = "demo"
METERS = {"press-1": "pressing", "press-2": "pressing", "paint-oven": "painting"}
T0 = datetime(2026, 3, 1, tzinfo=UTC)
#: the store tests' plant (two meters in two areas), a clock 400 days after T0, and a converter on that clock
STORE_PLANT = parse_plant({
    "site": {"id": "demo", "region": "CN", "start": "2026-01-01T00:00:00Z"},
    "meters": [{"id": "m1", "area": "a1", "carrier": "electricity"},
               {"id": "m2", "area": "a2", "carrier": "electricity"}],
})
STORE_NOW_US = ts_to_us(T0 + timedelta(days=400))
STORE_CONVERTER = Converter(STORE_PLANT, clock=lambda: STORE_NOW_US / 1e6)
#: a second site with the same meter ids (other areas): the same meter id on two sites is two meters
OTHER_SITE = "north"
STORE_CONVERTERS = {SITE: STORE_CONVERTER, OTHER_SITE: Converter(parse_plant({
    "site": {"id": OTHER_SITE, "region": "CN", "start": "2026-01-01T00:00:00Z", "timezone": "Asia/Kolkata"},
    "meters": [{"id": "m1", "area": "n1", "carrier": "electricity"},
               {"id": "m2", "area": "n2", "carrier": "electricity"}],
}), clock=lambda: STORE_NOW_US / 1e6)}



def counter_batch(meter: str, start: datetime, n: int, step_s: float, kwh: float = 1.0, seq: int = 0,
                  site: str = SITE) -> Batch:
    """`n` counter readings of `meter` on `site`, `step_s` apart, `kwh` each, as a store batch (with its `counted`
    columns: the stores' vectorized path), in messages of at most MAX_SAMPLES samples (seq, seq + 1, ...)."""
    conv = STORE_CONVERTERS[site]
    area = conv.plant.meter(meter).area
    samples = [counter_sample(start + timedelta(seconds=i * step_s), kwh, 100 + i * kwh) for i in range(n)]
    items = [(topics.reading(site, area, meter), message(meter, seq + k, samples[at:at + MAX_SAMPLES]), STORE_NOW_US)
             for k, at in enumerate(range(0, n, MAX_SAMPLES))]
    outs, batch = conv.convert_to_batch(items)
    assert all(out.dead == [] for out in outs) and batch.counted is not None, outs[0].dead[:1]
    return batch


def join_batches(*batches: Batch) -> Batch:
    """Several batches as one (point rows only: the stores take their slow, row-wise path)."""
    return Batch(points=[p for b in batches for p in b.points], dead=[d for b in batches for d in b.dead],
                 meters={k: v for b in batches for k, v in b.meters.items()},
                 factors={k: v for b in batches for k, v in b.factors.items()})


T = TypeVar("T")
RUNNING: list[subprocess.Popen[bytes]] = []  # reaped by tests/ingest/conftest.py after each test

PLANT = """
[site]
id = "{site}"
region = "CN"
start = 2026-01-01T00:00:00Z

[[meters]]
id = "press-1"
area = "pressing"
carrier = "electricity"
max_power_kw = 500.0

[[meters]]
id = "press-2"
area = "pressing"
carrier = "electricity"

[[meters]]
id = "paint-oven"
area = "painting"
carrier = "electricity"

[mqtt]
url = "{mqtt_url}"

{store}

[ingest]
client_id = "{client_id}"
metrics_path = "{metrics_path}"
{ingest_extra}
"""


def plant_file(tmp: Path, mqtt_url: str, *, client_id: str = "ingest-test", store: str | None = None,
               ingest_extra: str = "", name: str = "plant.toml", site: str = SITE) -> Path:
    store = store or f'[store]\nkind = "sqlite"\npath = "{tmp / "store.sqlite"}"'
    path = tmp / name
    path.write_text(PLANT.format(site=site, mqtt_url=mqtt_url, store=store, client_id=client_id,
                                 metrics_path=tmp / f"metrics-{client_id}.json", ingest_extra=ingest_extra))
    return path


def iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def counter_sample(ts: datetime, delta_kwh: float, counter: float, interval_s: float = 60.0,
                   **extra: Any) -> dict[str, Any]:
    return {"ts": iso(ts), "quantity": "active_energy_import", "value": counter, "unit": "kWh",
            "delta": delta_kwh, "interval_s": interval_s, **extra}


def power_sample(ts: datetime, kw: float, quality: str = "good") -> dict[str, Any]:
    return {"ts": iso(ts), "quantity": "active_power", "value": kw, "unit": "kW", "quality": quality}


def message(meter: str, seq: int, samples: Iterable[dict[str, Any]]) -> bytes:
    return json.dumps({"v": 1, "meter": meter, "seq": seq, "samples": list(samples)}).encode()


def day_of_messages(meter: str, start: datetime, minutes: int, per_message: int, kwh: Callable[[int], float],
                    seq0: int = 0, site: str = SITE) -> list[tuple[str, bytes]]:
    """Counter readings every minute, `per_message` samples a message; returns (topic, payload) pairs."""
    out: list[tuple[str, bytes]] = []
    counter = 1000.0
    batch: list[dict[str, Any]] = []
    seq = seq0
    for i in range(minutes):
        delta = kwh(i)
        counter += delta
        batch.append(counter_sample(start + timedelta(minutes=i), delta, counter))
        if len(batch) == per_message or i == minutes - 1:
            out.append((topics.reading(site, METERS[meter], meter), message(meter, seq, batch)))
            seq += 1
            batch = []
    return out


class Publisher:
    """A paho client that publishes QoS 1 and waits until the broker has every message."""

    def __init__(self, url: str, client_id: str = "") -> None:
        parts = urlsplit(url)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
        self.client.loop_start()

    def publish(self, items: Iterable[tuple[str, bytes]], qos: int = 1, retain: bool = False) -> None:
        infos = [self.client.publish(t, p, qos=qos, retain=retain) for t, p in items]
        for info in infos:
            info.wait_for_publish(30)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_for(condition: Callable[[], T], timeout_s: float = 20.0, what: str = "condition") -> T:
    """Poll until `condition()` is truthy (readiness, never a fixed sleep); return its value."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


class IngestProcess:
    """`carbonwatch ingest` as a real subprocess, ready once its metrics file appears (it is subscribed)."""

    def __init__(self, config: Path, metrics: Path, cwd: Path) -> None:
        self.config, self.metrics, self.cwd = config, metrics, cwd
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 20.0) -> None:
        self.metrics.unlink(missing_ok=True)
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.log = (self.cwd / "ingest.log").open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "deploy.cli", "ingest", "--config", str(self.config)],
                                     cwd=self.cwd, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        proc = self.proc
        RUNNING.append(proc)
        wait_for(lambda: self.metrics.exists() or proc.poll() is not None, timeout_s, "ingest to subscribe")
        if proc.poll() is not None:
            raise AssertionError(f"ingest exited with {proc.returncode}: {self.output()}")

    def output(self) -> str:
        return (self.cwd / "ingest.log").read_text(errors="replace")

    def read_metrics(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.metrics.read_text()))
        except (OSError, ValueError):
            return {}

    def stop(self, timeout_s: float = 10.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout_s)
        self.log.close()
        return code

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)
        self.log.close()
