"""The agent's monotonic-anchored clock: a wall-clock step either way changes no stamp, is flagged until the wall
clock is steady for the settle time, then the clock re-anchors; a wall clock that comes back clears the doubt. And
the poller, after the clock re-anchored a day back, polls on at the next tick instead of sleeping a day."""

from __future__ import annotations

import asyncio
import logging

import pytest

from edge.clock import AnchoredClock
from edge.readings import Poll
from edge.scheduler import MeterPoller

DAY_S = 86_400.0
T0 = 1_780_000_000.0


class Clocks:
    """A wall clock that can step and a monotonic one, both set by the test."""

    def __init__(self) -> None:
        self.mono = 1_000.0
        self.offset = 0.0

    def wall(self) -> float:
        return T0 + (self.mono - 1_000.0) + self.offset

    def monotonic(self) -> float:
        return self.mono


def make(settle_s: float = 60.0) -> tuple[Clocks, AnchoredClock]:
    clocks = Clocks()
    return clocks, AnchoredClock(settle_s, 2.0, clocks.wall, clocks.monotonic)


@pytest.mark.parametrize("step_s", [DAY_S, -DAY_S])
def test_a_step_changes_no_stamp_and_is_flagged_until_it_settles(step_s: float, caplog: pytest.LogCaptureFixture
                                                                  ) -> None:
    clocks, clock = make()
    assert clock.time() == T0 and clock.doubt is None
    clocks.mono += 10
    clocks.offset = step_s
    with caplog.at_level(logging.WARNING, logger="edge.clock"):
        assert clock.time() == T0 + 10
    assert clock.doubt is not None and f"{step_s:+.0f} s" in clock.doubt
    assert "stepped" in caplog.text
    clocks.mono += 59
    assert clock.time() == T0 + 69 and clock.doubt is not None  # not yet steady for 60 s
    clocks.mono += 1
    assert clock.time() == T0 + 70 + step_s  # steady for 60 s: re-anchored to the wall clock
    assert (clock.doubt, clock.re_anchors) == (None, 1)
    clocks.mono += 5
    assert clock.time() == T0 + 75 + step_s


def test_a_wall_clock_that_comes_back_clears_the_doubt_without_re_anchoring() -> None:
    clocks, clock = make()
    clocks.mono += 1
    clocks.offset = -3_600
    clock.time()
    assert clock.doubt is not None
    clocks.mono += 30
    clocks.offset = 0.5  # within the tolerance
    assert clock.time() == T0 + 31
    assert (clock.doubt, clock.re_anchors) == (None, 0)


def test_a_wall_clock_that_keeps_moving_never_settles() -> None:
    clocks, clock = make()
    for i in range(1, 20):
        clocks.mono += 10
        clocks.offset = 100.0 * i  # a new step every 10 s: never steady for 60 s
        assert clock.time() == T0 + 10 * i
    assert clock.re_anchors == 0 and clock.doubt is not None


def test_small_jitter_within_the_tolerance_is_not_a_step() -> None:
    clocks, clock = make()
    clocks.mono += 1
    clocks.offset = 1.9
    assert clock.time() == T0 + 1 and clock.doubt is None


class SteppingClock:
    """The scheduler's Clock protocol over an AnchoredClock with a fake wall and monotonic time: sleeping advances
    both, and the wall clock goes back a day at the second sleep."""

    def __init__(self) -> None:
        self.clocks = Clocks()
        self.anchored = AnchoredClock(0.0, 2.0, self.clocks.wall, self.clocks.monotonic)
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.anchored.time()

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.clocks.mono += max(0.0, seconds)
        if len(self.sleeps) == 2:
            self.clocks.offset = -DAY_S
        await asyncio.sleep(0)


async def test_the_poller_polls_on_after_the_clock_went_back_a_day() -> None:
    clock = SteppingClock()
    polls: list[Poll] = []

    async def read() -> list:
        return []

    poller = MeterPoller("m", 1.0, read, polls.append, clock)
    task = asyncio.create_task(poller.run())
    try:
        for _ in range(1000):
            if len(polls) >= 5:
                break
            await asyncio.sleep(0)
    finally:
        poller.stopping = True
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert len(polls) >= 5
    assert clock.anchored.re_anchors == 1
    assert max(clock.sleeps) <= 1.0, "no sleep of a day after the clock went back"
