"""Operating criteria (clause 8.1.1) as data, and their evaluation: threshold, for-duration, hysteresis, schedule.

Pure: the caller passes every observation with its time (sample time or an injected clock) and gets back
the transition it causes, if any. Also the allowance arithmetic (burn rate, projection, run-out time).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Metric(StrEnum):
    """What a rule watches; each has one unit, named in `METRIC_UNITS`."""

    POWER = "power"                          # kW, summed over the scope
    CO2E_RATE = "co2e_rate"                  # kg CO2e/h, summed over the scope
    CUMULATIVE_CO2E = "cumulative_co2e"      # kg CO2e since the start of the rule's period (against a budget)
    ALLOWANCE_PROJECTION = "allowance_projection"  # projected emissions at period end / allowance (ratio)
    INTENSITY = "intensity"                  # kg CO2e per unit of product over the rule's period
    DATA_QUALITY = "data_quality"            # share of meters in scope whose last sample is not good (0..1)
    METER_OFFLINE = "meter_offline"          # seconds since the last sample (the longest in scope)
    DEVIATION = "deviation"                  # % actual energy above a baseline's expected, over the last window_s
    UNMETERED = "unmetered"                  # % of a main meter's power its submeters do not see (a virtual meter)


METRIC_UNITS: dict[Metric, str] = {
    Metric.POWER: "kW",
    Metric.CO2E_RATE: "kg/h",
    Metric.CUMULATIVE_CO2E: "kg",
    Metric.ALLOWANCE_PROJECTION: "dimensionless",
    Metric.INTENSITY: "kg/unit",
    Metric.DATA_QUALITY: "dimensionless",
    Metric.METER_OFFLINE: "s",
    Metric.DEVIATION: "%",
    Metric.UNMETERED: "%",
}


class Comparison(StrEnum):
    GT = ">"
    GE = ">="
    LT = "<"
    LE = "<="


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class ScopeKind(StrEnum):
    SITE = "site"
    AREA = "area"
    LINE = "line"
    METER = "meter"


class Window(BaseModel):
    """A weekly time window in the site's time zone (a shift); `end` before `start` crosses midnight."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    days: tuple[int, ...] = Field(default=(0, 1, 2, 3, 4, 5, 6), description="0 = Monday ... 6 = Sunday",
                                  min_length=1, max_length=7)
    start: time = Field(examples=["06:00"])
    end: time = Field(examples=["14:00"])

    @model_validator(mode="after")
    def _check(self) -> Window:
        if any(d < 0 or d > 6 for d in self.days):
            raise ValueError("days: use 0 (Monday) to 6 (Sunday)")
        if self.start == self.end:
            raise ValueError("start and end are equal: an empty window (omit the schedule for always)")
        return self

    def contains(self, local: datetime) -> bool:
        t = local.time().replace(tzinfo=None)
        if self.start < self.end:
            return local.weekday() in self.days and self.start <= t < self.end
        # crosses midnight: the part after midnight belongs to the previous day's shift
        if t >= self.start:
            return local.weekday() in self.days
        return t < self.end and (local.weekday() - 1) % 7 in self.days


class RuleSpec(BaseModel):
    """One operating criterion: breach when `metric comparison threshold` holds for `for_s` seconds; clear when
    the value is back past `clear_threshold` (hysteresis; default: the threshold itself)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    metric: Metric
    comparison: Comparison = Comparison.GT
    threshold: float = Field(allow_inf_nan=False)
    clear_threshold: float | None = Field(default=None, allow_inf_nan=False)
    for_s: float = Field(default=0.0, ge=0, le=31 * 86400, description="the breach must last this long")
    severity: Severity = Severity.WARNING
    scope: ScopeKind = ScopeKind.SITE
    target: str | None = Field(default=None, max_length=128,
                               description="area, line or meter id (not for site scope)")
    schedule: tuple[Window, ...] = Field(default=(), max_length=32, description="active windows; empty = always")
    period: str = Field(default="month", pattern="^(today|month|year)$",
                        description="period of cumulative and intensity metrics (an allowance projection "
                                    "takes its allowance's period)")
    product_quantity: str | None = Field(default=None, max_length=64,
                                         description="intensity rules: the quantity that counts product; the "
                                         "production variables of the scope with this quantity are summed")
    product_variable: str | None = Field(default=None, max_length=128,
                                         description="intensity rules: the id of the production variable that "
                                         "counts product (instead of product_quantity)")

    baseline_id: str | None = Field(default=None, max_length=128,
                                    description="deviation rules: the baseline whose active model gives the "
                                    "expected energy of the scope")
    window_s: float = Field(default=3600.0, ge=60, le=86400, description="deviation rules: actual and expected "
                            "energy are compared over the last window_s seconds")
    drivers: dict[str, str] = Field(default_factory=dict, max_length=16,
                                    description="deviation rules: the plant variable that gives each of the "
                                    "model's drivers (default: the variable whose id is the driver's name)")

    @model_validator(mode="after")
    def _check(self) -> RuleSpec:
        if (self.scope is ScopeKind.SITE) != (self.target is None):
            raise ValueError("target: give an area or meter id for area and meter scope, none for site scope")
        if self.clear_threshold is not None:
            upward = self.comparison in (Comparison.GT, Comparison.GE)
            if upward and self.clear_threshold > self.threshold:
                raise ValueError("clear_threshold must not be above the threshold of a > or >= rule")
            if not upward and self.clear_threshold < self.threshold:
                raise ValueError("clear_threshold must not be below the threshold of a < or <= rule")
        if self.metric is Metric.INTENSITY and not (self.product_quantity or self.product_variable):
            raise ValueError("product_quantity: an intensity rule needs the quantity that counts product, or "
                             "product_variable the production variable's id")
        if self.metric is Metric.UNMETERED and self.scope is not ScopeKind.METER:
            raise ValueError("scope: an unmetered rule watches a virtual meter 'main - sub - ...' (scope meter)")
        if self.metric is Metric.DEVIATION and not self.baseline_id:
            raise ValueError("baseline_id: a deviation rule compares with a baseline; name it")
        return self

    @property
    def unit(self) -> str:
        return METRIC_UNITS[self.metric]

    def breached(self, value: float) -> bool:
        return _compare(value, self.comparison, self.threshold)

    def cleared(self, value: float) -> bool:
        """True when a firing alert may resolve: the value is back on the good side of the clear threshold."""
        limit = self.threshold if self.clear_threshold is None else self.clear_threshold
        return not _compare(value, self.comparison, limit)

    def active_at(self, ts: datetime, timezone: str) -> bool:
        if not self.schedule:
            return True
        local = ts.astimezone(ZoneInfo(timezone))
        return any(w.contains(local) for w in self.schedule)


def _compare(value: float, comparison: Comparison, limit: float) -> bool:
    if comparison is Comparison.GT:
        return value > limit
    if comparison is Comparison.GE:
        return value >= limit
    if comparison is Comparison.LT:
        return value < limit
    return value <= limit


class Phase(StrEnum):
    OK = "ok"
    PENDING = "pending"
    FIRING = "firing"


@dataclass(frozen=True, slots=True)
class RuleState:
    """Where one rule stands for one target; kept by the caller between observations."""

    phase: Phase = Phase.OK
    since: datetime | None = None      # when the current breach began (pending or firing)
    last_ts: datetime | None = None    # time of the last observation used


class Transition(StrEnum):
    FIRE = "fire"
    CLEAR = "clear"


@dataclass(frozen=True, slots=True)
class Outcome:
    state: RuleState
    transition: Transition | None = None
    value: float | None = None
    at: datetime | None = None


def evaluate(rule: RuleSpec, state: RuleState, value: float, ts: datetime, timezone: str = "UTC") -> Outcome:
    """Apply one observation `value` at time `ts` to `state`.

    Observations older than the last one are ignored (nothing is evaluated twice). Outside the schedule
    a pending breach is forgotten and nothing fires; an alert already firing still clears when the value
    recovers. A breach fires at the first observation at least `for_s` after the breach began.
    """
    if state.last_ts is not None and ts < state.last_ts:
        return Outcome(state)
    if math.isnan(value):
        return Outcome(replace(state, last_ts=ts))
    active = rule.active_at(ts, timezone)
    if state.phase is Phase.FIRING:
        if rule.cleared(value):
            return Outcome(RuleState(Phase.OK, None, ts), Transition.CLEAR, value, ts)
        return Outcome(replace(state, last_ts=ts))
    if not active or not rule.breached(value):
        return Outcome(RuleState(Phase.OK, None, ts))
    since = state.since if state.phase is Phase.PENDING and state.since is not None else ts
    if (ts - since).total_seconds() >= rule.for_s:
        return Outcome(RuleState(Phase.FIRING, since, ts), Transition.FIRE, value, ts)
    return Outcome(RuleState(Phase.PENDING, since, ts))


# ---- allowance arithmetic (clause 8.1.2) ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Projection:
    """Emissions against an allowance for one period, all in kg CO2e."""

    used_kg: float
    allowance_kg: float
    rate_kg_per_h: float
    projected_kg: float       # used + rate × hours left in the period
    remaining_kg: float       # allowance − used (negative once exceeded)
    runs_out_at: datetime | None  # when used reaches the allowance at the current rate; None if it does not
    exceeded: bool

    @property
    def projected_ratio(self) -> float:
        return self.projected_kg / self.allowance_kg if self.allowance_kg > 0 else math.inf


def burn_rate_kg_per_h(series: Sequence[tuple[datetime, float]], now: datetime, window: timedelta,
                       since: datetime | None = None) -> float:
    """Recent burn rate: kg CO2e of the intervals ending in (start, now] divided by (now − start) in hours,
    where start = now − window, or `since` (the period's start) when that is later.

    `series` holds (interval end, kg in that interval), e.g. hourly sums.
    """
    if window.total_seconds() <= 0:
        raise ValueError("window must be positive")
    start = now - window if since is None else max(now - window, since)
    hours = (now - start).total_seconds() / 3600
    if hours <= 0:
        return 0.0
    return sum(kg for ts, kg in series if start < ts <= now) / hours


def project(used_kg: float, allowance_kg: float, rate_kg_per_h: float, now: datetime, period_end: datetime,
            ) -> Projection:
    """Projection to the period's end at a constant burn rate, and the time the allowance runs out."""
    if allowance_kg < 0 or rate_kg_per_h < 0:
        raise ValueError("allowance and rate must not be negative")
    hours_left = max(0.0, (period_end - now).total_seconds() / 3600)
    projected = used_kg + rate_kg_per_h * hours_left
    remaining = allowance_kg - used_kg
    runs_out: datetime | None
    if remaining <= 0:
        runs_out = now
    elif rate_kg_per_h > 0 and remaining / rate_kg_per_h <= hours_left:
        # compared in hours first: a tiny rate gives a span no timedelta can hold (OverflowError)
        runs_out = now + timedelta(hours=remaining / rate_kg_per_h)
    else:
        runs_out = None
    return Projection(used_kg=used_kg, allowance_kg=allowance_kg, rate_kg_per_h=rate_kg_per_h,
                      projected_kg=projected, remaining_kg=remaining, runs_out_at=runs_out,
                      exceeded=remaining < 0)
