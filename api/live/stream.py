"""The live stream hub: aggregates (per site and area, at most once a second), alert transitions, and meter
updates only to the subscribers that asked for them (a meter's every update, or every meter coalesced per flush).

A subscriber that falls behind by more than its queue loses the oldest updates and is told so with a
`lagged` event (the stream is a live view; the evidence is in the database).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Collection
from typing import Any

QUEUE_SIZE = 1000
ALL_METERS = "*"         # `meters=all`: every meter's latest update once per flush (the dashboard's meter table)
FRAMES_PER_WRITE = 500   # frames joined into one write when a subscriber has several waiting


def dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), default=str)


class Hub:
    """Who gets what: `subscribers` get every broadcast (aggregate, balance, alert); `watchers` the per-update
    `meter` events of the meters they named; `coalesced` every changed meter's latest state once per flush."""

    def __init__(self) -> None:
        self.subscribers: set[asyncio.Queue[tuple[str, str]]] = set()
        self.watchers: dict[str, set[asyncio.Queue[tuple[str, str]]]] = {}
        self.coalesced: set[asyncio.Queue[tuple[str, str]]] = set()
        self.sent = 0

    # ---- subscribing ------------------------------------------------------------------------------------

    def add(self, queue: asyncio.Queue[tuple[str, str]], meters: Collection[str] = ()) -> None:
        """A subscriber: broadcasts, and `meter` events of `meters` (ALL_METERS: all of them, coalesced)."""
        self.subscribers.add(queue)
        for meter in meters:
            if meter == ALL_METERS:
                self.coalesced.add(queue)
            else:
                self.watchers.setdefault(meter, set()).add(queue)

    def remove(self, queue: asyncio.Queue[tuple[str, str]]) -> None:
        self.subscribers.discard(queue)
        self.coalesced.discard(queue)
        for meter in [m for m, queues in self.watchers.items() if queue in queues]:
            self.watchers[meter].discard(queue)
            if not self.watchers[meter]:
                del self.watchers[meter]

    def watched(self, meter: str) -> bool:
        """Whether anyone wants this meter's every update (the caller builds the event only then)."""
        return meter in self.watchers

    # ---- publishing -------------------------------------------------------------------------------------

    @staticmethod
    def _put(queue: asyncio.Queue[tuple[str, str]], event: str, text: str) -> None:
        if queue.full():  # a subscriber this far behind starts again from now
            while not queue.empty():
                queue.get_nowait()
            queue.put_nowait(("lagged", "{}"))
        queue.put_nowait((event, text))

    def publish(self, event: str, data: dict[str, Any]) -> None:
        """A broadcast to every subscriber (encoded once)."""
        text = dumps(data)
        for queue in list(self.subscribers):
            self._put(queue, event, text)
        self.sent += 1

    def publish_meter(self, meter: str, data: dict[str, Any]) -> None:
        """One meter's update, to the subscribers watching it."""
        queues = self.watchers.get(meter)
        if not queues:
            return
        text = dumps(data)
        for queue in list(queues):
            self._put(queue, "meter", text)
        self.sent += 1

    def publish_coalesced(self, updates: list[dict[str, Any]]) -> None:
        """The latest state of each meter that changed since the last flush, to the `meters=all` subscribers."""
        if not self.coalesced or not updates:
            return
        texts = [dumps(u) for u in updates]
        for queue in list(self.coalesced):
            room = queue.maxsize - queue.qsize() if queue.maxsize else len(texts)
            if room < len(texts):   # behind by more than its queue: starts again from now
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(("lagged", "{}"))
                room = queue.maxsize - 1
            for text in texts[:room]:
                queue.put_nowait(("meter", text))
        self.sent += len(texts)

    # ---- one subscriber ---------------------------------------------------------------------------------

    async def events(self, keepalive_s: float = 15.0, limit: int | None = None, meters: Collection[str] = (),
                     queue_size: int = QUEUE_SIZE) -> AsyncIterator[bytes]:
        """SSE frames for one subscriber; a comment line every `keepalive_s` keeps proxies from closing it.
        Frames already waiting are written together (one write per burst, not per event)."""
        queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue(queue_size)
        self.add(queue, meters)
        sent = 0
        try:
            yield b": connected\n\n"
            while limit is None or sent < limit:
                try:
                    item = await asyncio.wait_for(queue.get(), keepalive_s)
                except TimeoutError:
                    yield b": keepalive\n\n"
                    continue
                frames = [item]
                while not queue.empty() and len(frames) < FRAMES_PER_WRITE and (
                        limit is None or sent + len(frames) < limit):
                    frames.append(queue.get_nowait())
                yield "".join(f"event: {event}\ndata: {text}\n\n" for event, text in frames).encode()
                sent += len(frames)
        finally:
            self.remove(queue)
