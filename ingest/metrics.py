"""Ingest's counters (received, stored, duplicates, held, dead-lettered, buffered, lag) for the API's /metrics.

In the ingest process `current()` returns the live object; other processes (the API) read the JSON
snapshot each worker writes every second with `read_metrics(paths)` and render them with prometheus_client
(`snapshot_families`, `render_prometheus`).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

_CURRENT: IngestMetrics | None = None


@dataclass
class IngestMetrics:
    """Counters of one ingest worker since it started. Updated by the worker thread; read anywhere."""

    worker: str = "ingest"
    started: float = field(default_factory=time.time)
    received_messages: int = 0
    received_samples: int = 0
    stored: int = 0
    duplicates: int = 0
    conflicts: int = 0
    dead_lettered: int = 0
    buffered: int = 0  # messages in the on-disk buffer now
    buffered_total: int = 0  # messages ever put into the buffer
    store_errors: int = 0
    queue_depth: int = 0
    lag_ms: float = 0.0  # receive to durable store, last batch
    event_lag_s: float = 0.0  # now minus the newest stored sample's timestamp, at the last batch
    batches: int = 0
    acks_published: int = 0  # end-to-end ack messages sent to edge agents
    acked_messages: int = 0  # reading messages acknowledged in them
    acks_waiting: int = 0  # messages durable but not yet acknowledged to their agent (sent within a second)
    dead_letters_unstored: int = 0  # dead letters the store refused too (published on the topic only)
    housekeeping_errors: int = 0  # retention runs that failed (retried later)
    held_records: int = 0  # counted deltas stored as held (new records), for an engineer to release or reject
    held_energy_kwh: float = 0.0  # their energy, of meters counted in kWh (electricity)
    estimated_points: int = 0  # points that are a share of a gap spread over it (flag estimated)
    updated: float = field(default_factory=time.time)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: float) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)
            self.updated = time.time()

    def set(self, **values: float) -> None:
        with self._lock:
            for name, value in values.items():
                setattr(self, name, value)
            self.updated = time.time()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}

    def prometheus(self) -> str:
        """Prometheus text exposition of the counters (gauges for buffered, queue depth and lags)."""
        snap = self.snapshot()
        return render_prometheus([snap])

    def write(self, path: Path) -> None:
        """Write the snapshot atomically (rename), so a reader never sees half a file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.snapshot()))
        tmp.replace(path)


# What each snapshot field means on /metrics. A numeric field in neither table is still shown, as an untyped
# metric, until it is described here (tests/deploy/test_metrics.py names it).
COUNTERS: dict[str, str] = {
    "received_messages": "reading messages received from the broker",
    "received_samples": "samples in the received messages (stored or dead-lettered)",
    "stored": "points stored for the first time",
    "duplicates": "points received again with the same content (stored once)",
    "conflicts": "points received again with other content (dead-lettered, never overwritten)",
    "dead_lettered": "messages or samples sent to the dead letter with a reason",
    "buffered_total": "messages ever put into the on-disk buffer while the store was down",
    "store_errors": "failed writes to the store",
    "batches": "batches stored (one transaction each)",
    "acks_published": "end-to-end ack messages sent to edge agents (carbonwatch/v1/<site>/edge/<agent>/ack)",
    "acked_messages": "reading messages acknowledged to their edge agent as durable",
    "dead_letters_unstored": "dead letters the store refused too (published on the dead-letter topic only)",
    "housekeeping_errors": "retention runs that failed (tried again later)",
    "held_records": "counted deltas stored as held (not counted until an engineer releases them)",
    "held_energy_kwh": "energy of the held records of meters counted in kWh",
    "estimated_points": "points stored as a share of a gap's energy spread over the gap (flag estimated)",
}
GAUGES: dict[str, str] = {
    "buffered": "messages in the on-disk buffer now",
    "queue_depth": "messages received and waiting to be stored",
    "lag_ms": "milliseconds from receiving to durably storing, last batch",
    "event_lag_s": "seconds from the newest stored sample's timestamp to its storing, last batch",
    "acks_waiting": "messages durable but not yet acknowledged to their edge agent (sent within a second)",
}
NOT_METRICS = ("worker", "started", "updated", "written")
SNAPSHOT_AGE = "carbonwatch_ingest_snapshot_age_seconds"
# a counter's samples end in _total: buffered_total would collide with the gauge `buffered`
_RENAMED = {"buffered_total": "buffered_messages"}


def metric_name(field_name: str) -> str:
    """The family name of a snapshot field on /metrics (counters' samples add `_total`)."""
    return f"carbonwatch_ingest_{_RENAMED.get(field_name, field_name)}"


def snapshot_families(snapshots: list[dict[str, Any]], now_s: float | None = None) -> list[Any]:
    """prometheus_client metric families of the workers' snapshots, labelled by worker, plus the age of each
    snapshot: a live worker rewrites its file every second, so an age that keeps growing is a dead worker."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, UnknownMetricFamily

    now_s = time.time() if now_s is None else now_s
    families: list[Any] = []
    for name, help_text in COUNTERS.items():
        counter = CounterMetricFamily(metric_name(name), f"ingest: {help_text}", labels=["worker"])
        for snap in snapshots:
            counter.add_metric([str(snap.get("worker", "ingest"))], float(snap.get(name, 0)))
        families.append(counter)
    for name, help_text in GAUGES.items():
        gauge = GaugeMetricFamily(metric_name(name), f"ingest: {help_text}", labels=["worker"])
        for snap in snapshots:
            gauge.add_metric([str(snap.get("worker", "ingest"))], float(snap.get(name, 0)))
        families.append(gauge)
    extra = sorted({k for snap in snapshots for k, v in snap.items() if isinstance(v, int | float)
                    and not isinstance(v, bool) and k not in COUNTERS and k not in GAUGES and k not in NOT_METRICS})
    for name in extra:
        unknown = UnknownMetricFamily(metric_name(name), f"ingest: {name} (not described yet)",
                                      labels=["worker"])
        for snap in snapshots:
            if name in snap:
                unknown.add_metric([str(snap.get("worker", "ingest"))], float(snap[name]))
        families.append(unknown)
    age = GaugeMetricFamily(SNAPSHOT_AGE, "seconds since the ingest worker last wrote its metrics snapshot (about "
                            "1 s while it runs; growing when it is dead or stuck)", labels=["worker"])
    for snap in snapshots:
        written = float(snap.get("written", snap.get("updated", now_s)))
        age.add_metric([str(snap.get("worker", "ingest"))], max(0.0, now_s - written))
    families.append(age)
    return families


class SnapshotCollector:
    """A prometheus_client collector over snapshots read once (register it in a registry of one request)."""

    def __init__(self, snapshots: list[dict[str, Any]], now_s: float | None = None) -> None:
        self.snapshots = snapshots
        self.now_s = now_s

    def collect(self) -> Iterator[Any]:
        yield from snapshot_families(self.snapshots, self.now_s)


def render_prometheus(snapshots: list[dict[str, Any]]) -> str:
    """The Prometheus text exposition of these snapshots (prometheus_client's format, with HELP and TYPE)."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshots))
    return generate_latest(registry).decode()


def install(metrics: IngestMetrics) -> None:
    global _CURRENT
    _CURRENT = metrics


def current() -> IngestMetrics | None:
    """The metrics of the ingest worker running in this process, if any."""
    return _CURRENT


def metrics_paths(plant_data: dict[str, Any], base_dir: Path) -> list[Path]:
    """Where the workers of a plant file write their snapshots: the configured file, and any
    `ingest-metrics-*.json` next to it (other workers of a shared subscription)."""
    ingest = plant_data.get("ingest", {}) if isinstance(plant_data.get("ingest", {}), dict) else {}
    site = plant_data.get("site", {}).get("id", "site") if isinstance(plant_data.get("site"), dict) else "site"
    client_id = ingest.get("client_id") or f"carbonwatch-ingest-{site}"
    configured = Path(ingest.get("metrics_path") or f"var/ingest-metrics-{client_id}.json")
    configured = configured if configured.is_absolute() else base_dir / configured
    others = sorted(configured.parent.glob("ingest-metrics-*.json")) if configured.parent.is_dir() else []
    return [configured, *(p for p in others if p != configured)]


def read_plant_metrics(plant_data: dict[str, Any], base_dir: Path) -> list[dict[str, Any]]:
    """Snapshots of every ingest worker of a plant file, for the API's /metrics (see `render_prometheus`)."""
    return read_metrics(metrics_paths(plant_data, base_dir))


def read_metrics(paths: list[Path]) -> list[dict[str, Any]]:
    """Snapshots written by ingest workers (skips files that do not exist yet or are not a snapshot). Each gets
    `written`: when its file was last replaced (seconds since the epoch), which tells a live worker from a dead
    one even while its counters stand still."""
    out = []
    for path in paths:
        try:
            written = path.stat().st_mtime
            snap = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(snap, dict):
            snap.setdefault("written", written)
            out.append(snap)
    return out
