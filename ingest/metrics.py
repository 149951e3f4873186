"""Ingest's counters (received, stored, duplicates, conflicts, dead-lettered, buffered, lag) for the API's /metrics.

In the ingest process `current()` returns the live object; other processes (the API) read the JSON
snapshot each worker writes every second with `read_metrics(paths)`.
"""

from __future__ import annotations

import json
import os
import threading
import time
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


_COUNTERS = ("received_messages", "received_samples", "stored", "duplicates", "conflicts", "dead_lettered",
             "buffered_total", "store_errors", "batches", "acks_published", "acked_messages",
             "dead_letters_unstored", "housekeeping_errors")
_GAUGES = ("buffered", "queue_depth", "lag_ms", "event_lag_s", "acks_waiting")


def render_prometheus(snapshots: list[dict[str, Any]]) -> str:
    lines: list[str] = []
    for name in (*_COUNTERS, *_GAUGES):
        kind = "counter" if name in _COUNTERS else "gauge"
        metric = f"carbonwatch_ingest_{name}" + ("_total" if kind == "counter" else "")
        lines.append(f"# TYPE {metric} {kind}")
        for snap in snapshots:
            lines.append(f'{metric}{{worker="{snap.get("worker", "ingest")}"}} {float(snap.get(name, 0)):g}')
    return "\n".join(lines) + "\n"


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
    """Snapshots written by ingest workers (skips files that do not exist yet)."""
    out = []
    for path in paths:
        try:
            out.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return out
