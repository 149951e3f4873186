"""Turns one poll of a meter into samples: counter deltas, quality and reasons, stuck and clock checks (pure).

The tracker never mutates its state: `track` returns the samples and the meter's next state, and the
caller adopts that state only once the samples are safely spooled. A reading that is not kept therefore
leaves the baseline where it was, and its energy arrives with the next reading that is kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import msgspec
from msgspec import structs

from calc.counters import counter_delta
from calc.schema import Flag, Quality
from calc.units import UnitError, conversion_factor
from edge.drivers import PointValue
from edge.points import Point, scaled
from edge.wire import EdgeSample

SPIKE_MARGIN = 1.5  # a delta implying more than this × max power is flagged as a spike


class CounterState(msgspec.Struct, frozen=True, gc=False):
    """The last good reading of one counter, and how long it has stood still while power flowed."""

    raw: int | float
    ts: datetime
    still_polls: int = 0
    still_expected: float = 0.0  # counter units the rate points say should have accrued meanwhile


MeterState = dict[str, CounterState]  # quantity -> state


class Poll(msgspec.Struct, frozen=True, gc=False):
    """One poll of one meter: when, and what the driver got."""

    meter_id: str
    ts: datetime
    values: tuple[PointValue, ...]


def _rate_factor(counter: Point, gauge: Point) -> float | None:
    """Multiplier turning gauge × hours into counter units, when the gauge is the counter's rate."""
    if gauge.kind != "gauge":
        return None
    try:
        return conversion_factor(f"({gauge.unit}) * hour", counter.unit)
    except UnitError:
        return None


def _resolution(spec: _Spec, value: float) -> float:
    if spec.integer_register:
        return abs(spec.scale)
    return max(abs(value) * 2.0 ** -22, 1e-3)


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
    integer_register: bool  # a Modbus integer: its resolution is one step of the scale
    to_kwh: float | None  # unit -> kWh, for the spike check (None: not an energy)

    @classmethod
    def of(cls, point: Point) -> _Spec:
        try:
            to_kwh: float | None = conversion_factor(point.unit, "kWh")
        except UnitError:
            to_kwh = None
        return cls(point, point.quantity, point.unit, point.scale, point.kind == "counter", point.not_available,
                   point.min, point.max, point.width_bits, point.is_integer and point.node is None, to_kwh)

    def problem(self, raw: int | float, value: float) -> str | None:
        """Why the value is unusable (the device's "not available" pattern, out of range), else None."""
        unavailable = self.point.unavailable(raw)
        if unavailable is not None:
            return unavailable
        out_of_range = self.point.out_of_range(value)
        return f"out of range: {out_of_range}" if out_of_range is not None else None


class MeterTracker:
    """Per meter: the counter arithmetic and quality rules; one tracker per meter, fed in poll order."""

    def __init__(self, meter_id: str, stuck_after: int = 3, max_power_kw: float | None = None,
                 max_clock_skew_s: float = 300.0) -> None:
        self.meter_id = meter_id
        self.stuck_after = stuck_after
        self.max_power_kw = max_power_kw
        self.max_clock_skew_s = max_clock_skew_s
        self._rates: dict[str, tuple[Point, float] | None] = {}
        self._specs: dict[int, _Spec] = {}

    def _spec(self, point: Point) -> _Spec:
        spec = self._specs.get(id(point))
        if spec is None or spec.point is not point:  # an id can be reused once a point is gone
            spec = self._specs[id(point)] = _Spec.of(point)
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
            ts, skew = poll.ts, None
            if pv.source_ts is not None:
                off_s = (pv.source_ts - poll.ts).total_seconds()
                if abs(off_s) <= self.max_clock_skew_s:
                    ts = pv.source_ts
                else:  # the device's clock is not to be trusted: keep the agent's time, say so
                    skew = f"clock: source time {off_s:+.0f} s off the agent's; agent time used"
            if not spec.counter:
                sample, counter_state = self._gauge(spec, pv, ts), None
            else:
                sample, counter_state = self._counter(spec, pv, ts, state.get(spec.quantity), poll.values)
            if skew is not None:
                sample = structs.replace(
                    sample, flags=(*sample.flags, Flag.CLOCK),
                    quality=Quality.BAD if sample.quality == Quality.BAD else Quality.UNCERTAIN,
                    reason="; ".join(r for r in (sample.reason, skew) if r)[:200])
            samples.append(sample)
            if counter_state is not None:
                new_state[spec.quantity] = counter_state
        return samples, new_state

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

    def _counter(self, spec: _Spec, pv: PointValue, ts: datetime, prev: CounterState | None,
                 values: tuple[PointValue, ...]) -> tuple[EdgeSample, CounterState | None]:
        quantity, unit, raw = spec.quantity, spec.unit, pv.raw
        last_value = float(prev.raw) * spec.scale if prev is not None else 0.0
        if raw is None or pv.quality == Quality.BAD:
            return EdgeSample(ts, quantity, last_value, unit, None, None, Quality.BAD, pv.reason or "no value"), None
        value = float(raw) * spec.scale
        problem = spec.problem(raw, value)
        if problem is not None:
            return EdgeSample(ts, quantity, last_value, unit, None, None, Quality.BAD, problem), None
        if prev is None:
            return (EdgeSample(ts, quantity, value, unit, None, None, pv.quality, pv.reason, (Flag.FIRST,)),
                    CounterState(raw, ts))
        interval_s = (ts - prev.ts).total_seconds()
        if interval_s <= 0:
            # the clock went back (or the device repeated a timestamp): keep the baseline, say so
            return EdgeSample(ts, quantity, value, unit, None, None, Quality.UNCERTAIN,
                              f"clock: {interval_s:.3f} s since the previous reading", (Flag.CLOCK,)), None
        flag: Flag | None
        if isinstance(raw, int) and isinstance(prev.raw, int):
            delta, flag = counter_delta(prev.raw, raw, spec.width_bits, spec.scale)
        elif raw >= prev.raw:
            delta, flag = (float(raw) - float(prev.raw)) * spec.scale, None
        else:
            delta, flag = float(raw) * spec.scale, Flag.RESET
        quality = pv.quality
        if flag is None and delta > 0 and not pv.reason and (
                self.max_power_kw is None or spec.to_kwh is None
                or delta * spec.to_kwh / (interval_s / 3600.0) <= self.max_power_kw * SPIKE_MARGIN):
            # the common case: the counter moved, within reason; nothing to flag or explain
            return EdgeSample(ts, quantity, value, unit, delta, interval_s, quality), CounterState(raw, ts)
        flags: list[Flag] = [flag] if flag is not None else []
        reasons = [pv.reason] if pv.reason else []
        if flag is Flag.RESET:
            quality = Quality.UNCERTAIN
            reasons.append(f"reset: counter went from {float(prev.raw) * spec.scale} to {value} {unit}")
        elif flag is Flag.ROLLOVER:
            reasons.append(f"rollover at {spec.width_bits} bits")
        still, expected = 0, 0.0
        if delta == 0:
            rate = self._rate_of(spec.point, values)
            if rate is not None and rate > 0:
                still = prev.still_polls + 1
                expected = prev.still_expected + rate * interval_s / 3600.0
                if still >= self.stuck_after and expected > 2 * _resolution(spec, value):
                    flags.append(Flag.STUCK)
                    quality = Quality.UNCERTAIN
                    reasons.append(f"stuck: counter still for {still} polls while its rate is above zero "
                                   f"({expected:.6g} {unit} expected)")
        if self.max_power_kw is not None and delta > 0 and spec.to_kwh is not None:
            implied_kw = delta * spec.to_kwh / (interval_s / 3600.0)
            if implied_kw > self.max_power_kw * SPIKE_MARGIN:
                flags.append(Flag.SPIKE)
                quality = Quality.UNCERTAIN
                reasons.append(f"spike: implies {implied_kw:.6g} kW, max {self.max_power_kw} kW")
        sample = EdgeSample(ts, quantity, value, unit, delta, interval_s, quality,
                            "; ".join(reasons)[:200] or None, tuple(flags))
        return sample, CounterState(raw, ts, still, expected)
