"""Spread the energy of one interval linearly over time, cut at every UTC minute (or quarter hour) boundary.

Every time zone's local period boundaries (days, months, years; all UTC offsets in use are whole quarter
hours) fall on UTC minute boundaries, so the shares of a gap can be counted in the periods they belong to.
The shares sum exactly to the energy, in floating point, whatever order they are added in: each is a whole
multiple of the energy's last binary digit (its ulp), so every partial sum is exactly representable. The
same input always gives the same shares, so a replayed gap is an exact duplicate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

MINUTE_US = 60_000_000
QUARTER_US = 900_000_000
DEFAULT_MAX_SEGMENTS = 7 * 24 * 60  # a week of minutes; longer intervals are cut at quarter hours


@dataclass(frozen=True, slots=True)
class Segments:
    """An interval cut into segments: each segment's end (µs since the epoch, UTC) and length (s)."""

    end_us: npt.NDArray[np.int64]
    length_s: npt.NDArray[np.float64]
    step_us: int  # the boundaries it was cut at: a minute, a quarter hour, or a whole multiple of a quarter hour


def cut(start_us: int, end_us: int, max_segments: int = DEFAULT_MAX_SEGMENTS) -> Segments:
    """The segments of (start_us, end_us]: cut at every minute boundary strictly inside; above `max_segments`
    at quarter hours; above that many quarter hours at the smallest whole multiple of a quarter hour that
    fits (then only UTC-offset-free boundaries that are multiples of it stay exact). The last segment ends at
    `end_us`. An empty or backward interval is one segment of length 0."""
    if max_segments < 1:
        raise ValueError(f"max_segments must be at least 1, got {max_segments}")
    if end_us <= start_us:
        return Segments(np.asarray([end_us], dtype=np.int64), np.zeros(1), MINUTE_US)
    step = MINUTE_US
    if _count(start_us, end_us, step) > max_segments:
        step = QUARTER_US
        need = _count(start_us, end_us, step)
        if need > max_segments:
            step = QUARTER_US * -(-need // max_segments)
            while _count(start_us, end_us, step) > max_segments:  # the ceiling above is close; make it certain
                step += QUARTER_US
    first = start_us - start_us % step + step  # the first boundary strictly after the start
    if first - start_us < 2:
        first += step  # a first segment of 1 µs joins the next: each segment has a time inside it (`stamps`)
    inner = np.arange(first, end_us, step, dtype=np.int64)
    ends = np.append(inner, np.int64(end_us))
    starts = np.empty_like(ends)
    starts[0] = start_us
    starts[1:] = ends[:-1]
    return Segments(ends, (ends - starts) / 1e6, step)


def _count(start_us: int, end_us: int, step_us: int) -> int:
    """Segments of (start, end] cut at multiples of step_us strictly inside it."""
    first = start_us - start_us % step_us + step_us
    return 1 + max(0, -(-(end_us - first) // step_us))


def shares(amount: float, weights_us: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """`amount` split in proportion to the non-negative integer weights (segment lengths in µs): each share
    is a whole multiple of amount's ulp, rounded down, and the rounding remainder goes to the last share, so
    the shares sum exactly to `amount` in any order. A zero total weight puts everything in the last share."""
    n = len(weights_us)
    if n == 0:
        raise ValueError("no segments to share among")
    out = np.zeros(n, dtype=np.float64)
    if amount == 0.0 or not math.isfinite(amount):
        out[-1] = amount
        return out
    total = int(weights_us.sum())
    if total <= 0 or n == 1:
        out[-1] = amount
        return out
    exponent = math.frexp(amount)[1]
    quantum = max(exponent - 53, -1074)  # the ulp of amount (subnormals: the smallest float)
    units = int(math.ldexp(abs(amount), -quantum))  # |amount| = units * 2**quantum, exactly; units < 2**53
    # floor(units * w / total) with Python integers: exact for any weights (no float or int64 overflow)
    counts = [units * int(w) // total for w in weights_us[:-1].tolist()]
    counts.append(units - sum(counts))
    sign = -1.0 if amount < 0 else 1.0
    out[:] = np.ldexp(np.asarray(counts, dtype=np.float64), quantum) * sign
    return out


@dataclass(frozen=True, slots=True)
class Apportioned:
    """One interval's amounts spread over its segments (arrays of the same length, the last one ending at
    the interval's end)."""

    end_us: npt.NDArray[np.int64]
    length_s: npt.NDArray[np.float64]
    stamp_us: npt.NDArray[np.int64]  # where each share is counted: its end less 1 µs, the last at its end
    amounts: tuple[npt.NDArray[np.float64], ...]  # one array of shares per amount given


def apportion(end_us: int, interval_s: float, amounts: tuple[float, ...], not_before_us: int | None = None,
              max_segments: int = DEFAULT_MAX_SEGMENTS) -> Apportioned:
    """Spread each of `amounts` (e.g. a delta in the meter's unit and its energy in the factor's unit) linearly
    over the interval (end - interval_s, end], cut at minute boundaries (see `cut`); each array of shares sums
    exactly to its amount. `not_before_us` clamps the interval's start (e.g. at the plant's start).

    A period total counts what is stamped in it (start <= ts < end), so each share but the last is stamped
    1 µs before its segment's end, inside the minute its energy belongs to (a share ending at midnight is
    yesterday's); the last keeps the interval's own end (the sample's time, as for any sample)."""
    if not math.isfinite(interval_s) or interval_s < 0:
        raise ValueError(f"interval_s must be finite and non-negative, got {interval_s}")
    start_us = end_us - round(interval_s * 1_000_000)
    if not_before_us is not None and start_us < not_before_us:
        start_us = min(not_before_us, end_us)
    segments = cut(start_us, end_us, max_segments)
    starts = np.empty_like(segments.end_us)
    starts[0] = start_us
    starts[1:] = segments.end_us[:-1]
    weights = segments.end_us - starts
    stamps = segments.end_us - 1
    stamps[-1] = end_us
    return Apportioned(segments.end_us, segments.length_s, stamps, tuple(shares(a, weights) for a in amounts))
