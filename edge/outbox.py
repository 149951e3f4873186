"""Feeds spooled messages to the MQTT publisher and follows each one until it is confirmed, publishing again what
is not.

Every message is in the spool before it is offered here. While connected, fresh messages are handed over in memory
(no read back from SQLite); everything else in the spool (at start, after a reconnect, or when fresh ones came
faster than they could go) is backlog, read from the spool in order beside the fresh messages: `live_share` of the
window is kept for fresh ones, so live data keeps flowing while a long backlog drains.

A published message is confirmed by ingest's acknowledgement of its (meter, seq) (`confirm = "ingest"`, calc.acks)
or by the broker's PUBACK (`"broker"`); only then does the writer delete it. A PUBACK always frees a place in the
broker's window (`publish_window`); at most `ack_window` published messages await ingest, the rest wait in the
spool. A message unacknowledged for `ack_timeout_s` is published again once ingest has acknowledged a message
published after it (ingest is alive: this one was lost on the way), and all of them after a reconnect (acks sent
meanwhile are lost). While ingest acknowledges nothing at all, only a probe of the oldest few goes again, the
timeout doubling up to ACK_BACKOFF_MAX times: an ingest outage never makes the agent flood the broker.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from calc.acks import AckError, decode_acks
from edge.publisher import Publisher
from edge.spool import Confirmed, Spool, SpoolRow
from link.logs import Throttled

log = logging.getLogger(__name__)

InDb = Callable[..., Awaitable[Any]]
Confirm = Literal["ingest", "broker"]
ACK_BACKOFF_MAX = 16  # the timeout grows to at most this many times ack_timeout_s while nothing is acknowledged
CHECK_MAX_S = 1.0  # how often, at most, unacknowledged messages are looked at
RESEND_LOG_S = 10.0  # at most one line a while about messages published again


@dataclass(slots=True)
class Sent:
    """A published message awaiting its confirmation."""

    meter: str
    seq: int
    at: float  # clock time of its last publication
    n: int  # the number of that publication, counting all (orders messages published in the same instant)


class Outbox:
    """The publishing half of store-and-forward; `run()` is its task."""

    def __init__(self, spool: Spool, publisher: Publisher, in_db: InDb, live_share: float = 0.5,
                 confirm: Confirm = "ingest", agent: str = "", ack_timeout_s: float = 10.0,
                 ack_window: int = 20_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.spool = spool
        self.publisher = publisher
        self._in_db = in_db
        self.live_share = live_share
        self.confirm = confirm
        self.agent = agent
        self.ack_timeout_s = ack_timeout_s
        self.ack_window = ack_window if confirm == "ingest" else math.inf  # PUBACKs pace the broker's window
        self._clock = clock
        self.live: deque[SpoolRow] = deque()
        self.live_max = max(1024, 4 * publisher.window)
        self.cursor = 0  # spool rows up to here were handed over in this run (or confirmed)
        self.boundary = 0  # the backlog runs to here
        self._extend = True  # the spool holds rows above the boundary that are not in `live`
        self.inflight: dict[int, int] = {}  # mid -> row id, until the broker's PUBACK
        self.inflight_rows: set[int] = set()
        self.awaiting: OrderedDict[int, Sent] = OrderedDict()  # row id -> published, unconfirmed; oldest first
        self._keys: dict[str, dict[int, int]] = {}  # meter -> seq -> row id, of the awaiting messages
        self.again: deque[int] = deque()  # row ids to publish again
        self._again: set[int] = set()
        self._confirmed = Confirmed()  # for the writer to delete
        self._deleting: set[int] = set()  # confirmed, not deleted yet: never taken from the spool again
        self.wake = asyncio.Event()
        self._generation = publisher.generation
        self._reconnected = False
        self.timeout_s = ack_timeout_s  # grows while ingest acknowledges nothing
        self._heard_at = clock()  # when ingest last confirmed something (or the wait began)
        self._confirmed_n = -1  # the latest publication (by number) of a message ingest confirmed
        self._n = 0
        self.published = 0
        self.resent = 0
        self.acknowledged = 0
        self._resends_to_log = 0
        self._resends_logged_at = -math.inf
        self._bad_ack = Throttled(log, logging.WARNING)
        self._window_full = False

    @property
    def replaying(self) -> bool:
        return self.cursor < self.boundary

    @property
    def awaiting_ack(self) -> int:
        """Messages published and not yet acknowledged by ingest (0 when the broker confirms)."""
        return len(self.awaiting) if self.confirm == "ingest" else 0

    @property
    def accepting_live(self) -> bool:
        """Fresh rows committed now will be handed over in memory (so the writer fences them in its commit)."""
        return self.publisher.connected and not self._extend and len(self.live) < self.live_max

    # -- called by the writer and the publisher (on the loop) -------------------------------------------------
    def added(self, rows: list[SpoolRow]) -> None:
        """Messages just committed to the spool."""
        if not rows:
            return
        if self.accepting_live and rows[-1].id <= self.spool.fence and len(self.live) + len(rows) <= self.live_max:
            self.live.extend(rows)
        else:  # they stay in the spool, where the backlog will find them
            self._extend = True
        self.wake.set()

    def on_puback(self, generation: int, mid: int) -> None:
        if generation != self.publisher.generation:
            return
        row = self.inflight.pop(mid, None)
        if row is None:
            return
        self.inflight_rows.discard(row)
        if self.confirm == "broker" and self._settle(row) is not None:
            self._confirmed.ids.append(row)
        self.wake.set()

    def on_ack_message(self, payload: bytes) -> None:
        """Ingest's acknowledgement (calc.acks): the named messages are confirmed, whatever else it says."""
        if self.confirm != "ingest":
            return
        try:
            message = decode_acks(payload)
        except AckError as exc:
            self._bad_ack("ignored an acknowledgement that does not decode: %s", exc)
            return
        if message.agent != self.agent:
            self._bad_ack("ignored an acknowledgement for agent %r on this agent's (%r) ack topic",
                          message.agent, self.agent)
            return
        matched = 0
        for meter, ranges in message.acks.items():
            for lo, hi in ranges:
                # deleted by (meter, seq) whether awaited here or not: a message of an earlier run is done too
                self._confirmed.ranges.append((meter, lo, hi))
                keys = self._keys.get(meter)
                if not keys:
                    continue
                seqs = ([s for s in range(lo, hi + 1) if s in keys] if hi - lo < len(keys)
                        else [s for s in keys if lo <= s <= hi])
                for seq in seqs:
                    sent = self._settle(keys[seq])
                    if sent is not None:
                        matched += 1
                        self._confirmed_n = max(self._confirmed_n, sent.n)
        if matched:
            if self.timeout_s > self.ack_timeout_s:
                log.info("ingest acknowledges again (%d messages); %d still await its acknowledgement",
                         matched, len(self.awaiting))
            self.timeout_s = self.ack_timeout_s
            self._heard_at = self._clock()
        self.wake.set()

    def on_connection(self, up: bool) -> None:
        # the spool is the truth: what was not handed over is taken from it after a reconnect
        self.live.clear()
        self._extend = True
        self._reconnected = self._reconnected or up
        self.wake.set()

    def take_confirmed(self) -> Confirmed:
        """What the writer deletes in its next transaction (then it calls `deleted`)."""
        confirmed, self._confirmed = self._confirmed, Confirmed()
        return confirmed

    def deleted(self, confirmed: Confirmed) -> None:
        self._deleting.difference_update(confirmed.rows)

    @property
    def has_confirmed(self) -> bool:
        return bool(self._confirmed)

    async def flush(self, timeout_s: float) -> None:
        """On a clean stop: publish what is spooled and wait for its confirmations, for at most timeout_s.
        What is left stays in the spool for the next start."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        while self.publisher.connected and loop.time() < end:
            await self._round()
            if not (self.live or self.replaying or self.again or self.inflight or self.awaiting_ack):
                return
            self.wake.clear()
            waiter = asyncio.ensure_future(self.wake.wait())
            await asyncio.wait([waiter], timeout=max(0.0, end - loop.time()))
            waiter.cancel()

    # -- the task ---------------------------------------------------------------------------------------------
    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        every_s = min(CHECK_MAX_S, self.ack_timeout_s / 4)
        timer: asyncio.TimerHandle | None = None

        def tick() -> None:  # unacknowledged messages are looked at even when nothing else happens
            nonlocal timer
            self.wake.set()
            timer = loop.call_later(every_s, tick)

        if self.confirm == "ingest":
            timer = loop.call_later(every_s, tick)
        try:
            while True:
                await self.wake.wait()
                self.wake.clear()
                await self._round()
        finally:
            if timer is not None:
                timer.cancel()

    async def _round(self) -> None:
        if self._generation != self.publisher.generation:  # a new client: what was in flight is gone with it
            self._generation = self.publisher.generation
            lost = sorted(self.inflight_rows)
            self.inflight.clear()
            self.inflight_rows.clear()
            self._queue_again(lost)
            self._reconnected = True
        if not self.publisher.connected:
            return
        now = self._clock()
        if self._reconnected:
            self._reconnected = False
            self._heard_at = now  # no acknowledgement could come while away
            self._after_reconnect(now)
        if self._extend:
            self._extend = False
            self.boundary = max(self.boundary, await self._in_db(self.spool.max_id))
            self.live = deque(r for r in self.live if r.id > self.boundary)
        if self.confirm == "ingest":
            self._look_at_unacknowledged(now)
        room = self.publisher.window - len(self.inflight)
        if room <= 0:
            return
        rows = await self._again_rows(room)
        self._note_window()
        fresh = int(min(room - len(rows), self.ack_window - len(self.awaiting)))
        if fresh > 0:
            rows += await self._fresh_rows(fresh)
        self._publish(rows, now)
        more = self.again or ((self.live or self.replaying) and len(self.awaiting) < self.ack_window)
        if more and len(self.inflight) < self.publisher.window:
            self.wake.set()

    async def _again_rows(self, room: int) -> list[SpoolRow]:
        ids: list[int] = []
        while self.again and len(ids) < room:
            row = self.again.popleft()
            self._again.discard(row)
            if row in self.awaiting and row not in self.inflight_rows:
                ids.append(row)
        if not ids:
            return []
        rows: list[SpoolRow] = await self._in_db(self.spool.rows, ids)
        for gone in set(ids) - {r.id for r in rows}:  # no longer spooled: nothing to wait for
            self._settle(gone, confirmed=False)
        return [r for r in rows if r.id in self.awaiting]

    async def _fresh_rows(self, room: int) -> list[SpoolRow]:
        rows: list[SpoolRow] = []
        quota = max(1, int(room * self.live_share)) if self.replaying else room
        while self.live and len(rows) < quota:
            rows.append(self.live.popleft())
        if self.replaying and len(rows) < room:
            backlog: list[SpoolRow] = await self._in_db(self.spool.take, self.cursor, room - len(rows), self.boundary)
            self.cursor = backlog[-1].id if backlog else self.boundary
            # rows published from `live` before the backlog was extended over them are handed over already
            rows += [r for r in backlog if r.id not in self.awaiting and r.id not in self._deleting]
        return rows

    def _publish(self, rows: list[SpoolRow], now: float) -> None:
        for i, row in enumerate(rows):
            if row.id in self.inflight_rows:
                continue  # paho still holds it and sends it again itself after a reconnect
            mid = self.publisher.publish(row.topic, row.payload)
            if mid is None:  # refused (client going away): these go with the next connection
                for rest in rows[i:]:
                    if rest.id not in self.awaiting:
                        self._sent(rest, now, published=False)
                self._queue_again(r.id for r in rows[i:])
                return
            self.inflight[mid] = row.id
            self.inflight_rows.add(row.id)
            self._sent(row, now)

    # -- bookkeeping ------------------------------------------------------------------------------------------
    def _sent(self, row: SpoolRow, now: float, published: bool = True) -> None:
        if not self.awaiting:
            self._heard_at = now  # the wait for ingest begins now
        sent = self.awaiting.pop(row.id, None)
        self._n += 1
        if sent is None:
            sent = Sent(row.meter, row.seq, now, self._n)
            self._keys.setdefault(row.meter, {})[row.seq] = row.id
        else:
            sent.at, sent.n = now, self._n
            self.resent += published
        self.published += published
        self.awaiting[row.id] = sent  # to the end: oldest publication first

    def _settle(self, row: int, confirmed: bool = True) -> Sent | None:
        sent = self.awaiting.pop(row, None)
        if sent is None:
            return None
        keys = self._keys.get(sent.meter)
        if keys is not None:
            keys.pop(sent.seq, None)
            if not keys:
                del self._keys[sent.meter]
        if confirmed:
            self._deleting.add(row)
            self._confirmed.rows.append(row)
            self.acknowledged += 1
        return sent

    def _queue_again(self, rows: Iterable[int]) -> int:
        queued = 0
        for row in rows:
            if row in self.awaiting and row not in self.inflight_rows and row not in self._again:
                self.again.append(row)
                self._again.add(row)
                queued += 1
        return queued

    def _oldest(self, limit: float) -> list[int]:
        out: list[int] = []
        for row in self.awaiting:
            if len(out) >= limit:
                break
            if row not in self.inflight_rows and row not in self._again:
                out.append(row)
        return out

    def _note_window(self) -> None:
        """Say when the ack window fills (new messages wait in the spool) and when it has room again."""
        if not self._window_full and len(self.awaiting) >= self.ack_window:
            self._window_full = True
            log.warning("%d published messages await ingest's acknowledgement (ack_window): new messages wait in "
                        "the spool (%d there)", len(self.awaiting), self.spool.size)
        elif self._window_full and len(self.awaiting) <= self.ack_window / 2:
            self._window_full = False
            log.info("ingest's acknowledgements made room: publishing new messages again")

    def _after_reconnect(self, now: float) -> None:
        """Acks sent while the agent was away are lost: publish again what awaits them, all of it while ingest was
        acknowledging, a probe of the oldest while it was not."""
        if self.confirm != "ingest" or not self.awaiting:
            return
        backing_off = self.timeout_s > self.ack_timeout_s
        queued = self._queue_again(self._oldest(self.publisher.window if backing_off else math.inf))
        if queued:
            log.info("reconnected: publishing again %d of %d messages awaiting ingest's acknowledgement",
                     queued, len(self.awaiting))

    def _look_at_unacknowledged(self, now: float) -> None:
        if not self.awaiting:
            self._heard_at = now
            return
        # lost on the way: unacknowledged for the timeout while a message published after it was acknowledged
        overtaken = []
        for row, sent in self.awaiting.items():  # in order of publication
            if sent.at > now - self.ack_timeout_s or sent.n >= self._confirmed_n:
                break
            overtaken.append(row)
        self._resends_to_log += self._queue_again(overtaken)
        if self._resends_to_log and now - self._resends_logged_at >= RESEND_LOG_S:
            log.warning("publishing again %d messages unacknowledged for %.0f s while ingest acknowledged later "
                        "ones; %d await its acknowledgement", self._resends_to_log, self.ack_timeout_s,
                        len(self.awaiting))
            self._resends_to_log, self._resends_logged_at = 0, now
        # ingest silent: a probe of the oldest, then wait twice as long
        if now - self._heard_at >= self.timeout_s:
            probe = self._queue_again(self._oldest(self.publisher.window))
            log.warning("ingest acknowledged nothing for %.0f s: %d messages await its acknowledgement; publishing "
                        "the oldest %d again, next try in %.0f s", now - self._heard_at, len(self.awaiting), probe,
                        min(self.timeout_s * 2, self.ack_timeout_s * ACK_BACKOFF_MAX))
            self.timeout_s = min(self.timeout_s * 2, self.ack_timeout_s * ACK_BACKOFF_MAX)
            self._heard_at = now
