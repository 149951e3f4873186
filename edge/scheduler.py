"""Fixed-rate polling aligned to wall-clock multiples of each meter's interval, with an injectable clock.

Each tick is computed afresh from the wall clock (the next multiple of the interval), so there is no
drift; a poll that overruns skips the ticks it missed instead of bunching them. Every meter has its
own task, so a slow or dead device delays no meter on another gateway; a device that keeps failing is
polled less often (capped, jittered backoff) so it does not hog a shared bus.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Protocol

from calc.schema import Quality
from edge.drivers import PointValue
from edge.readings import Poll


class Clock(Protocol):
    def time(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """Wall-clock time; sleeps on the event loop."""

    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


def next_tick(now_s: float, interval_s: float) -> float:
    """The first multiple of interval_s strictly after now_s (epoch seconds)."""
    return (math.floor(now_s / interval_s + 1e-9) + 1) * interval_s


def failed(values: list[PointValue]) -> bool:
    """True when no point of the poll came back (the device or the link is away)."""
    return bool(values) and all(v.raw is None and v.quality == Quality.BAD for v in values)


class MeterPoller:
    """Polls one meter for ever: read at each tick, hand the poll on, back off while the device is away."""

    def __init__(self, meter_id: str, interval_s: float, read: Callable[[], Awaitable[list[PointValue]]],
                 submit: Callable[[Poll], None], clock: Clock | None = None,
                 backoff_max_ticks: int = 8, rng: random.Random | None = None) -> None:
        self.meter_id = meter_id
        self.interval_s = interval_s
        self._read = read
        self._submit = submit
        self._clock = clock or SystemClock()
        self._backoff_max_ticks = backoff_max_ticks
        self._rng = rng or random.Random()
        self.failures = 0
        self.polls = 0
        self.overruns = 0
        self.stopping = False  # checked between polls: cancel() alone is not enough, see Agent._stop_pollers

    def skip_ticks(self) -> int:
        """Ticks to leave out after consecutive failures: 0, 0, 1, 2, 4 ... up to the cap, jittered."""
        if self.failures < 2:
            return 0
        step = min(self._backoff_max_ticks, 2 ** (self.failures - 2))
        return self._rng.randint(max(0, step // 2), step)

    async def poll_once(self) -> None:
        ts = datetime.fromtimestamp(self._clock.time(), UTC)
        values = await self._read()
        self.polls += 1
        self.failures = self.failures + 1 if failed(values) else 0
        self._submit(Poll(self.meter_id, ts, tuple(values)))

    async def run(self) -> None:
        tick = next_tick(self._clock.time(), self.interval_s)
        while not self.stopping:
            await self._clock.sleep(tick - self._clock.time())
            if self.stopping:
                break
            await self.poll_once()
            now = self._clock.time()
            following = tick + self.interval_s * (1 + self.skip_ticks())
            if following <= now:
                self.overruns += 1
                following = next_tick(now, self.interval_s)
            elif following - now > self.interval_s * (2 + self._backoff_max_ticks):
                following = next_tick(now, self.interval_s)  # the clock went back (edge.clock re-anchored)
            tick = following
