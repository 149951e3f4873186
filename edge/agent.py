"""The edge agent: wires drivers, pollers, the counter tracker, the on-disk spool and the MQTT publisher.

Data path: poller -> queue -> writer (samples, seq, one SQLite transaction per batch) -> spool ->
pump (QoS 1, a window of messages in flight; backlog replayed in order beside fresh messages) -> broker.
A message leaves the spool only after the broker acknowledged it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, TypeVar

from calc import topics
from calc.schema import ReadingMessage, encode
from edge.config import EdgeConfig, MeterDevice, OpcUaGateway
from edge.drivers import Driver, make_driver
from edge.publisher import Publisher
from edge.readings import MeterState, MeterTracker, Poll
from edge.scheduler import Clock, MeterPoller, SystemClock
from edge.spool import Outgoing, Spool, SpoolRow

log = logging.getLogger(__name__)
T = TypeVar("T")
BATCH_MAX = 500


@dataclass
class Lanes:
    """Which spool rows to publish next: a backlog (rows up to `boundary`) beside the live rows after it."""

    live_cursor: int = 0
    backlog_cursor: int = 0
    boundary: int = 0
    inflight: dict[int, int] = field(default_factory=dict)  # mid -> row id
    inflight_rows: set[int] = field(default_factory=set)

    @property
    def replaying(self) -> bool:
        return self.backlog_cursor < self.boundary

    def backlog_from(self, max_id: int) -> None:
        """Everything up to max_id that is not acknowledged or in flight becomes backlog."""
        if not self.replaying:
            self.backlog_cursor = self.live_cursor
        self.boundary = max(self.boundary, max_id)
        self.live_cursor = max(self.live_cursor, self.boundary)


class Agent:
    """One edge agent for one plant config. `run(stop)` returns after `stop` is set, within a few seconds."""

    def __init__(self, config: EdgeConfig, clock: Clock | None = None) -> None:
        self.config = config
        self.site = config.site.id
        self.agent_id = config.edge.agent
        self.clock = clock or SystemClock()
        self.spool = Spool(config.edge.state_dir / "edge.sqlite", config.edge.spool_max_messages,
                           config.edge.spool_full_policy)
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edge-sqlite")
        self._queue: asyncio.Queue[Poll | None] = asyncio.Queue()  # None: stop after what came before
        self._wake = asyncio.Event()
        self._acked: list[int] = []
        self.lanes = Lanes()
        self.meters = {m.id: m for m in config.meters}
        self.trackers = {m.id: MeterTracker(m.id, m.stuck_after, m.max_power_kw, self._skew(m)) for m in config.meters}
        self.states: dict[str, MeterState] = {}
        self.seqs: dict[str, int] = {}
        self.topics = {m.id: topics.reading(self.site, m.area, m.id) for m in config.meters}
        self.publisher = Publisher(config.mqtt, self.site, self.agent_id,
                                   topics.edge_status(self.site, self.agent_id), self._on_ack,
                                   self._on_connection, config.edge.publish_window)
        self.publisher.status_extra = self._status_extra
        self.pollers: dict[str, MeterPoller] = {}
        self.published = 0
        self.acknowledged = 0
        self.ready = asyncio.Event()
        self._reconnected = False

    def _skew(self, meter: MeterDevice) -> float:
        gateway = self.config.gateway(meter.gateway)
        return gateway.max_clock_skew_s if isinstance(gateway, OpcUaGateway) else 300.0

    async def _in_db(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._db, fn, *args)

    def _status_extra(self) -> dict[str, Any]:
        return {"spool": self.spool.size, "dropped": self.spool.dropped, "acknowledged": self.acknowledged}

    # -- callbacks from the publisher (already on the loop) ------------------------------------------------
    def _on_ack(self, generation: int, mid: int) -> None:
        if generation != self.publisher.generation:
            return
        row = self.lanes.inflight.pop(mid, None)
        if row is not None:
            self.lanes.inflight_rows.discard(row)
            self._acked.append(row)
            self.acknowledged += 1
            self._wake.set()

    def _on_connection(self, up: bool) -> None:
        if up:
            self._reconnected = True
        self._wake.set()

    # -- polling --------------------------------------------------------------------------------------------
    def submit(self, poll: Poll) -> None:
        self._queue.put_nowait(poll)

    def _outgoing(self, polls: Iterable[Poll]) -> list[Outgoing]:
        tentative: dict[str, MeterState] = {}
        seqs: dict[str, int] = {}
        batch = []
        for poll in polls:
            meter = poll.meter_id
            state = tentative.get(meter, self.states.get(meter, {}))
            samples, new_state = self.trackers[meter].track(poll, state)
            seq = seqs.get(meter, self.seqs.get(meter, 0))
            message = ReadingMessage(meter=meter, seq=seq, agent=self.agent_id, samples=tuple(samples))
            batch.append(Outgoing(meter, self.topics[meter], encode(message), seq, new_state))
            tentative[meter] = new_state
            seqs[meter] = seq + 1
        return batch

    async def _writer(self) -> None:
        """Batches polls into one transaction; a meter's state is adopted only for kept messages."""
        stopping = False
        while not stopping:
            polls: list[Poll] = []
            item = await self._queue.get()
            while True:
                if item is None:
                    stopping = True
                else:
                    polls.append(item)
                if stopping or len(polls) >= BATCH_MAX or self._queue.empty():
                    break
                item = self._queue.get_nowait()
            if polls or self._acked:
                await self._write(polls)

    async def _write(self, polls: list[Poll]) -> None:
        batch = self._outgoing(polls)
        acked, self._acked = self._acked, []
        kept = await self._in_db(self.spool.commit, batch, acked)
        for out, ok in zip(batch, kept, strict=True):
            if ok:
                self.states[out.meter] = out.state
                self.seqs[out.meter] = out.seq + 1
        self._wake.set()

    # -- publishing -----------------------------------------------------------------------------------------
    async def _pump(self) -> None:
        lanes = self.lanes
        generation = self.publisher.generation
        self._reconnected = False
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._acked:
                acked, self._acked = self._acked, []
                await self._in_db(self.spool.forget, acked)
            if generation != self.publisher.generation:  # a new client: what was in flight is forgotten
                generation = self.publisher.generation
                lanes.inflight.clear()
                lanes.inflight_rows.clear()
                lanes.backlog_cursor, lanes.live_cursor, lanes.boundary = 0, 0, 0
                self._reconnected = True
            if not self.publisher.connected:
                continue
            if self._reconnected:
                self._reconnected = False
                lanes.backlog_from(await self._in_db(self.spool.max_id))
            room = self.publisher.window - len(lanes.inflight)
            if room <= 0:
                continue
            rows: list[SpoolRow] = []
            if lanes.replaying:
                live_quota = max(1, int(room * self.config.edge.live_share))
                rows += await self._in_db(self.spool.fetch, lanes.live_cursor, live_quota)
                backlog = await self._in_db(self.spool.fetch, lanes.backlog_cursor, room - len(rows),
                                            lanes.boundary)
                if backlog:
                    lanes.backlog_cursor = backlog[-1].id
                else:
                    lanes.backlog_cursor = lanes.boundary
                rows += backlog
            else:
                rows += await self._in_db(self.spool.fetch, lanes.live_cursor, room)
            for row in rows:
                if row.id > lanes.boundary:
                    lanes.live_cursor = max(lanes.live_cursor, row.id)
                if row.id in lanes.inflight_rows:
                    continue
                mid = self.publisher.publish(row.topic, row.payload)
                if mid is None:
                    break
                lanes.inflight[mid] = row.id
                lanes.inflight_rows.add(row.id)
                self.published += 1
            if rows and self.publisher.connected:
                self._wake.set()  # there may be more

    async def _status(self) -> None:
        while True:
            await asyncio.sleep(self.config.edge.status_interval_s)
            if self.publisher.connected:
                self.publisher.publish_status("online")

    # -- lifecycle ------------------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        self.states, self.seqs = await self._in_db(self.spool.load_state)
        self.lanes.boundary = await self._in_db(self.spool.max_id)
        self.lanes.live_cursor = self.lanes.boundary
        self.publisher.start()
        tasks: list[asyncio.Task[None]] = []
        try:
            async with AsyncExitStack() as stack:
                drivers: dict[str, Driver] = {}
                for gw in self.config.gateways:
                    behind = [m for m in self.config.meters if m.gateway == gw.id]
                    drivers[gw.id] = await stack.enter_async_context(make_driver(gw, behind))
                writer = asyncio.create_task(self._writer(), name="edge-writer")
                tasks += [asyncio.create_task(self._pump(), name="edge-pump"),
                          asyncio.create_task(self._status(), name="edge-status")]
                for meter in self.config.meters:
                    poller = self._poller(meter, drivers[meter.gateway])
                    self.pollers[meter.id] = poller
                    tasks.append(asyncio.create_task(poller.run(), name=f"poll-{meter.id}"))
                self.ready.set()
                await self._until(stop, [writer, *tasks])
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                tasks = [writer]
                await self._drain(writer)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.publisher.stop()
            await self._in_db(self.spool.close)
            self._db.shutdown(wait=True)

    async def _until(self, stop: asyncio.Event, tasks: list[asyncio.Task[None]]) -> None:
        """Wait for stop; a task that dies is an error of the agent, not something to hide."""
        stopper = asyncio.create_task(stop.wait(), name="edge-stop")
        done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
        if stopper not in done:
            stopper.cancel()
            for task in done:
                task.result()  # raises the task's exception
            raise RuntimeError("an edge task ended by itself")

    async def _drain(self, writer: asyncio.Task[None]) -> None:
        """Commit what was polled, then let the writer end (never cancelled mid-transaction)."""
        self._queue.put_nowait(None)
        await writer

    def _poller(self, meter: MeterDevice, driver: Driver) -> MeterPoller:
        async def read() -> list[Any]:
            return await driver.read(meter)

        return MeterPoller(meter.id, meter.interval_s, read, self.submit, self.clock)
