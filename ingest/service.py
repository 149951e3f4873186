"""The ingest worker: take batches of received messages, convert, store durably, then ack and publish.

Order per batch: convert -> one store transaction (points, rollups, dead letters) -> MQTT acks ->
derived CO2e and dead-letter messages. A crash before the commit loses nothing (the broker sends
the unacked messages again); a crash after it double counts nothing (writes are idempotent).
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from calc import topics
from calc.factors import FactorSet
from ingest.config import IngestConfig
from ingest.convert import Converted, Converter, DeadLetter, Point, us_to_iso
from ingest.metrics import IngestMetrics, install
from ingest.mqtt import Received, Subscriber
from ingest.store import open_store
from ingest.store.base import StoreError, WriteResult

RETRY_MAX_S = 5.0


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
        self._metrics_written = 0.0
        self._retention_done = 0.0

    def run(self, stop: threading.Event, ready: threading.Event | None = None) -> None:
        """Receive and store until `stop` is set; then finish the batch in hand and disconnect."""
        self.subscriber.start()
        self._write_metrics(force=True)  # its appearance tells other processes we are subscribed
        if ready is not None:
            ready.set()
        try:
            while not stop.is_set():
                batch = self._take(0.1)
                if batch:
                    self._handle(batch, stop)
                self._housekeeping()
        finally:
            self.subscriber.stop()
            self.metrics.set(queue_depth=self.subscriber.queue.qsize())
            self._write_metrics(force=True)
            self.store.close()

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

    def _handle(self, batch: list[Received], stop: threading.Event) -> None:
        converted = self.converter.convert_batch([(r.topic, r.payload, r.received_us) for r in batch])
        points: list[Point] = [p for c in converted for p in c.points]
        dead: list[DeadLetter] = [d for c in converted for d in c.dead]
        self.metrics.add(received_messages=len(batch), received_samples=len(points) + len(dead))
        result = self._write(points, dead, stop)
        if result is None:
            return  # stopping with the store down: not acked, the broker keeps them for the next start
        self.subscriber.ack(batch)
        now = time.time()
        newest = max((p[1] for p in points), default=None)
        self.metrics.add(stored=result.stored, duplicates=result.duplicates, conflicts=result.conflicts,
                         dead_lettered=result.dead_lettered, batches=1)
        self.metrics.set(lag_ms=(now * 1e6 - batch[0].received_us) / 1000.0,
                         queue_depth=self.subscriber.queue.qsize(),
                         **({"event_lag_s": now - newest / 1e6} if newest is not None else {}))
        self._publish(converted, dead, result)

    def _write(self, points: Sequence[Point], dead: Sequence[DeadLetter],
               stop: threading.Event) -> WriteResult | None:
        """Write, retrying with capped backoff while the store is down (acks wait: back-pressure)."""
        delay = 0.1
        while True:
            try:
                return self.store.write(points, dead)  # type: ignore[no-any-return]
            except StoreError:
                self.metrics.add(store_errors=1)
                if stop.wait(delay):
                    return None
                delay = min(delay * 2, RETRY_MAX_S)

    def _publish(self, converted: list[Converted], dead: list[DeadLetter], result: WriteResult) -> None:
        if self.config.ingest.publish_co2e:
            for c in converted:
                body = self._co2e_message(c, result)
                if body is not None and c.area is not None and c.meter is not None:
                    self.subscriber.publish(topics.co2e(self.site, c.area, c.meter), body)
        if dead:
            target = topics.deadletter(self.site)
            for d in dead:
                self.subscriber.publish(target, d.as_json(), qos=1)

    def _co2e_message(self, c: Converted, result: WriteResult) -> bytes | None:
        rows = [p for p in c.points if p[14] is not None
                and (result.new_keys is None or (p[0], p[1], p[2]) in result.new_keys)]
        if not rows:
            return None
        by_factor: dict[str, float] = defaultdict(float)
        for p in rows:
            by_factor[p[18]] += p[14]
        return json.dumps({
            "v": 1, "site": self.site, "area": c.area, "meter": c.meter, "seq": rows[0][19],
            "co2e_kg": sum(p[14] for p in rows),
            "samples": [{"ts": us_to_iso(p[1]), "quantity": p[2], "energy": p[12], "energy_unit": p[13],
                         "co2e_kg": p[14], "scope": p[6], "factor_id": p[17], "factor_version": p[18]}
                        for p in rows],
        }).encode()

    def _housekeeping(self) -> None:
        now = time.monotonic()
        self._write_metrics()
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
