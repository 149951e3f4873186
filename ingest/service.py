"""The ingest worker: take batches of received messages, convert, store durably, then ack and publish.

Order per batch: convert -> one store transaction (points, rollups, dead letters) -> MQTT acks ->
derived CO2e and dead-letter messages; the edge agents' end-to-end acks (ingest.acks) follow within a
second. A crash before the commit loses nothing (the broker, or the edge, sends the messages again); a
crash after it double counts nothing (writes are idempotent). No message can stop the worker: a batch the
store refuses for its content is written message by message, and a message that still fails is dead-lettered
with the reason.
"""

from __future__ import annotations

import gc
import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from calc import topics
from calc.factors import FactorSet
from ingest.acks import AckBook
from ingest.buffer import DiskBuffer, DiskBufferError
from ingest.co2e import publications
from ingest.config import IngestConfig
from ingest.convert import Converter
from ingest.metrics import IngestMetrics, install
from ingest.mqtt import Received, Subscriber
from ingest.points import TS, Batch, Converted, DeadLetter
from ingest.store import open_store
from ingest.store.base import Store, StoreDataError, StoreError, WriteResult
from link.logs import Throttled

log = logging.getLogger(__name__)

RETRY_MIN_S = 0.1
RETRY_MAX_S = 5.0
RETENTION_EVERY_S = 3600.0
RETENTION_RETRY_MAX_S = 600.0
RETENTION_BUDGET_S = 0.25  # a retention pass yields to the readings after this long, and goes on a second later

Item = tuple[str, bytes, int | None]  # topic, payload, received (µs)


@dataclass(frozen=True, slots=True)
class _Work:
    """A batch in hand: what was received, and what it converted to."""

    received: list[Received]
    items: list[Item]
    converted: list[Converted]
    batch: Batch


def topic_filter(config: IngestConfig) -> str:
    base = f"{topics.ROOT}/{config.plant.site.id}/+/+/reading"
    group = config.ingest.share_group
    return f"$share/{group}/{base}" if group else base


class IngestWorker:
    """One ingest process: subscriber, converter, store, metrics."""

    def __init__(self, config: IngestConfig, store: Store | None = None, factors: FactorSet | None = None) -> None:
        self.config = config
        self.site = config.plant.site.id
        self.store: Store = store if store is not None else open_store(config.store, config.base_dir)
        self.converter = Converter(config.plant, config.data, factors, config.ingest.max_future_s,
                                   source=config.source, max_message_bytes=config.ingest.max_message_bytes,
                                   gap_after_s=config.ingest.gap_after_s,
                                   gap_flagged_after_s=config.ingest.gap_flagged_after_s,
                                   gap_max_segments=config.ingest.gap_max_segments)
        self.metrics = IngestMetrics(worker=config.client_id)
        install(self.metrics)
        self.subscriber = Subscriber(config.mqtt, config.client_id, topic_filter(config),
                                     session_expiry_s=config.ingest.session_expiry_s)
        self.batch_max = config.ingest.batch_max_messages
        self.buffer = DiskBuffer(config.buffer_path, int(config.ingest.buffer_max_mb * 1024 * 1024))
        self.metrics.set(buffered=self.buffer.count)
        self.acks = AckBook(self.site, config.ingest.ack_interval_s)
        self.last_store_error: str | None = None
        self._delay = RETRY_MIN_S
        self._retry_at = 0.0
        self._down_since: float | None = None
        self._store_failures = 0
        self._metrics_written = 0.0
        self._retention_at = 0.0
        self._retention_delay = 60.0
        self._warn = Throttled(log, interval_s=10.0)

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
        log.info("subscribed to %s on %s as %s; store: %s", self.subscriber.topic_filter,
                 self.config.mqtt.effective_url, self.config.client_id, self.config.store.kind)
        if self.buffer.count:
            log.info("%d messages in the disk buffer %s from an earlier run: they are stored first",
                     self.buffer.count, self.buffer.path)
        self._write_metrics(force=True)  # its appearance tells other processes we are subscribed
        if ready is not None:
            ready.set()
        try:
            while not stop.is_set():
                received = self._take(0.1)
                if received:
                    self.metrics.add(received_messages=len(received))
                    items: list[Item] = [(r.topic, r.payload, r.received_us) for r in received]
                    converted, batch = self._convert(items)
                    self._handle(_Work(received, items, converted, batch), stop)
                self._housekeeping()
        finally:
            self._send_acks()
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

    # ---- converting ---------------------------------------------------------------------------------

    def _convert(self, items: Sequence[Item]) -> tuple[list[Converted], Batch]:
        """Convert a batch; should that fail as a whole (a bug, not bad input: the converter dead-letters bad
        input itself), convert message by message, so that only a message that fails alone is lost to it."""
        try:
            return self.converter.convert_to_batch(items)
        except Exception:
            log.exception("converting a batch of %d messages failed; converting them one by one", len(items))
        converted = [self._convert_one(item) for item in items]
        return converted, self.converter.batch(converted)

    def _convert_one(self, item: Item) -> Converted:
        try:
            return self.converter.convert_to_batch([item])[0][0]
        except Exception as exc:
            log.exception("converting a message on %s failed; dead-lettered", item[0][:200])
            return self.converter.failed(*item, exc)

    # ---- storing ------------------------------------------------------------------------------------

    def _handle(self, work: _Work, stop: threading.Event) -> bool:
        """Store a batch, else buffer it on disk, else hold it unacked until the store is back.
        False when stopping before it could be kept (then the broker sends it again)."""
        if self._store_up() and self._store_batch(work.items, (work.converted, work.batch)):
            self.subscriber.ack(work.received)
            self._drain()
            return True
        if self._buffer_batch(work.received):
            return True
        self._warn.warning("buffer-full", "disk buffer %s is full (%d messages): not acknowledging to the broker "
                           "until the store is back (back-pressure; the broker keeps the rest)",
                           self.buffer.path, self.buffer.count)
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
        except DiskBufferError as exc:
            self._warn.warning("buffer-error", "cannot write the disk buffer: %s", exc)
            return False
        self.subscriber.ack(batch)
        self.metrics.add(buffered_total=len(batch))
        self.metrics.set(buffered=self.buffer.count)
        self._warn.warning("buffering", "store unavailable: %d messages kept in the disk buffer %s",
                           self.buffer.count, self.buffer.path)
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
            if not self.buffer.count:
                log.info("disk buffer drained into the store")

    def _store_batch(self, items: Sequence[Item], done: tuple[list[Converted], Batch] | None = None) -> bool:
        """Convert (unless `done`) and write in one store transaction; False (and a backoff) when the store is
        down. A batch refused for its content is written message by message instead."""
        converted, batch = done if done is not None else self._convert(items)
        try:
            result = self.store.write(batch)
        except StoreError as exc:
            self._store_down(exc)
            return False
        except StoreDataError as exc:
            return self._store_one_by_one(items, converted, exc)
        except Exception as exc:  # a store bug must cost the messages that trigger it, not the worker
            log.exception("the store's write raised %s; writing the batch message by message", type(exc).__name__)
            return self._store_one_by_one(items, converted, exc)
        self._stored(items, converted, batch, result)
        return True

    def _store_one_by_one(self, items: Sequence[Item], converted: list[Converted], cause: BaseException) -> bool:
        """The store refused a batch for its content: write each message alone; one that is refused alone is
        dead-lettered whole with the store's reason. False when the store goes down meanwhile."""
        self._warn.warning("store-data", "store refused a batch of %d messages (%s); writing them one by one",
                           len(items), cause)
        for item, out in zip(items, converted, strict=True):
            batch = self.converter.batch([out])
            try:
                result = self.store.write(batch)
            except StoreError as exc:
                self._store_down(exc)
                return False  # nothing acked: the rest comes again (what was written is a duplicate then)
            except Exception as exc:
                reason = f"store: refused the message's points: {type(exc).__name__}: {exc}"[:1000]
                log.warning("dead-lettering a message on %s: %s", item[0][:200], reason)
                out = Converted(topic=out.topic, meter=out.meter, area=out.area, ack=out.ack,
                                dead=[DeadLetter(item[2] or int(time.time() * 1e6), item[0], item[1], reason,
                                                 out.ack[1] if out.ack else None, out.ack[2] if out.ack else None)])
                batch = self.converter.batch([out])
                try:
                    result = self.store.write(batch)
                except StoreError as down:
                    self._store_down(down)
                    return False
                except Exception:
                    # The dead letter itself cannot be stored: say so loudly and send it where it can be seen.
                    log.exception("the store refused the dead letter of a message on %s too; published on the "
                                  "dead-letter topic only", item[0][:200])
                    self.metrics.add(dead_letters_unstored=1)
                    self._publish(batch, WriteResult(dead_lettered=1))
                    self.acks.add([out])
                    continue
            self._stored([item], [out], batch, result)
        return True

    def _stored(self, items: Sequence[Item], converted: list[Converted], batch: Batch, result: WriteResult) -> None:
        """Bookkeeping after a durable write: metrics, logs, the edge's acks, the derived messages."""
        if self._down_since is not None:
            log.info("store is back after %.1f s and %d failed attempts", time.monotonic() - self._down_since,
                     self._store_failures)
            self._down_since, self._store_failures = None, 0
        self._delay = RETRY_MIN_S
        self._retry_at = 0.0
        now = time.time()
        newest = max((p[TS] for p in batch.points), default=None)
        self.metrics.add(received_samples=len(batch.points) + len(batch.held)
                         + sum(1 for d in batch.dead if d.index is not None),
                         stored=result.stored, duplicates=result.duplicates, conflicts=result.conflicts,
                         dead_lettered=result.dead_lettered, batches=1, held_records=result.held)
        if batch.counted is not None and batch.counted.estimated is not None and result.new_keys is None:
            self.metrics.add(estimated_points=int(batch.counted.estimated.sum()))
        if batch.held:
            self._held(batch, result)
        oldest = min((r for _, _, r in items if r is not None), default=None)
        self.metrics.set(queue_depth=self.subscriber.queue.qsize(),
                         **({"lag_ms": (now * 1e6 - oldest) / 1000.0} if oldest is not None else {}),
                         **({"event_lag_s": now - newest / 1e6} if newest is not None else {}))
        if batch.dead:
            first = batch.dead[0]
            self._warn.warning("dead-letter", "dead-lettered %d input(s) of %d messages, e.g. %s: %s",
                               len(batch.dead), len(items), first.topic[:200], first.reason[:300])
        if result.conflicts:
            self._warn.warning("conflict", "%d point(s) arrived again with other content: kept the stored ones, "
                               "dead-lettered the new (see the dead letters)", result.conflicts)
        self.acks.add(converted)
        self._publish(batch, result)

    def _held(self, batch: Batch, result: WriteResult) -> None:
        """Held energy is stored, not counted: say so once in a while, and count it."""
        if result.held:
            first = batch.held[0]
            self._warn.warning("held", "held %d counted delta(s) for an engineer to release or reject, e.g. meter "
                               "%s at %s: %s", result.held, first.meter, first.ts_us, first.reason[:300])
        if result.held == len(batch.held):  # all new (else which ones is not known here: the count is enough)
            self.metrics.add(held_energy_kwh=sum(h.energy for h in batch.held if h.energy_unit == "kWh"))

    def _store_down(self, exc: StoreError) -> None:
        self.metrics.add(store_errors=1)
        self.last_store_error = str(exc)
        self._store_failures += 1
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning("store unavailable: %s (retrying with backoff up to %.0f s)", exc, RETRY_MAX_S)
        else:
            log.debug("store still unavailable (%d failures): %s", self._store_failures, exc)
        self._retry_at = time.monotonic() + self._delay
        self._delay = min(self._delay * 2, RETRY_MAX_S)

    def _publish(self, batch: Batch, result: WriteResult) -> None:
        if self.config.ingest.publish_co2e:
            # QoS 1: the API's live sums (per site) and SCADA (per meter) add these up; none may be missed
            for topic, body in publications(batch, result, self.config.ingest.co2e_per_meter):
                self.subscriber.publish(topic, body, qos=1)
        if batch.dead:
            target = topics.deadletter(self.site)
            for d in batch.dead:
                self.subscriber.publish(target, d.as_json(), qos=1)

    def _send_acks(self) -> None:
        """The edge agents' end-to-end acks for what is durable now (QoS 1; a lost one costs a resend)."""
        for topic, payload, n in self.acks.take():
            self.subscriber.publish(topic, payload, qos=1)
            self.metrics.add(acks_published=1, acked_messages=n)

    # ---- housekeeping -------------------------------------------------------------------------------

    def _housekeeping(self) -> None:
        now = time.monotonic()
        if self.acks.due():
            self._send_acks()
        self._write_metrics()
        if self.buffer.count and self._store_up():
            self._drain(1)
        if now >= self._retention_at:
            self._retention()

    def _retention(self) -> None:
        """Delete what the retention settings say is old. A failure (disk full, I/O error, a bug) is logged and
        tried again later with a growing delay; it never stops ingest."""
        try:
            pruned = self.store.apply_retention(datetime.now(UTC), budget_s=RETENTION_BUDGET_S)
        except Exception as exc:  # housekeeping only: nothing of the readings depends on it succeeding now
            self.metrics.add(housekeeping_errors=1)
            log.error("retention failed (%s: %s); trying again in %.0f s", type(exc).__name__, exc,
                      self._retention_delay, exc_info=not isinstance(exc, StoreError))
            self._retention_at = time.monotonic() + self._retention_delay
            self._retention_delay = min(self._retention_delay * 2, RETENTION_RETRY_MAX_S)
            return
        self._retention_delay = 60.0
        self._retention_at = time.monotonic() + (RETENTION_EVERY_S if pruned.done else 1.0)
        if pruned.points or pruned.minute_rollups or pruned.dead_letters:
            log.info("retention deleted %d raw points, %d minute rollups, %d dead letters%s", pruned.points,
                     pruned.minute_rollups, pruned.dead_letters, "" if pruned.done else "; going on in a second")

    def _write_metrics(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._metrics_written >= 1.0:
            self._metrics_written = now
            self.metrics.set(acks_waiting=self.acks.waiting)
            try:
                self.metrics.write(self.config.metrics_path)
            except OSError as exc:  # metrics are best effort; the store is what counts
                self._warn.warning("metrics", "cannot write the metrics snapshot %s: %s", self.config.metrics_path,
                                   exc)

