"""link.logs.Throttled (one helper for the edge and ingest) with a clock the test moves, and link.backoff."""

from __future__ import annotations

import logging
import random

import pytest

from link.backoff import backoff_delay
from link.logs import Throttled


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_one_call_site_logs_at_most_once_per_interval_with_the_count(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    throttled = Throttled(logging.getLogger("t.one"), logging.ERROR, interval_s=60.0, clock=clock)
    with caplog.at_level(logging.DEBUG, "t.one"):
        assert throttled("refused %d", 1)
        clock.now += 10
        assert not throttled("refused %d", 2) and not throttled("refused %d", 3)
        assert throttled.held_back() == 2
        clock.now += 50
        assert throttled("refused %d", 4)
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.ERROR, "refused 1"), (logging.ERROR, "refused 4 (2 more like it in the last 60 s)")]
    assert throttled.held_back() == 0


def test_kinds_are_throttled_apart_and_warning_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    throttled = Throttled(logging.getLogger("t.keys"), logging.INFO, interval_s=10.0, clock=clock)
    with caplog.at_level(logging.DEBUG, "t.keys"):
        assert throttled.warning("a", "buffer full")
        assert throttled.warning("b", "store down")
        assert not throttled.warning("a", "buffer full")
        assert throttled("other", key="c")
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, "buffer full"), (logging.WARNING, "store down"), (logging.INFO, "other")]
    assert (throttled.held_back("a"), throttled.held_back("b")) == (1, 0)


@pytest.mark.parametrize("seed", range(20))
def test_backoff_doubles_with_jitter_in_the_upper_half_and_is_capped(seed: int) -> None:
    rng = random.Random(seed)
    for attempt in range(12):
        step = min(30.0, 0.5 * 2 ** attempt)
        assert step / 2 <= backoff_delay(attempt, 0.5, 30.0, rng) <= step
