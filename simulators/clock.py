"""Simulated time: start + acceleration × real time elapsed while running; pausing freezes it."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta


class SimClock:
    """A clock that runs `acceleration` simulated seconds per real second and can be paused.

    `monotonic` is injectable so unit tests can drive the clock without sleeping.
    """

    def __init__(self, start: datetime, acceleration: float, *, paused: bool = False,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if start.utcoffset() is None:
            raise ValueError("the simulated start time must be timezone-aware")
        self.start = start
        self.acceleration = acceleration
        self._monotonic = monotonic
        self._real_before_s = 0.0  # real seconds run before the current running spell
        self._since: float | None = None if paused else monotonic()

    @property
    def paused(self) -> bool:
        return self._since is None

    def elapsed_s(self) -> float:
        """Simulated seconds since start."""
        real = self._real_before_s
        if self._since is not None:
            real += self._monotonic() - self._since
        return real * self.acceleration

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.elapsed_s())

    def pause(self) -> float:
        """Freeze simulated time; returns the simulated seconds elapsed at the pause."""
        if self._since is not None:
            self._real_before_s += self._monotonic() - self._since
            self._since = None
        return self.elapsed_s()

    def resume(self) -> None:
        if self._since is None:
            self._since = self._monotonic()
