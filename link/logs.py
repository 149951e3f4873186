"""Log lines that could repeat many times a second (a refused message, a bad acknowledgement, a full buffer): at
most one per interval and kind, each saying how many like it were held back since the last one written."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class Throttled:
    """`throttled(msg, *args)` for one call site, or `throttled(msg, *args, key=...)` / `warning(key, msg, *args)`
    for several kinds sharing one helper: the first of a kind is logged at once, the next ones at most every
    `interval_s` (with the count of those held back)."""

    def __init__(self, logger: logging.Logger, level: int = logging.WARNING, interval_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.level = level
        self.interval_s = interval_s
        self._clock = clock
        self._last: dict[str, float] = {}
        self._held_back: dict[str, int] = {}

    def __call__(self, msg: str, *args: object, key: str = "") -> bool:
        """Log at `level` unless the same kind was logged less than `interval_s` ago; True when written."""
        return self._log(self.level, key, msg, args)

    def warning(self, key: str, msg: str, *args: object) -> bool:
        """Log a warning of kind `key` (whatever `level` is), throttled as above; True when written."""
        return self._log(logging.WARNING, key, msg, args)

    def held_back(self, key: str = "") -> int:
        """How many of kind `key` were not written since the last one that was."""
        return self._held_back.get(key, 0)

    def _log(self, level: int, key: str, msg: str, args: tuple[object, ...]) -> bool:
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval_s:
            self._held_back[key] = self._held_back.get(key, 0) + 1
            return False
        self._last[key] = now
        more = self._held_back.pop(key, 0)
        if more:
            msg += " (%d more like it in the last %.0f s)"
            args = (*args, more, now - (last if last is not None else now))
        self.logger.log(level, msg, *args)
        return True
