"""The edge agent: wires drivers, pollers, the counter tracker, the on-disk spool and the MQTT publisher.

Data path: poller -> queue -> writer (samples, seq, one SQLite transaction per batch) -> spool ->
outbox (QoS 1, a window of messages in flight; backlog replayed in order beside fresh messages) -> broker -> ingest.
A message leaves the spool only when ingest acknowledged it (or the broker, with `confirm = "broker"`).
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from typing import Any

from msgspec import structs

from calc import topics
from edge.batching import Batcher
from edge.clock import AnchoredClock
from edge.config import EdgeConfig, MeterDevice, OpcUaGateway
from edge.drivers import Driver, make_driver
from edge.outbox import Outbox
from edge.publisher import Publisher
from edge.readings import MeterState, MeterTracker, Poll
from edge.scheduler import Clock, MeterPoller, SystemClock
from edge.spool import Outgoing, Spool, SpoolRow
from link.logs import Throttled

log = logging.getLogger(__name__)
ACK_FLUSH_S = 0.5  # an idle writer still deletes acknowledged messages this often
COMMIT_EVERY_S = 0.02  # each transaction is a hop to the SQLite thread: batch what comes within this
FLUSH_S = 0.5  # on a clean stop, how long to go on publishing what is spooled


class Agent:
    """One edge agent for one plant config. `run(stop)` returns after `stop` is set, within a few seconds."""

    def __init__(self, config: EdgeConfig, clock: Clock | None = None) -> None:
        self.config = config
        self.site = config.site.id
        self.agent_id = config.edge.agent
        # samples are stamped from a monotonic-anchored clock (edge.clock) unless a test brings its own
        self.anchored = AnchoredClock(config.edge.clock_settle_s, config.edge.clock_tolerance_s) if clock is None \
            else None
        self.clock: Clock = clock or self.anchored or SystemClock()
        edge = config.edge
        self.spool = Spool(edge.state_dir / "edge.sqlite", edge.spool_max_messages)
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edge-sqlite")
        self._queue: asyncio.Queue[Poll | None] = asyncio.Queue()  # None: stop after what came before
        self._stopping = False  # the writer's next round is its last
        self.meters = {m.id: m for m in config.devices}
        # a variable's gauges carry the time each value stands for (interval_s), for time-weighted means
        self.trackers = {m.id: MeterTracker(m.id, m.stuck_after, m.max_power_kw, self._skew(m), m.max_rate_per_h,
                                            m.interval_s, m.gap_factor, timed_gauges=config.is_variable(m.id))
                         for m in config.devices}
        self.states: dict[str, MeterState] = {}
        self.seqs: dict[str, int] = {}
        self.topics = {m.id: topics.reading(self.site, m.area, m.id) for m in config.devices}
        self.batcher = Batcher(self.trackers, self.topics, self.agent_id, self.states, self.seqs)
        self.publisher = Publisher(config.mqtt, self.site, self.agent_id,
                                   topics.edge_status(self.site, self.agent_id), self._on_puback,
                                   self._on_connection, edge.publish_window,
                                   ack_topic=topics.edge_ack(self.site, self.agent_id) if edge.confirm == "ingest"
                                   else None, on_ack_message=self._on_ack_message)
        self.publisher.status_extra = self._status_extra
        self.outbox = Outbox(self.spool, self.publisher, self._in_db, edge.live_share, edge.confirm, self.agent_id,
                             edge.ack_timeout_s, edge.ack_window)
        self._refusals = Throttled(log, logging.WARNING)
        self._compactions = Throttled(log, logging.WARNING)
        self.pollers: dict[str, MeterPoller] = {}
        self.ready = asyncio.Event()

    def _skew(self, meter: MeterDevice) -> float:
        gateway = self.config.gateway(meter.gateway)
        return gateway.max_clock_skew_s if isinstance(gateway, OpcUaGateway) else 300.0

    async def _in_db(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._db, fn, *args)

    def _status_extra(self) -> dict[str, Any]:
        return {"spool": self.spool.size, "confirm": self.outbox.confirm, "awaiting_ack": self.outbox.awaiting_ack,
                "acknowledged": self.outbox.acknowledged, "resent": self.outbox.resent,
                "compactions": self.spool.compactions, "refused": self.spool.refused}

    # -- callbacks from the publisher (already on the loop) ------------------------------------------------
    def _on_puback(self, generation: int, mid: int) -> None:
        self.outbox.on_puback(generation, mid)

    def _on_ack_message(self, payload: bytes) -> None:
        self.outbox.on_ack_message(payload)

    def _on_connection(self, up: bool) -> None:
        self.outbox.on_connection(up)

    @property
    def published(self) -> int:
        return self.outbox.published

    @property
    def acknowledged(self) -> int:
        return self.outbox.acknowledged

    # -- polling --------------------------------------------------------------------------------------------
    def submit(self, poll: Poll) -> None:
        if self.anchored is not None and self.anchored.doubt is not None:
            poll = structs.replace(poll, clock=self.anchored.doubt)
        self._queue.put_nowait(poll)

    async def _tracker(self) -> None:
        """Polls into the batcher (counter arithmetic, quality) one at a time, each in its own turn of the
        loop: the reply another meter is waiting for never queues behind a heap of tracking."""
        while (poll := await self._queue.get()) is not None:
            self.batcher.add(poll)
            if not self._queue.empty():
                await asyncio.sleep(0)

    async def _writer(self) -> None:
        """Due messages into the spool, at most one SQLite transaction per COMMIT_EVERY_S (acknowledgements
        alone: per ACK_FLUSH_S); a meter's state is adopted only for the messages the spool kept."""
        loop = asyncio.get_running_loop()
        last_commit = loop.time()
        while True:
            stopping = self._stopping  # read before sleeping: the last round comes after the last poll
            if not stopping:
                await asyncio.sleep(COMMIT_EVERY_S)
            batch = self.batcher.due(force=stopping)
            if batch or (self.outbox.has_confirmed and (stopping or loop.time() - last_commit >= ACK_FLUSH_S)):
                last_commit = loop.time()
                await self._write(batch)
            if stopping:
                return

    async def _write(self, batch: list[Outgoing]) -> None:
        confirmed = self.outbox.take_confirmed()
        refused, compactions = self.spool.refused, self.spool.compactions
        kept = await self._in_db(self.spool.commit, batch, confirmed, self.outbox.accepting_live)
        self.outbox.deleted(confirmed)
        rows = []
        for out, row_id in zip(batch, kept, strict=True):
            self.batcher.settle(out, row_id is not None)
            if row_id is not None:
                rows.append(SpoolRow(row_id, out.topic, out.payload, out.meter, out.seq))
        self.outbox.added(rows)
        if self.spool.compactions > compactions:
            self._compactions("spool full (%d messages): merged never-published messages to make room, time "
                              "resolution lost, energy kept (%d compactions, %d messages merged into others in all)",
                              self.spool.max_messages, self.spool.compactions, self.spool.merged)
        if self.spool.refused > refused:
            self._refusals("spool full (%d messages) and nothing left to merge: refused %d messages (%d in all); "
                           "their meters' baselines stay, so the energy comes with the next kept message",
                           self.spool.max_messages, self.spool.refused - refused, self.spool.refused)

    # -- status -----------------------------------------------------------------------------------------------
    async def _status(self) -> None:
        while True:
            await asyncio.sleep(self.config.edge.status_interval_s)
            if self.publisher.connected:
                self.publisher.publish_status("online")

    # -- lifecycle ------------------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        self.states, self.seqs = await self._in_db(self.spool.load_state)
        self.batcher = Batcher(self.trackers, self.topics, self.agent_id, self.states, self.seqs,
                               self.config.edge.batch_polls, self.config.edge.batch_max_s)
        self.publisher.start()
        tasks: list[asyncio.Task[None]] = []
        try:
            async with AsyncExitStack() as stack:
                drivers: dict[str, Driver] = {}
                for gw in self.config.gateways:
                    behind = [m for m in self.config.devices if m.gateway == gw.id]
                    drivers[gw.id] = await stack.enter_async_context(make_driver(gw, behind))
                tracker = asyncio.create_task(self._tracker(), name="edge-tracker")
                writer = asyncio.create_task(self._writer(), name="edge-writer")
                tasks += [asyncio.create_task(self.outbox.run(), name="edge-outbox"),
                          asyncio.create_task(self._status(), name="edge-status")]
                for meter in self.config.devices:
                    poller = self._poller(meter, drivers[meter.gateway])
                    self.pollers[meter.id] = poller
                    tasks.append(asyncio.create_task(poller.run(), name=f"poll-{meter.id}"))
                self.ready.set()
                await self._until(stop, [tracker, writer, *tasks])
                await self._stop_tasks(tasks)
                tasks = [tracker, writer]
                await self._drain(tracker, writer)
                tasks = []
                await self.outbox.flush(FLUSH_S)
                if self.outbox.has_confirmed:
                    confirmed = self.outbox.take_confirmed()
                    await self._in_db(self.spool.forget, confirmed)
                    self.outbox.deleted(confirmed)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.publisher.stop()
            await self._in_db(self.spool.close)
            self._db.shutdown(wait=True)

    async def _stop_tasks(self, tasks: list[asyncio.Task[None]], grace_s: float = 1.0) -> None:
        """Stop pollers and helpers. Pollers get a flag first: Python 3.11's asyncio.wait_for (used inside
        pymodbus and asyncua) can swallow a cancel that races with a reply, and a poller that swallowed it
        would otherwise poll on for ever; with the flag it ends after its current read."""
        for poller in self.pollers.values():
            poller.stopping = True
        for task in tasks:
            task.cancel()
        _, pending = await asyncio.wait(tasks, timeout=grace_s)
        for task in pending:  # asleep again after a swallowed cancel: once more
            task.cancel()
        if pending:
            _, still = await asyncio.wait(pending, timeout=grace_s)
            for task in still:
                log.warning("task %s did not stop in time", task.get_name())

    async def _until(self, stop: asyncio.Event, tasks: list[asyncio.Task[None]]) -> None:
        """Wait for stop; a task that dies is an error of the agent, not something to hide."""
        stopper = asyncio.create_task(stop.wait(), name="edge-stop")
        done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
        if stopper not in done:
            stopper.cancel()
            for task in done:
                task.result()  # raises the task's exception
            raise RuntimeError("an edge task ended by itself")

    async def _drain(self, tracker: asyncio.Task[None], writer: asyncio.Task[None]) -> None:
        """Track what was polled, commit it, then let the writer end (never cancelled mid-transaction)."""
        self._queue.put_nowait(None)
        await tracker
        self._stopping = True
        await writer

    def _poller(self, meter: MeterDevice, driver: Driver) -> MeterPoller:
        async def read() -> list[Any]:
            return await driver.read(meter)

        return MeterPoller(meter.id, meter.interval_s, read, self.submit, self.clock)
