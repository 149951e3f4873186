"""The live stream hub: every update (meter rate, site balance, alert transition) goes to each SSE subscriber.

A subscriber that falls behind by more than its queue loses the oldest updates and is told so with a
`lagged` event (the stream is a live view; the evidence is in the database).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

QUEUE_SIZE = 1000


class Hub:
    def __init__(self) -> None:
        self.subscribers: set[asyncio.Queue[tuple[str, str]]] = set()
        self.sent = 0

    def publish(self, event: str, data: dict[str, Any]) -> None:
        text = json.dumps(data, separators=(",", ":"), default=str)
        for queue in list(self.subscribers):
            if queue.full():  # a subscriber this far behind starts again from now
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(("lagged", "{}"))
            queue.put_nowait((event, text))
        self.sent += 1

    async def events(self, keepalive_s: float = 15.0, limit: int | None = None) -> AsyncIterator[bytes]:
        """SSE frames for one subscriber; a comment line every `keepalive_s` keeps proxies from closing it."""
        queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue(QUEUE_SIZE)
        self.subscribers.add(queue)
        sent = 0
        try:
            yield b": connected\n\n"
            while limit is None or sent < limit:
                try:
                    event, text = await asyncio.wait_for(queue.get(), keepalive_s)
                except TimeoutError:
                    yield b": keepalive\n\n"
                    continue
                yield f"event: {event}\ndata: {text}\n\n".encode()
                sent += 1
        finally:
            self.subscribers.discard(queue)
