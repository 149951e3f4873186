"""Counter arithmetic: the interval delta of a cumulative register, with rollover and reset told apart."""

from __future__ import annotations

from typing import NamedTuple

from calc.schema import Flag


class CounterDelta(NamedTuple):
    delta: float  # in the counter's unit (raw counts × scale)
    flag: Flag | None


def counter_delta(previous: int, current: int, width_bits: int | None, scale: float = 1.0) -> CounterDelta:
    """Delta between two raw counter readings.

    A backward step is a rollover when the register width explains it (the counter went past its
    maximum and wrapped), otherwise a reset: the meter restarted from zero, so the energy of the
    interval is at least the new reading, which is what is counted.
    """
    if current >= previous:
        return CounterDelta((current - previous) * scale, None)
    if width_bits is not None:
        modulus = 1 << width_bits
        wrapped = current + modulus - previous
        # A wrap is plausible only when the counter was in the upper half and is now in the lower half.
        if previous >= modulus // 2 and current < modulus // 2:
            return CounterDelta(wrapped * scale, Flag.ROLLOVER)
    return CounterDelta(current * scale, Flag.RESET)
