"""Log lines that could repeat many times a second (a bad acknowledgement, a refused message): at most one per
interval, each saying how many were held back since the last one."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any


class Throttled:
    """One logger call site: the first event is logged at once, the next ones at most every `interval_s`."""

    def __init__(self, logger: logging.Logger, level: int, interval_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.level = level
        self.interval_s = interval_s
        self._clock = clock
        self._last: float | None = None
        self.held_back = 0

    def __call__(self, msg: str, *args: Any) -> None:
        now = self._clock()
        if self._last is not None and now - self._last < self.interval_s:
            self.held_back += 1
            return
        if self.held_back:
            msg += " (%d more like it in the last %.0f s)"
            args = (*args, self.held_back, now - (self._last or now))
        self.logger.log(self.level, msg, *args)
        self._last, self.held_back = now, 0
