"""The agent's time: wall time at an anchor plus monotonic time elapsed since, so a wall-clock step loses and invents
nothing; a step is logged, polls carry a `clock` reason until the wall clock is steady again, then it re-anchors.

Why: stamped straight from the wall clock, a step of a day ahead put a poll's energy a day in the future (refused
by ingest), and a step back made the next interval negative. The monotonic clock never steps (on Linux NTP slews
CLOCK_MONOTONIC as it slews the wall clock, so the two only part at a step). When the wall clock has stood at the
same offset from the anchored time for `settle_s` (an operator or NTP set it on purpose), the agent takes it:
re-anchors, logs it, and stamps from the new wall time on. After a step back, each meter's readings are ignored
until its time passes its last sample (edge.readings: samples never go back), and the first one after carries the
energy meanwhile; after a step ahead the first interval is a gap.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class AnchoredClock:
    """scheduler.Clock for the agent: `time()` is the anchored time; `doubt` says why it is in doubt, if it is."""

    def __init__(self, settle_s: float = 300.0, tolerance_s: float = 2.0,
                 wall: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.settle_s = settle_s
        self.tolerance_s = tolerance_s
        self._wall = wall
        self._monotonic = monotonic
        self._anchor_wall = wall()
        self._anchor_mono = monotonic()
        self._step_s: float | None = None    # wall - anchored, while they disagree
        self._steady_since: float = 0.0      # monotonic time the offset was last seen to change
        self.re_anchors = 0
        self.doubt: str | None = None        # the reason polls carry while the wall clock disagrees

    def time(self) -> float:
        mono, wall = self._monotonic(), self._wall()
        anchored = self._anchor_wall + (mono - self._anchor_mono)
        offset = wall - anchored
        if abs(offset) <= self.tolerance_s:
            if self._step_s is not None:
                log.info("wall clock back in line with the anchored time (%+.3f s): samples no longer flagged", offset)
                self._step_s, self.doubt = None, None
            return anchored
        if self._step_s is None or abs(offset - self._step_s) > self.tolerance_s:
            log.warning("wall clock stepped: %+.0f s off the anchored time; samples keep the anchored time, flagged "
                        "`clock`, until the wall clock has been steady for %.0f s", offset, self.settle_s)
            self._step_s, self._steady_since = offset, mono
        elif mono - self._steady_since >= self.settle_s:
            log.warning("wall clock steady at %+.0f s off the anchored time for %.0f s: re-anchored to it",
                        offset, mono - self._steady_since)
            self._anchor_wall, self._anchor_mono = wall, mono
            self._step_s, self.doubt = None, None
            self.re_anchors += 1
            return wall
        self.doubt = (f"clock: wall clock {offset:+.0f} s off the agent's monotonic time; stamped from the "
                      f"monotonic time")
        return anchored

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))
