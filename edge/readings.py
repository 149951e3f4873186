"""Turns one poll of a meter into samples: counter energy by calc.counters' one algorithm, quality, reasons, clock
flags (pure).

The tracker never mutates its state: `track` returns the samples and the meter's next state, and the caller
adopts that state only once the samples are safely spooled. A reading that is not kept therefore leaves the
baseline where it was, and its energy arrives with the next reading that is kept. An anomalous counter reading is
deferred (kept in the state, which the spool stores) and emitted with the next reading, once it says what it was.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec
from msgspec import structs

from calc import counters
from calc.reading_codec import EdgeSample
from calc.schema import Flag, Quality
from calc.units import UnitError, conversion_factor
from edge.drivers import PointValue
from edge.points import Point, scaled

SPIKE_MARGIN = 1.5  # slack on a configured limit: a delta implying more than this x max power is implausible
_WORST = {Quality.GOOD: 0, Quality.UNCERTAIN: 1, Quality.BAD: 2}


class CounterState(msgspec.Struct, frozen=True, gc=False):
    """One counter's memory: the baseline (the last good reading) and the tracker's full state (deferred reading,
    learned peak rate, when it last moved, stuck count). `track` None: a baseline from a spool of an older agent."""

    raw: int | float
    ts: datetime
    track: counters.CounterState | None = None

    def tracked(self) -> counters.CounterState:
        if self.track is not None:
            return self.track
        at = self.ts.timestamp()
        return counters.CounterState(self.raw, at, at)


MeterState = dict[str, CounterState]  # quantity -> state


class Poll(msgspec.Struct, frozen=True, gc=False):
    """One poll of one meter: when, what the driver got, and why its time is in doubt (edge.clock), if it is."""

    meter_id: str
    ts: datetime
    values: tuple[PointValue, ...]
    clock: str | None = None


def _rate_factor(counter: Point, gauge: Point) -> float | None:
    """Multiplier turning gauge × hours into counter units, when the gauge is the counter's rate."""
    if gauge.kind != "gauge":
        return None
    try:
        return conversion_factor(f"({gauge.unit}) * hour", counter.unit)
    except UnitError:
        return None


def _when(at_s: float, poll_ts: datetime, poll_s: float) -> datetime:
    """The datetime of an emitted reading: the poll's own, or a deferred reading's (exact to the microsecond)."""
    return poll_ts if at_s == poll_s else datetime.fromtimestamp(at_s, UTC)


@dataclass(frozen=True, slots=True)
class _Spec:
    """What the tracker needs of a point, looked up once (a pydantic model's properties cost per call)."""

    point: Point
    quantity: str
    unit: str
    scale: float
    counter: bool
    not_available: int | None
    min: float | None
    max: float | None
    width_bits: int | None
    tracker: counters.CounterTracker | None  # counters only

    @classmethod
    def of(cls, point: Point, meter: MeterTracker) -> _Spec:
        tracker = None
        if point.kind == "counter":
            tracker = counters.CounterTracker(counters.CounterPolicy(
                width_bits=point.width_bits, scale=point.scale, max_rate_per_s=meter.max_rate_per_s(point.unit),
                tolerance=SPIKE_MARGIN, expected_interval_s=meter.interval_s, gap_factor=meter.gap_factor,
                stuck_after=meter.stuck_after, unit=point.unit))
        return cls(point, point.quantity, point.unit, point.scale, point.kind == "counter", point.not_available,
                   point.min, point.max, point.width_bits, tracker)

    def problem(self, raw: int | float, value: float) -> str | None:
        """Why the value is unusable (the device's "not available" pattern, out of range), else None."""
        unavailable = self.point.unavailable(raw)
        if unavailable is not None:
            return unavailable
        out_of_range = self.point.out_of_range(value)
        return f"out of range: {out_of_range}" if out_of_range is not None else None


class MeterTracker:
    """Per meter: the counter arithmetic (calc.counters) and quality rules; one tracker per meter, fed in poll order.

    A counter's plausibility limit: `max_power_kw` for an energy counter (via its unit), else `max_rate_per_h` in
    the counter's unit per hour, else one learned from the meter's history (calc.counters)."""

    def __init__(self, meter_id: str, stuck_after: int = 3, max_power_kw: float | None = None,
                 max_clock_skew_s: float = 300.0, max_rate_per_h: float | None = None,
                 interval_s: float | None = None, gap_factor: float = 3.0, timed_gauges: bool = False) -> None:
        self.meter_id = meter_id
        self.stuck_after = stuck_after
        self.max_power_kw = max_power_kw
        self.max_clock_skew_s = max_clock_skew_s
        self.max_rate_per_h = max_rate_per_h
        self.interval_s = interval_s
        self.gap_factor = gap_factor
        # a variable's gauges (outdoor temperature) carry interval_s: the seconds since the gauge's previous sample
        # (the poll interval for the first after a start), so that ingest can average them over time
        self.timed_gauges = timed_gauges
        self._gauge_ts: dict[str, datetime] = {}
        self._rates: dict[str, tuple[Point, float] | None] = {}
        self._specs: dict[int, _Spec] = {}

    def max_rate_per_s(self, unit: str) -> float | None:
        """The configured limit of a counter in `unit`, per second, or None (then it is learned)."""
        if self.max_power_kw is not None:
            try:
                return self.max_power_kw / 3600.0 * conversion_factor("kWh", unit)
            except UnitError:
                pass  # not an energy counter: max_power_kw says nothing of it
        return self.max_rate_per_h / 3600.0 if self.max_rate_per_h is not None else None

    def _spec(self, point: Point) -> _Spec:
        spec = self._specs.get(id(point))
        if spec is None or spec.point is not point:  # an id can be reused once a point is gone
            spec = self._specs[id(point)] = _Spec.of(point, self)
        return spec

    def _rate_of(self, counter: Point, values: tuple[PointValue, ...]) -> float | None:
        """The counter's current rate (counter units per hour) from a gauge in the same poll, if any."""
        if counter.quantity not in self._rates:
            found = None
            for pv in values:
                factor = _rate_factor(counter, pv.point)
                if factor is not None:
                    found = (pv.point, factor)
                    break
            self._rates[counter.quantity] = found
        found = self._rates[counter.quantity]
        if found is None:
            return None
        gauge, factor = found
        for pv in values:
            if pv.point is gauge and pv.raw is not None and pv.quality == Quality.GOOD:
                rate = scaled(gauge, pv.raw) * factor
                # an export counter advances while power flows out (negative import power)
                return -rate if "export" in counter.quantity else rate
        return None

    def track(self, poll: Poll, state: MeterState) -> tuple[list[EdgeSample], MeterState]:
        samples: list[EdgeSample] = []
        new_state = dict(state)
        for pv in poll.values:
            spec = self._spec(pv.point)
            ts, skew = poll.ts, poll.clock
            if pv.source_ts is not None:
                off_s = (pv.source_ts - poll.ts).total_seconds()
                if abs(off_s) <= self.max_clock_skew_s:
                    ts = pv.source_ts
                else:  # the device's clock is not to be trusted: keep the agent's time, say so
                    skew = "; ".join(r for r in (skew, f"clock: source time {off_s:+.0f} s off the agent's; agent "
                                                 "time used") if r)
            if spec.tracker is None:
                out = [self._gauge(spec, pv, ts)]
                if self.timed_gauges:
                    out = [self._timed(out[0])]
            else:
                out, counter_state = self._counter(spec, spec.tracker, pv, ts, state.get(spec.quantity),
                                                   poll.values)
                if counter_state is not None:
                    new_state[spec.quantity] = counter_state
            if skew is not None:
                out = [structs.replace(
                    sample, flags=(*sample.flags, Flag.CLOCK),
                    quality=Quality.BAD if sample.quality == Quality.BAD else Quality.UNCERTAIN,
                    reason="; ".join(r for r in (sample.reason, skew) if r)[:200]) for sample in out]
            samples += out
        return samples, new_state

    def _timed(self, sample: EdgeSample) -> EdgeSample:
        """A variable's gauge sample with the time it stands for (see `timed_gauges`); a bad one stands for none."""
        if sample.quality == Quality.BAD:
            return sample
        prev = self._gauge_ts.get(sample.quantity)
        self._gauge_ts[sample.quantity] = sample.ts
        seconds = (sample.ts - prev).total_seconds() if prev is not None else self.interval_s
        if seconds is None or seconds <= 0:
            return sample
        return structs.replace(sample, interval_s=seconds)

    @staticmethod
    def _gauge(spec: _Spec, pv: PointValue, ts: datetime) -> EdgeSample:
        raw = pv.raw
        if raw is None:
            return EdgeSample(ts, spec.quantity, 0.0, spec.unit, None, None, Quality.BAD, pv.reason or "no value")
        value = float(raw) * spec.scale
        problem = spec.problem(raw, value)
        if problem is not None:
            return EdgeSample(ts, spec.quantity, value if math.isfinite(value) else 0.0, spec.unit, None, None,
                              Quality.BAD, problem)
        return EdgeSample(ts, spec.quantity, value, spec.unit, None, None, pv.quality, pv.reason)

    def _counter(self, spec: _Spec, tracker: counters.CounterTracker, pv: PointValue, ts: datetime,
                 prev: CounterState | None, values: tuple[PointValue, ...]
                 ) -> tuple[list[EdgeSample], CounterState | None]:
        quantity, unit, raw = spec.quantity, spec.unit, pv.raw
        if raw is None or pv.quality == Quality.BAD:
            last_value = float(prev.raw) * spec.scale if prev is not None else 0.0
            return [EdgeSample(ts, quantity, last_value, unit, None, None, Quality.BAD, pv.reason or "no value")], None
        value = float(raw) * spec.scale
        problem = spec.problem(raw, value)
        if problem is not None:
            last_value = float(prev.raw) * spec.scale if prev is not None else 0.0
            return [EdgeSample(ts, quantity, last_value, unit, None, None, Quality.BAD, problem)], None
        track = prev.tracked() if prev is not None else counters.CounterState()
        rate_per_s = None
        if track.held_raw is None and raw == track.last_raw:  # standing still: is energy flowing? (stuck check)
            rate_per_h = self._rate_of(spec.point, values)
            rate_per_s = rate_per_h / 3600.0 if rate_per_h is not None else None
        at_s = ts.timestamp()
        track, emitted = tracker.step(track, raw, at_s, rate_per_s)
        if track.last_raw is None or track.last_ts is None:  # unreachable: a step always leaves a baseline
            raise AssertionError("counter state without a baseline")
        if track.last_ts == at_s or prev is None:  # the baseline moved to this reading
            baseline = CounterState(track.last_raw, _when(track.last_ts, ts, at_s), track)
        else:  # deferred or ignored: the baseline stays
            baseline = CounterState(prev.raw, prev.ts, track)
        samples = []
        for e in emitted:
            if e.kind is counters.Kind.NORMAL and e.ts == at_s and not pv.reason:
                # the common case: the counter moved, within reason; nothing to flag or explain
                samples.append(EdgeSample(ts, quantity, value, unit, e.delta, e.interval_s, pv.quality, None,
                                          e.flags))
                continue
            quality = e.quality if _WORST[e.quality] >= _WORST[pv.quality] else pv.quality
            reasons = "; ".join(r for r in (pv.reason if e.ts == at_s else None, e.reason) if r) or None
            samples.append(EdgeSample(_when(e.ts, ts, at_s), quantity, float(e.raw) * spec.scale, unit, e.delta,
                                      e.interval_s, quality, reasons[:200] if reasons else None, e.flags))
        return samples, baseline
