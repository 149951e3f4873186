"""Counter arithmetic: interval energy of cumulative registers (integer of any width, or float) with rollover,
reset, meter replacement, transient glitches, implausible jumps, stuck counters and gaps told apart (pure).

`CounterTracker.step(state, raw, ts)` returns the counter's next state and what to emit: nothing (the reading is
deferred, or ignored), or one or two `Emission`s, each a reading with the energy it carries. The rule it keeps:
per counter, counted + held energy = what the meter really advanced, less at most one interval at a genuine reset
or replacement; nothing counted twice, nothing invented, nothing dropped without a flag and a reason.

- A reading is plausible after the last good one when its forward step (across one wrap, for a register of known
  width) is within the limit for the time since the counter last moved: `max_rate_per_s` (configured) x tolerance,
  else LEARNED_FACTOR x the highest rate seen over normal intervals (once LEARN_AFTER of them are known), else no
  limit. For a register of known width a step over a quarter of its range is never plausible.
- An anomalous reading (backward step, an implausible forward step, or a wrap: a glitch to zero near the top looks
  like one) is deferred: kept in the state until the next reading says what it was (see `_resolve`).
- Known weakness: a meter with no configured limit and too little history has no rate limit, so a garbage-high
  reading of a float or 64-bit register is counted, and a replacement by a counter reading lower is taken for a
  reset (its reading counted as energy since zero). Configure `max_power_kw` or `max_rate_per_h` to close it.
- Known limits: a wrap is confirmed by the next reading, so a fault in that very reading can be misread (e.g. taken
  for a replacement: the interval's energy is lost, never doubled); a fault on a counter that has not moved
  since the last fault is judged against the baseline before both; and a reset of a counter still so low that the
  flow after the restart overtakes its old value by the next reading is taken for a transient glitch (the old
  value, under two intervals' energy, is lost, never doubled).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from calc.schema import Flag, Quality

LEARNED_FACTOR = 20.0  # a learned limit: this many times the highest rate seen over normal intervals
LEARN_AFTER = 5        # normal intervals with the counter moving before the learned limit applies
CATCH_UP_FACTOR = 2.0  # a stuck counter's move above this x its rate over the interval is a catch-up

Raw = int | float


class Kind(StrEnum):
    """What an emitted reading is."""

    FIRST = "first"              # baseline, nothing counted
    NORMAL = "normal"
    ROLLOVER = "rollover"        # counted across a wrap past the register's top
    STUCK = "stuck"              # still while its rate says energy flows; or catching up after that (counted)
    GLITCH = "glitch"            # a transient wrong reading: not counted (delta None)
    TRANSIENT = "transient"      # the reading after a glitch: counted from the last good one
    RESET = "reset"              # the meter restarted from zero: the reading counted as energy since the restart
    REPLACEMENT = "replacement"  # a new counter: this reading is its baseline, the jump is not energy
    HELD = "held"                # an implausible jump that the next reading confirmed: energy held for an engineer
    UNEXPLAINED = "unexplained"  # an anomalous reading the next one did not explain either: not counted


@dataclass(frozen=True, slots=True)
class CounterPolicy:
    """How to read one counter: register width, scale to its unit, and plausibility limits."""

    width_bits: int | None = None         # None: never wraps (float registers)
    scale: float = 1.0                    # unit per raw count, e.g. 0.01 kWh
    max_rate_per_s: float | None = None   # configured limit in the counter's unit per second
    tolerance: float = 1.5                # slack on the configured limit (meters overload briefly)
    expected_interval_s: float | None = None
    gap_factor: float = 3.0               # an interval above gap_factor x expected is flagged `gap`
    stuck_after: int = 3                  # still polls, while the rate says energy flows, before `stuck`
    unit: str = ""                        # for reasons only

    @property
    def quarter(self) -> int | None:
        return (1 << self.width_bits) >> 2 if self.width_bits is not None else None


@dataclass(frozen=True, slots=True)
class CounterState:
    """Per-counter memory between readings (the edge keeps it in its spool, with the message it goes with)."""

    last_raw: Raw | None = None     # the last good reading: the baseline
    last_ts: float | None = None    # its time, epoch seconds
    moved_ts: float | None = None   # when the counter last changed value (plausibility is judged since then)
    held_raw: Raw | None = None     # a deferred anomalous reading, awaiting the next one
    held_ts: float | None = None
    still_polls: int = 0            # polls standing still while the rate said energy flows
    still_expected: float = 0.0     # what the rate says should have accrued meanwhile, in the counter's unit
    stuck: bool = False             # flagged stuck: the next move is a catch-up
    peak_rate: float = 0.0          # highest raw counts per second seen over normal intervals
    learned: int = 0                # normal intervals with the counter moving (the learned limit's evidence)

    @property
    def seen_ts(self) -> float | None:
        """Time of the latest reading taken (good or deferred): readings not after it are ignored."""
        return self.held_ts if self.held_ts is not None else self.last_ts


@dataclass(frozen=True, slots=True)
class Emission:
    """One reading to publish: `delta` is counted energy (held when `Flag.HELD` is among the flags), None for a
    reading that carries none; `counts` is the same in raw register counts (exact for integer registers)."""

    raw: Raw
    ts: float
    kind: Kind
    counts: Raw | None
    delta: float | None
    interval_s: float | None
    flags: tuple[Flag, ...]
    quality: Quality
    reason: str | None = None


def _fmt(x: float) -> str:
    return f"{x:.10g}"


class CounterTracker:
    """Pure transition function over CounterState for one counter's policy."""

    __slots__ = ("_gap_s", "_limit_per_s", "_modulus", "policy")

    def __init__(self, policy: CounterPolicy) -> None:
        self.policy = policy
        self._modulus = 1 << policy.width_bits if policy.width_bits is not None else None
        self._gap_s = policy.gap_factor * policy.expected_interval_s if policy.expected_interval_s else None
        self._limit_per_s = (policy.max_rate_per_s * policy.tolerance / policy.scale
                             if policy.max_rate_per_s is not None else None)

    # -- plausibility ---------------------------------------------------------------------------------------
    def limit(self, state: CounterState, seconds: float) -> float | None:
        """Most raw counts plausible in `seconds`, or None when there is no limit yet."""
        if self._limit_per_s is not None:
            return self._limit_per_s * max(seconds, 0.0)
        if state.learned >= LEARN_AFTER:
            return LEARNED_FACTOR * state.peak_rate * max(seconds, 0.0)
        return None

    def _forward(self, prev: Raw, cur: Raw, state: CounterState, seconds: float) -> tuple[Raw, bool] | None:
        """Raw counts from prev to cur when plausible (directly or across one wrap), with whether it wrapped."""
        if cur >= prev:
            step: Raw = cur - prev
            wrapped = False
        elif self._modulus is not None and cur != 0:  # a zero is far likelier a glitch than a wrap to exactly 0
            step, wrapped = cur + self._modulus - prev, True
        else:
            return None
        if self._modulus is not None and step >= self._modulus >> 2:
            return None
        limit = self.limit(state, seconds)
        if limit is not None and step > limit:
            return None
        return step, wrapped

    def _gap(self, interval_s: float) -> tuple[Flag, ...]:
        return (Flag.GAP,) if self._gap_s is not None and interval_s > self._gap_s else ()

    def _counted(self, raw: Raw, ts: float, counts: Raw, interval_s: float, kind: Kind,
                 flags: tuple[Flag, ...] = (), quality: Quality = Quality.GOOD,
                 reason: str | None = None) -> Emission:
        return Emission(raw, ts, kind, counts, counts * self.policy.scale, interval_s, flags + self._gap(interval_s),
                        quality, reason)

    def _value(self, raw: Raw) -> str:
        return f"{_fmt(raw * self.policy.scale)} {self.policy.unit}".rstrip()

    # -- the step -------------------------------------------------------------------------------------------
    def step(self, state: CounterState, raw: Raw, ts: float, rate_per_s: float | None = None
             ) -> tuple[CounterState, list[Emission]]:
        """Take one reading at `ts` (epoch seconds); `rate_per_s`: what a rate gauge says accrues (counter unit
        per second), for the stuck check. A reading not after the latest one taken is ignored (the next reading
        carries its energy)."""
        last, last_ts = state.last_raw, state.last_ts
        if last is None or last_ts is None:
            return (CounterState(raw, ts, ts),
                    [Emission(raw, ts, Kind.FIRST, None, None, None, (Flag.FIRST,), Quality.GOOD)])
        seen = state.held_ts if state.held_ts is not None else last_ts
        if ts <= seen:
            return state, []
        if state.held_raw is not None:
            return self._resolve(state, raw, ts)
        moved_ts = state.moved_ts if state.moved_ts is not None else last_ts
        fwd = self._forward(last, raw, state, ts - moved_ts)
        if fwd is None or fwd[1]:
            # anomalous, or a wrap (a glitch to zero near the top looks like one): the next reading says which
            return replace(state, held_raw=raw, held_ts=ts), []
        counts = fwd[0]
        interval_s = ts - last_ts
        if counts == 0:
            return self._still(state, raw, ts, interval_s, rate_per_s)
        if state.stuck and self._catching_up(counts, state, interval_s, rate_per_s):
            # catching up: the energy accrued since the counter last moved, spread over that span
            span_s = ts - moved_ts
            return (CounterState(raw, ts, ts, peak_rate=state.peak_rate, learned=state.learned),
                    [self._counted(raw, ts, counts, span_s, Kind.STUCK, (Flag.STUCK,), Quality.UNCERTAIN,
                                   f"stuck: caught up {self._value(counts)} over {_fmt(span_s)} s since it last "
                                   "moved")])
        rate = counts / (ts - moved_ts)
        peak, learned = (rate, state.learned + 1) if rate > state.peak_rate else (state.peak_rate, state.learned + 1)
        return CounterState(raw, ts, ts, peak_rate=peak, learned=learned), [self._counted(raw, ts, counts, interval_s,
                                                                                          Kind.NORMAL)]

    def _catching_up(self, counts: Raw, state: CounterState, interval_s: float, rate_per_s: float | None) -> bool:
        """Whether a stuck counter's move carries what accrued while it stood still (spread over that span), or
        only this interval's energy (it stood still with a stale rate, e.g. the load stopped and the gauge did
        not say so): more than CATCH_UP_FACTOR x what the rate gives for this interval, or, without a rate,
        more than is plausible in this interval alone."""
        last, last_ts = state.last_raw, state.last_ts
        assert last is not None and last_ts is not None
        rate = rate_per_s
        if (rate is None or rate <= 0) and state.moved_ts is not None and last_ts > state.moved_ts:
            rate = state.still_expected / (last_ts - state.moved_ts)  # what the rate said while it stood still
        if rate is not None and rate > 0:
            return counts * self.policy.scale > CATCH_UP_FACTOR * rate * interval_s
        return self._forward(last, last + counts, state, interval_s) is None

    def _still(self, state: CounterState, raw: Raw, ts: float, interval_s: float, rate_per_s: float | None
               ) -> tuple[CounterState, list[Emission]]:
        if rate_per_s is None or rate_per_s <= 0:  # no flow (or not known this poll: what was seen stands)
            new = CounterState(raw, ts, state.moved_ts, peak_rate=state.peak_rate, learned=state.learned)
            if rate_per_s is None:
                new = replace(new, still_polls=state.still_polls, still_expected=state.still_expected,
                              stuck=state.stuck)
            return new, [self._counted(raw, ts, 0, interval_s, Kind.NORMAL)]
        still = state.still_polls + 1
        expected = state.still_expected + rate_per_s * interval_s
        p = self.policy
        resolution = abs(p.scale) if isinstance(raw, int) else max(abs(raw * p.scale) * 2.0 ** -22, 1e-3)
        stuck = still >= p.stuck_after and expected > 2 * resolution
        new = CounterState(raw, ts, state.moved_ts, None, None, still, expected, stuck, state.peak_rate, state.learned)
        if not stuck:
            return new, [self._counted(raw, ts, 0, interval_s, Kind.NORMAL)]
        return new, [self._counted(raw, ts, 0, interval_s, Kind.STUCK, (Flag.STUCK,), Quality.UNCERTAIN,
                                   f"stuck: counter still for {still} polls while its rate is above zero "
                                   f"({expected:.6g} {p.unit} expected)")]

    def _resolve(self, state: CounterState, raw: Raw, ts: float) -> tuple[CounterState, list[Emission]]:
        """A deferred reading H and the next reading X: what H was, both emitted (or H given up, X deferred)."""
        last, last_ts, held, held_ts = state.last_raw, state.last_ts, state.held_raw, state.held_ts
        assert last is not None and last_ts is not None and held is not None and held_ts is not None
        moved_ts = state.moved_ts if state.moved_ts is not None else last_ts
        after = CounterState(raw, ts, ts, peak_rate=state.peak_rate, learned=state.learned)
        h_interval, x_interval = held_ts - last_ts, ts - held_ts
        to_held = self._forward(last, held, state, held_ts - moved_ts)
        from_held = self._forward(held, raw, state, x_interval)
        if from_held is not None and from_held[0] == 0:
            # standing still on the held value confirms nothing: a glitch can repeat (a register read as zero
            # twice); wait for the counter to move on from it
            from_held = None
        if to_held is not None and from_held is not None:  # a wrap (or a move), confirmed by what followed
            return after, [self._emit_move(held, held_ts, to_held, h_interval),
                           self._emit_move(raw, ts, from_held, x_interval)]
        in_line = self._forward(last, raw, state, ts - moved_ts)
        if in_line is not None:  # H was a glitch: count X from the last good reading
            glitch = Emission(held, held_ts, Kind.GLITCH, None, None, None, (Flag.TRANSIENT,), Quality.BAD,
                              f"transient: read {self._value(held)} between {self._value(last)} and "
                              f"{self._value(raw)}; not counted")
            flags = (Flag.TRANSIENT, Flag.ROLLOVER) if in_line[1] else (Flag.TRANSIENT,)
            x = self._counted(raw, ts, in_line[0], ts - last_ts, Kind.TRANSIENT, flags, Quality.GOOD,
                              f"transient: counted from {self._value(last)}, the reading before the glitch")
            if in_line[0] == 0:
                after = replace(after, moved_ts=state.moved_ts)
            return after, [glitch, x]
        if from_held is None and held > last and raw > held and self._same_pace(last, held, raw, held_ts - moved_ts,
                                                                                 x_interval):
            # the counter runs on above its limit at the jump's pace (a meter beyond its configured power): the jump
            # is held, and X deferred in its turn, so the energy goes on being held rather than lost
            chained = CounterState(held, held_ts, held_ts, raw, ts, peak_rate=state.peak_rate, learned=state.learned)
            return chained, [self._jump(state, held, held_ts, h_interval)]
        if from_held is None:  # still unexplained: give H up (not counted), defer X; the baseline stays
            bad = Emission(held, held_ts, Kind.UNEXPLAINED, None, None, None, (), Quality.BAD,
                           f"unexplained: read {self._value(held)} after {self._value(last)}, not confirmed by "
                           "the next reading; not counted")
            return replace(state, held_raw=raw, held_ts=ts), [bad]
        x = self._emit_move(raw, ts, from_held, x_interval)
        if held < last:
            since_zero = self.limit(state, h_interval)
            if since_zero is None or held <= since_zero:  # restarted from zero: H is energy since the restart
                h = self._counted(held, held_ts, held, h_interval, Kind.RESET, (Flag.RESET,), Quality.UNCERTAIN,
                                  f"reset: counter went from {self._value(last)} to {self._value(held)}; counted "
                                  "as energy since a restart at zero")
            else:
                h = Emission(held, held_ts, Kind.REPLACEMENT, None, None, None, (Flag.REPLACEMENT,),
                             Quality.UNCERTAIN,
                             f"replacement: old counter at {self._value(last)}, new counter at {self._value(held)}; "
                             "the jump is not energy (energy since the old reading may be lost)")
        else:  # a forward jump beyond the limit, confirmed: energy nobody can vouch for, held for an engineer
            h = self._jump(state, held, held_ts, h_interval)
        return after, [h, x]

    def _same_pace(self, last: Raw, held: Raw, raw: Raw, jump_s: float, next_s: float) -> bool:
        """X goes on from H at most twice as fast as the jump to H went (and within a quarter of the range)."""
        step = raw - held
        if self._modulus is not None and step >= self._modulus >> 2:
            return False
        return jump_s > 0 and step * jump_s <= 2 * (held - last) * next_s

    def _jump(self, state: CounterState, held: Raw, held_ts: float, interval_s: float) -> Emission:
        last = state.last_raw
        assert last is not None and state.last_ts is not None
        since_s = held_ts - (state.moved_ts if state.moved_ts is not None else state.last_ts)
        limit = self.limit(state, since_s)
        why = f"limit {self._value(limit)} in {_fmt(since_s)} s" if limit is not None else \
            "over a quarter of the register's range"
        return self._counted(held, held_ts, held - last, interval_s, Kind.HELD, (Flag.SPIKE, Flag.HELD),
                             Quality.UNCERTAIN,
                             f"spike: counter jumped {self._value(held - last)} ({why}); held until an engineer "
                             "decides (real energy above the limit, or a counter offset or replacement upward)")

    def _emit_move(self, raw: Raw, ts: float, fwd: tuple[Raw, bool], interval_s: float) -> Emission:
        if fwd[1]:
            return self._counted(raw, ts, fwd[0], interval_s, Kind.ROLLOVER, (Flag.ROLLOVER,), Quality.GOOD,
                                 f"rollover at {self.policy.width_bits} bits")
        return self._counted(raw, ts, fwd[0], interval_s, Kind.NORMAL)

    def run(self, readings: list[tuple[Raw, float]], state: CounterState | None = None,
            rate_per_s: float | None = None) -> tuple[CounterState, list[Emission]]:
        """Fold a sequence of (raw, epoch seconds) readings; all emissions in order."""
        current = state or CounterState()
        out: list[Emission] = []
        for raw, ts in readings:
            current, emitted = self.step(current, raw, ts, rate_per_s)
            out += emitted
        return current, out
