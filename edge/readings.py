"""Turns one poll of a meter into samples: counter deltas, quality and reasons, stuck and clock checks (pure).

The tracker never mutates its state: `track` returns the samples and the meter's next state, and the
caller adopts that state only once the samples are safely spooled. A reading that is not kept therefore
leaves the baseline where it was, and its energy arrives with the next reading that is kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime

from calc.counters import counter_delta
from calc.schema import Flag, Quality, Sample
from calc.units import UnitError, conversion_factor
from edge.drivers import PointValue
from edge.points import Point, scaled

SPIKE_MARGIN = 1.5  # a delta implying more than this × max power is flagged as a spike


@dataclass(frozen=True, slots=True)
class CounterState:
    """The last good reading of one counter, and how long it has stood still while power flowed."""

    raw: int | float
    ts: datetime
    still_polls: int = 0
    still_expected: float = 0.0  # counter units the rate points say should have accrued meanwhile


MeterState = dict[str, CounterState]  # quantity -> state


@dataclass(frozen=True, slots=True)
class Poll:
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


def _resolution(point: Point, value: float) -> float:
    if point.is_integer and point.node is None:
        return abs(point.scale)
    return max(abs(value) * 2.0 ** -22, 1e-3)


class MeterTracker:
    """Per meter: the counter arithmetic and quality rules; one tracker per meter, fed in poll order."""

    def __init__(self, meter_id: str, stuck_after: int = 3, max_power_kw: float | None = None,
                 max_clock_skew_s: float = 300.0) -> None:
        self.meter_id = meter_id
        self.stuck_after = stuck_after
        self.max_power_kw = max_power_kw
        self.max_clock_skew_s = max_clock_skew_s
        self._rates: dict[str, tuple[Point, float] | None] = {}

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

    def track(self, poll: Poll, state: MeterState) -> tuple[list[Sample], MeterState]:
        samples: list[Sample] = []
        new_state = dict(state)
        for pv in poll.values:
            point = pv.point
            ts, skew = poll.ts, None
            if pv.source_ts is not None:
                off_s = (pv.source_ts - poll.ts).total_seconds()
                if abs(off_s) <= self.max_clock_skew_s:
                    ts = pv.source_ts
                else:  # the device's clock is not to be trusted: keep the agent's time, say so
                    skew = f"clock: source time {off_s:+.0f} s off the agent's; agent time used"
            if point.kind != "counter":
                sample, counter_state = self._gauge(pv, ts), None
            else:
                sample, counter_state = self._counter(pv, ts, state.get(point.quantity), poll.values)
            if skew is not None:
                sample = sample.model_copy(update={
                    "flags": (*sample.flags, Flag.CLOCK),
                    "quality": Quality.BAD if sample.quality == Quality.BAD else Quality.UNCERTAIN,
                    "reason": "; ".join(r for r in (sample.reason, skew) if r)[:200]})
            samples.append(sample)
            if counter_state is not None:
                new_state[point.quantity] = counter_state
        return samples, new_state

    @staticmethod
    def _gauge(pv: PointValue, ts: datetime) -> Sample:
        point = pv.point
        if pv.raw is None:
            return Sample(ts=ts, quantity=point.quantity, value=0.0, unit=point.unit, quality=Quality.BAD,
                          reason=pv.reason or "no value")
        value = scaled(point, pv.raw)
        problem = point.unavailable(pv.raw) or point.out_of_range(value)
        if problem is not None:
            return Sample(ts=ts, quantity=point.quantity, value=value if math.isfinite(value) else 0.0,
                          unit=point.unit, quality=Quality.BAD, reason=f"out of range: {problem}")
        return Sample(ts=ts, quantity=point.quantity, value=value, unit=point.unit, quality=pv.quality,
                      reason=pv.reason)

    def _counter(self, pv: PointValue, ts: datetime, prev: CounterState | None,
                 values: tuple[PointValue, ...]) -> tuple[Sample, CounterState | None]:
        point = pv.point
        last_value = scaled(point, prev.raw) if prev is not None else 0.0
        if pv.raw is None or pv.quality == Quality.BAD:
            return Sample(ts=ts, quantity=point.quantity, value=last_value, unit=point.unit, quality=Quality.BAD,
                          reason=pv.reason or "no value"), None
        value = scaled(point, pv.raw)
        unavailable = point.unavailable(pv.raw)
        if unavailable is not None:
            return Sample(ts=ts, quantity=point.quantity, value=last_value, unit=point.unit, quality=Quality.BAD,
                          reason=unavailable), None
        problem = point.out_of_range(value)
        if problem is not None:
            return Sample(ts=ts, quantity=point.quantity, value=last_value, unit=point.unit, quality=Quality.BAD,
                          reason=f"out of range: {problem}"), None
        if prev is None:
            return (Sample(ts=ts, quantity=point.quantity, value=value, unit=point.unit, quality=pv.quality,
                           reason=pv.reason, flags=(Flag.FIRST,)),
                    CounterState(pv.raw, ts))
        interval_s = (ts - prev.ts).total_seconds()
        if interval_s <= 0:
            # the clock went back (or the device repeated a timestamp): keep the baseline, say so
            return Sample(ts=ts, quantity=point.quantity, value=value, unit=point.unit, quality=Quality.UNCERTAIN,
                          reason=f"clock: {interval_s:.3f} s since the previous reading", flags=(Flag.CLOCK,)), None
        if isinstance(pv.raw, int) and isinstance(prev.raw, int):
            delta, flag = counter_delta(prev.raw, pv.raw, point.width_bits, point.scale)
        elif pv.raw >= prev.raw:
            delta, flag = (float(pv.raw) - float(prev.raw)) * point.scale, None
        else:
            delta, flag = float(pv.raw) * point.scale, Flag.RESET
        flags: list[Flag] = [flag] if flag is not None else []
        quality, reasons = pv.quality, [pv.reason] if pv.reason else []
        if flag is Flag.RESET:
            quality = Quality.UNCERTAIN
            reasons.append(f"reset: counter went from {scaled(point, prev.raw)} to {value} {point.unit}")
        elif flag is Flag.ROLLOVER:
            reasons.append(f"rollover at {point.width_bits} bits")
        still, expected = 0, 0.0
        rate = self._rate_of(point, values)
        if delta == 0 and rate is not None and rate > 0:
            still = prev.still_polls + 1
            expected = prev.still_expected + rate * interval_s / 3600.0
            if still >= self.stuck_after and expected > 2 * _resolution(point, value):
                flags.append(Flag.STUCK)
                quality = Quality.UNCERTAIN
                reasons.append(f"stuck: counter still for {still} polls while its rate is above zero "
                               f"({expected:.6g} {point.unit} expected)")
        if self.max_power_kw is not None and delta > 0:
            try:
                implied_kw = delta * conversion_factor(point.unit, "kWh") / (interval_s / 3600.0)
            except UnitError:
                implied_kw = None
            if implied_kw is not None and implied_kw > self.max_power_kw * SPIKE_MARGIN:
                flags.append(Flag.SPIKE)
                quality = Quality.UNCERTAIN
                reasons.append(f"spike: implies {implied_kw:.6g} kW, max {self.max_power_kw} kW")
        sample = Sample(ts=ts, quantity=point.quantity, value=value, unit=point.unit, delta=delta,
                        interval_s=interval_s, quality=quality, reason="; ".join(reasons)[:200] or None,
                        flags=tuple(flags))
        return sample, replace(CounterState(pv.raw, ts), still_polls=still, still_expected=expected)
