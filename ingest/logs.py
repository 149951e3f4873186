"""Logging that says what happened without flooding: a repeated warning is written at most once per period,
with the number of times it was suppressed meanwhile."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class Throttled:
    """`warning(key, msg, *args)`: the first of a kind at once, then at most one per `every_s` (with a count)."""

    def __init__(self, logger: logging.Logger, every_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.every_s = every_s
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, key: str, msg: str, *args: object) -> bool:
        """Log unless the same kind was logged less than `every_s` ago; True when it was written."""
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.every_s:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False
        self._last[key] = now
        more = self._suppressed.pop(key, 0)
        if more:
            msg += " (and %d more like it in the last %.0f s)"
            args = (*args, more, now - (last or now))
        self.logger.warning(msg, *args)
        return True
