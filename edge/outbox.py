"""Feeds spooled messages to the MQTT publisher: fresh messages straight from memory, a backlog from the spool.

Every message is in the spool before it is offered here, and leaves the spool only once the broker has
acknowledged it. While connected, fresh messages are handed over in memory (no read back from SQLite).
After a (re)connect or a restart, everything still in the spool up to that moment is backlog, replayed in
spool order beside the fresh messages: `live_share` of the in-flight window is kept for fresh ones, so
live data keeps flowing while a long backlog drains.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from edge.publisher import Publisher
from edge.spool import Spool, SpoolRow

InDb = Callable[..., Awaitable[Any]]


class Outbox:
    """The publishing half of store-and-forward; `run()` is its task."""

    def __init__(self, spool: Spool, publisher: Publisher, in_db: InDb, live_share: float = 0.5) -> None:
        self.spool = spool
        self.publisher = publisher
        self._in_db = in_db
        self.live_share = live_share
        self.live: deque[SpoolRow] = deque()
        self.backlog_cursor = 0
        self.boundary = 0  # rows up to here are backlog, fetched from the spool
        self.inflight: dict[int, int] = {}  # mid -> row id
        self.inflight_rows: set[int] = set()
        self.acked: list[int] = []  # row ids the broker acknowledged, for the writer to delete
        self.wake = asyncio.Event()
        self._resync = True  # at start everything in the spool is backlog
        self._generation = publisher.generation
        self.published = 0
        self.acknowledged = 0

    @property
    def replaying(self) -> bool:
        return self.backlog_cursor < self.boundary

    # -- called by the writer and the publisher (on the loop) -------------------------------------------------
    def added(self, rows: Iterable[SpoolRow]) -> None:
        """Messages just committed to the spool."""
        if self.publisher.connected and not self._resync:
            self.live.extend(rows)
            self.wake.set()

    def on_ack(self, generation: int, mid: int) -> None:
        if generation != self.publisher.generation:
            return
        row = self.inflight.pop(mid, None)
        if row is not None:
            self.inflight_rows.discard(row)
            self.acked.append(row)
            self.acknowledged += 1
            self.wake.set()

    def on_connection(self, up: bool) -> None:
        # either way the spool is the truth: what is not acknowledged is taken from it after a reconnect
        self.live.clear()
        self._resync = True
        self.wake.set()

    def take_acked(self) -> list[int]:
        acked, self.acked = self.acked, []
        return acked

    async def flush(self, timeout_s: float) -> None:
        """On a clean stop: publish what is spooled and wait for its acknowledgements, for at most timeout_s.
        What is left stays in the spool for the next start."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        while self.publisher.connected and loop.time() < end:
            await self._round()
            if not (self.live or self.replaying or self.inflight):
                return
            self.wake.clear()
            waiter = asyncio.ensure_future(self.wake.wait())
            await asyncio.wait([waiter], timeout=max(0.0, end - loop.time()))
            waiter.cancel()

    # -- the task ---------------------------------------------------------------------------------------------
    async def run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            await self._round()

    async def _round(self) -> None:
        if self._generation != self.publisher.generation:  # a new client: what was in flight is forgotten
            self._generation = self.publisher.generation
            self.inflight.clear()
            self.inflight_rows.clear()
            self._resync = True
        if not self.publisher.connected:
            return
        if self._resync:
            self._resync = False
            self.boundary = await self._in_db(self.spool.max_id)
            self.backlog_cursor = 0
            self.live = deque(r for r in self.live if r.id > self.boundary)
        room = self.publisher.window - len(self.inflight)
        if room <= 0:
            return
        rows: list[SpoolRow] = []
        quota = max(1, int(room * self.live_share)) if self.replaying else room
        while self.live and len(rows) < quota:
            rows.append(self.live.popleft())
        if self.replaying and len(rows) < room:
            backlog = await self._in_db(self.spool.fetch, self.backlog_cursor, room - len(rows), self.boundary)
            self.backlog_cursor = backlog[-1].id if backlog else self.boundary
            rows += backlog
        for row in rows:
            if row.id in self.inflight_rows:
                continue  # paho still holds it and sends it again itself after a reconnect
            mid = self.publisher.publish(row.topic, row.payload)
            if mid is None:  # refused (client going away): the rest comes from the spool next time
                self._resync = True
                return
            self.inflight[mid] = row.id
            self.inflight_rows.add(row.id)
            self.published += 1
        if (self.live or self.replaying) and len(self.inflight) < self.publisher.window:
            self.wake.set()
