"""Counter arithmetic: interval deltas of cumulative registers of any width and scale, with rollover, reset,
meter replacement, transient zeros and backward steps, spikes and gaps told apart (pure state machine).

`counter_delta` is the stateless two-reading rule. `CounterTracker.step` is the full rule: a reading that
goes backward without a plausible rollover, or forward faster than the meter's maximum power allows, is
held (delta 0) until the next reading says what it was:
- the counter came back in line with the last good reading -> transient glitch: count from the last good;
- the next reading continues from the held one -> reset (held value plausible as energy since a restart
  at zero: counted) or meter replacement (held value is the new meter's baseline: not counted, reported).
Nothing is counted twice and nothing is dropped silently: each step says what it did.
Known limit: one pending reading is kept, so a glitch arriving while a wrap awaits confirmation (within one
reading of the wrap) can be mistaken for the real value; anomalies further apart are all resolved.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
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


class Event(StrEnum):
    """What a tracker step did with a reading."""

    FIRST = "first"              # baseline, nothing counted
    NORMAL = "normal"
    ROLLOVER = "rollover"        # wrapped past the register's maximum
    HELD = "held"                # backward step or wrap: not counted until the next reading explains it
    SPIKE = "spike"              # forward jump beyond the meter's maximum power: quarantined, held likewise
    TRANSIENT = "transient"      # the held reading was a glitch; counted from the last good reading
    RESET = "reset"              # the meter restarted from zero: the held reading and what followed counted
    REPLACEMENT = "replacement"  # a new meter: its first reading is a baseline (reported in `uncounted`)
    CLOCK = "clock"              # timestamp not after the last reading: ignored


_FLAGS: dict[Event, tuple[Flag, ...]] = {
    Event.FIRST: (Flag.FIRST,), Event.NORMAL: (), Event.ROLLOVER: (Flag.ROLLOVER,), Event.HELD: (),
    Event.SPIKE: (Flag.SPIKE,),
    Event.TRANSIENT: (), Event.RESET: (Flag.RESET,), Event.REPLACEMENT: (Flag.RESET,), Event.CLOCK: (Flag.CLOCK,),
}


@dataclass(frozen=True, slots=True)
class CounterPolicy:
    """How to read one counter: register width, scale to the unit, and plausibility limits."""

    width_bits: int | None = None        # None: never wraps (float registers, 64-bit)
    scale: float = 1.0                   # unit per raw count, e.g. 0.01 kWh
    max_rate_per_s: float | None = None  # max_power_kw / 3600 for kWh counters: spike limit
    tolerance: float = 1.5               # slack on the rate limit (meters overload briefly)
    expected_interval_s: float | None = None
    gap_factor: float = 3.0              # an interval above gap_factor × expected is reported as a gap

    def limit(self, seconds: float) -> float | None:
        """Most raw counts plausible in `seconds`, or None without a rate limit."""
        if self.max_rate_per_s is None:
            return None
        return self.max_rate_per_s * self.tolerance * max(seconds, 0.0) / self.scale


@dataclass(frozen=True, slots=True)
class CounterState:
    """Per-counter memory between readings (kept by the edge agent, on disk)."""

    last_raw: int | None = None
    last_ts: float | None = None      # epoch seconds of the last good reading
    held_raw: int | None = None
    held_ts: float | None = None
    seen_ts: float | None = None      # epoch seconds of the latest reading of any kind


@dataclass(frozen=True, slots=True)
class CounterStep:
    """The outcome of one reading."""

    delta: float                  # counted in this step, in the counter's unit
    event: Event
    interval_s: float | None      # since the previous reading
    gap_s: float | None = None    # set when the interval is a gap
    uncounted: float = 0.0        # a replaced meter's baseline, reported so nothing vanishes silently

    @property
    def flags(self) -> tuple[Flag, ...]:
        return _FLAGS[self.event] + ((Flag.GAP,) if self.gap_s is not None else ())


def _forward(prev: int, cur: int, policy: CounterPolicy, seconds: float) -> tuple[int, bool] | None:
    """Raw counts from prev to cur when plausible (directly or across one wrap), with whether it wrapped."""
    limit = policy.limit(seconds)
    if cur >= prev:
        step = cur - prev
        return (step, False) if limit is None or step <= limit else None
    if policy.width_bits is None:
        return None
    modulus = 1 << policy.width_bits
    wrapped = cur + modulus - prev
    if limit is not None:
        return (wrapped, True) if wrapped <= limit else None
    # Without a rate limit, a wrap is believed only when its forward distance is under a quarter of the range.
    return (wrapped, True) if wrapped < modulus // 4 else None


class CounterTracker:
    """Pure transition function over CounterState; `step` returns the new state and what was counted."""

    def __init__(self, policy: CounterPolicy) -> None:
        self.policy = policy

    def step(self, state: CounterState, raw: int, ts: float) -> tuple[CounterState, CounterStep]:
        p = self.policy
        if state.seen_ts is not None and ts <= state.seen_ts:
            return state, CounterStep(0.0, Event.CLOCK, None)
        if state.last_raw is None or state.last_ts is None:
            return CounterState(raw, ts, None, None, ts), CounterStep(0.0, Event.FIRST, None)
        interval = ts - state.seen_ts if state.seen_ts is not None else ts - state.last_ts
        gap = interval if p.expected_interval_s and interval > p.gap_factor * p.expected_interval_s else None
        good = CounterState(raw, ts, None, None, ts)
        if state.held_raw is None:
            fwd = _forward(state.last_raw, raw, p, ts - state.last_ts)
            if fwd is not None and not fwd[1]:
                return good, CounterStep(fwd[0] * p.scale, Event.NORMAL, interval, gap)
            # A wrap is confirmed by the next reading too: a glitch to zero near the top looks the same.
            event = Event.SPIKE if raw > state.last_raw else Event.HELD
            held = replace(state, held_raw=raw, held_ts=ts, seen_ts=ts)
            return held, CounterStep(0.0, event, interval, gap)
        assert state.held_ts is not None
        back = _forward(state.last_raw, raw, p, ts - state.last_ts)
        if back is not None:  # in line with the last good reading: count from it (across a wrap if need be)
            return good, CounterStep(back[0] * p.scale, Event.ROLLOVER if back[1] else Event.TRANSIENT, interval,
                                     gap)
        on = _forward(state.held_raw, raw, p, ts - state.held_ts)
        if on is None:  # still unexplained: hold the newest reading instead
            event = Event.SPIKE if raw > state.last_raw else Event.HELD
            return replace(state, held_raw=raw, held_ts=ts, seen_ts=ts), CounterStep(0.0, event, interval, gap)
        since_restart = p.limit(state.held_ts - state.last_ts)
        if state.held_raw < state.last_raw and (since_restart is None or state.held_raw <= since_restart):
            # restarted from zero: the held value is energy since the restart, then what followed
            return good, CounterStep((state.held_raw + on[0]) * p.scale, Event.RESET, interval, gap)
        return good, CounterStep(on[0] * p.scale, Event.REPLACEMENT, interval, gap,
                                 uncounted=state.held_raw * p.scale)

    def run(self, readings: list[tuple[int, float]], state: CounterState | None = None
            ) -> tuple[CounterState, list[CounterStep]]:
        """Fold a sequence of (raw, epoch seconds) readings."""
        current = state or CounterState()
        steps: list[CounterStep] = []
        for raw, ts in readings:
            current, out = self.step(current, raw, ts)
            steps.append(out)
        return current, steps
