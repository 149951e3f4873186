"""The ingest worker: take batches of received messages, convert, store durably, then ack and publish.

Order per batch: convert -> one store transaction (points, rollups, dead letters) -> MQTT acks ->
derived CO2e and dead-letter messages. A crash before the commit loses nothing (the broker sends
the unacked messages again); a crash after it double counts nothing (writes are idempotent).
"""

from __future__ import annotations

import contextlib
import gc
import json
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from calc import topics
from calc.factors import FactorSet
from ingest.buffer import BufferError, DiskBuffer
from ingest.config import IngestConfig
from ingest.convert import Converter
from ingest.metrics import IngestMetrics, install
from ingest.mqtt import Received, Subscriber
from ingest.points import CO2E, ENERGY, FACTOR, METER, QUANTITY, TS, Batch, Converted, us_to_iso
from ingest.store import open_store
from ingest.store.base import StoreError, WriteResult

RETRY_MIN_S = 0.1
RETRY_MAX_S = 5.0


def _groups(meters: list[str], refs: list[int]) -> dict[tuple[str, int], npt.NDArray[np.intp]]:
    """Row indexes of each (meter, factor ref) pair."""
    keys: dict[tuple[str, int], list[int]] = {}
    for i, key in enumerate(zip(meters, refs, strict=True)):
        keys.setdefault(key, []).append(i)
    return {k: np.asarray(v, dtype=np.intp) for k, v in keys.items()}


@dataclass(frozen=True, slots=True)
class _Work:
    """A batch in hand: what was received, and what it converted to."""

    received: list[Received]
    items: list[tuple[str, bytes, int | None]]
    converted: list[Converted]
    batch: Batch


def topic_filter(config: IngestConfig) -> str:
    base = f"{topics.ROOT}/{config.plant.site.id}/+/+/reading"
    group = config.ingest.share_group
    return f"$share/{group}/{base}" if group else base


class IngestWorker:
    """One ingest process: subscriber, converter, store, metrics."""

    def __init__(self, config: IngestConfig, store: Any | None = None, factors: FactorSet | None = None) -> None:
        self.config = config
        self.site = config.plant.site.id
        self.store = store if store is not None else open_store(config.store, config.base_dir)
        self.converter = Converter(config.plant, config.data, factors, config.ingest.max_future_s,
                                   source=config.source)
        self.metrics = IngestMetrics(worker=config.client_id)
        install(self.metrics)
        self.subscriber = Subscriber(config.mqtt, config.client_id, topic_filter(config),
                                     session_expiry_s=config.ingest.session_expiry_s)
        self.batch_max = config.ingest.batch_max_messages
        self.buffer = DiskBuffer(config.buffer_path, int(config.ingest.buffer_max_mb * 1024 * 1024))
        self.metrics.set(buffered=self.buffer.count)
        self.last_store_error: str | None = None
        self._delay = RETRY_MIN_S
        self._retry_at = 0.0
        self._metrics_written = 0.0
        self._retention_done = 0.0

    def run(self, stop: threading.Event, ready: threading.Event | None = None) -> None:
        """Receive and store until `stop` is set; then finish the batch in hand and disconnect.

        One thread converts and stores (paho's network thread receives meanwhile). A second stage
        thread was tried and measured: pysqlite releases the GIL around every row it steps, so two
        busy threads mostly trade the GIL, and the SQLite insert got 2.5x slower than alone.
        """
        # What start-up built (pint's registry, pydantic models, the factor table) lives as long as the
        # process: keep the cyclic collector from walking it again on each full collection.
        gc.freeze()
        self.subscriber.start()
        self._write_metrics(force=True)  # its appearance tells other processes we are subscribed
        if ready is not None:
            ready.set()
        try:
            while not stop.is_set():
                received = self._take(0.1)
                if received:
                    self.metrics.add(received_messages=len(received))
                    items: list[tuple[str, bytes, int | None]] = [(r.topic, r.payload, r.received_us)
                                                                  for r in received]
                    converted, batch = self.converter.convert_to_batch(items)
                    self._handle(_Work(received, items, converted, batch), stop)
                self._housekeeping()
        finally:
            self.subscriber.stop()
            self.metrics.set(queue_depth=self.subscriber.queue.qsize())
            self._write_metrics(force=True)
            self.store.close()
            self.buffer.close()

    def _take(self, timeout_s: float) -> list[Received]:
        q = self.subscriber.queue
        try:
            first = q.get(timeout=timeout_s)
        except queue.Empty:
            return []
        batch = [first]
        while len(batch) < self.batch_max:
            try:
                batch.append(q.get_nowait())
            except queue.Empty:
                break
        return batch

    def _handle(self, work: _Work, stop: threading.Event) -> bool:
        """Store a batch, else buffer it on disk, else hold it unacked until the store is back.
        False when stopping before it could be kept (then the broker sends it again)."""
        if self._store_up() and self._store_batch(work.items, (work.converted, work.batch)):
            self.subscriber.ack(work.received)
            self._drain()
            return True
        if self._buffer_batch(work.received):
            return True
        while not stop.wait(self._delay):  # buffer full: back-pressure, the broker keeps what we do not ack
            self.metrics.set(queue_depth=self.subscriber.queue.qsize())
            self._write_metrics()
            if self._store_batch(work.items):
                self.subscriber.ack(work.received)
                return True
        return False

    def _store_up(self) -> bool:
        return time.monotonic() >= self._retry_at

    def _buffer_batch(self, batch: list[Received]) -> bool:
        if not self.buffer.has_room(batch):
            return False
        try:
            self.buffer.append(batch)
        except BufferError:
            return False
        self.subscriber.ack(batch)
        self.metrics.add(buffered_total=len(batch))
        self.metrics.set(buffered=self.buffer.count)
        return True

    def _drain(self, max_chunks: int = 4) -> None:
        """Move buffered messages into the store, oldest first, a few chunks at a time."""
        for _ in range(max_chunks):
            if not self.buffer.count or not self._store_up():
                return
            rows = self.buffer.peek(self.batch_max)
            if not rows or not self._store_batch([(t, p, r) for _, t, p, r in rows]):
                return
            self.buffer.remove(rows)
            self.metrics.set(buffered=self.buffer.count)

    def _store_batch(self, items: Sequence[tuple[str, bytes, int | None]],
                     done: tuple[list[Converted], Batch] | None = None) -> bool:
        """Convert (unless `done`) and write in one store transaction; False (and a backoff) when the
        store is down."""
        converted, batch = done if done is not None else self.converter.convert_to_batch(items)
        try:
            result: WriteResult = self.store.write(batch)
        except StoreError as exc:
            self.metrics.add(store_errors=1)
            self.last_store_error = str(exc)
            self._retry_at = time.monotonic() + self._delay
            self._delay = min(self._delay * 2, RETRY_MAX_S)
            return False
        self._delay = RETRY_MIN_S
        self._retry_at = 0.0
        now = time.time()
        newest = max((p[TS] for p in batch.points), default=None)
        self.metrics.add(received_samples=len(batch.points) + sum(1 for d in batch.dead if d.index is not None),
                         stored=result.stored, duplicates=result.duplicates, conflicts=result.conflicts,
                         dead_lettered=result.dead_lettered, batches=1)
        oldest = min((r for _, _, r in items if r is not None), default=None)
        self.metrics.set(queue_depth=self.subscriber.queue.qsize(),
                         **({"lag_ms": (now * 1e6 - oldest) / 1000.0} if oldest is not None else {}),
                         **({"event_lag_s": now - newest / 1e6} if newest is not None else {}))
        self._publish(converted, batch, result)
        return True

    def _publish(self, converted: list[Converted], batch: Batch, result: WriteResult) -> None:
        if self.config.ingest.publish_co2e:
            for meter, body in self._co2e_messages(batch, result):
                info = batch.meters[meter]
                # QoS 1: the API's live sums and SCADA add these up; a persistent session must not miss one
                self.subscriber.publish(topics.co2e(info.site, info.area, meter), body, qos=1)
        if batch.dead:
            target = topics.deadletter(self.site)
            for d in batch.dead:
                self.subscriber.publish(target, d.as_json(), qos=1)

    def _co2e_messages(self, batch: Batch, result: WriteResult) -> list[tuple[str, bytes]]:
        """The derived stream: per meter and stored batch, the energy and CO2e of its new points, per factor."""
        sums: dict[tuple[str, int], list[float]] = {}  # (meter, factor ref) -> energy, co2e, points, first, last
        c = batch.counted
        if result.new_keys is None and c is not None:  # every point new: sum the columns
            for key, idx in _groups(c.meter.tolist(), c.factor_ref.tolist()).items():
                ts = c.ts_us[idx]
                sums[key] = [float(c.energy[idx].sum()), float(c.co2e_kg[idx].sum()), len(idx),
                             int(ts.min()), int(ts.max())]
        else:
            for p in batch.points:
                if p[CO2E] is None or (result.new_keys is not None
                                       and (p[METER], p[TS], p[QUANTITY]) not in result.new_keys):
                    continue
                acc = sums.setdefault((p[METER], p[FACTOR]), [0.0, 0.0, 0, p[TS], p[TS]])
                acc[0] += p[ENERGY]
                acc[1] += p[CO2E]
                acc[2] += 1
                acc[3], acc[4] = min(acc[3], p[TS]), max(acc[4], p[TS])
        per_meter: dict[str, list[tuple[int, list[float]]]] = {}
        for (meter, ref), acc in sums.items():
            per_meter.setdefault(meter, []).append((ref, acc))
        out = []
        for meter, parts in per_meter.items():
            info = batch.meters[meter]
            by_factor = []
            for ref, (energy, co2e, n, _, _) in parts:
                f = batch.factors[ref]
                by_factor.append({"energy": energy, "energy_unit": f.energy_unit, "co2e_kg": co2e, "points": int(n),
                                  "scope": f.scope, "factor_id": f.factor_id, "factor_version": f.factor_version})
            out.append((meter, json.dumps({
                "v": 1, "site": info.site, "area": info.area, "meter": meter,
                "from": us_to_iso(int(min(a[3] for _, a in parts))), "to": us_to_iso(int(max(a[4] for _, a in parts))),
                "points": int(sum(a[2] for _, a in parts)), "co2e_kg": sum(a[1] for _, a in parts),
                "by_factor": by_factor}).encode()))
        return out

    def _housekeeping(self) -> None:
        now = time.monotonic()
        self._write_metrics()
        if self.buffer.count and self._store_up():
            self._drain(1)
        if now - self._retention_done > 3600 and hasattr(self.store, "apply_retention"):
            self._retention_done = now
            try:
                self.store.apply_retention(datetime.now(UTC))
            except StoreError:
                self.metrics.add(store_errors=1)

    def _write_metrics(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._metrics_written >= 1.0:
            self._metrics_written = now
            with contextlib.suppress(OSError):  # metrics are best effort; the store is what counts
                self.metrics.write(self.config.metrics_path)
