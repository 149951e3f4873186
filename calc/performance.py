"""Actual against expected (ISO 50006 EnPIs): deviation, EnPI ratio and CUSUM for any series; intensity per unit
of product for arrays of periods; and the allowance projection from an expected profile (hour of week, or a
baseline's prediction) instead of a flat burn rate, one pure function for the API and the live rule.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from calc.balance import AllowanceCheck, Intensity, Period, intensity
from calc.rules import Projection

FloatArray = npt.NDArray[np.float64]
HOURS_PER_WEEK = 168
_HOUR = timedelta(hours=1)


class PerformanceError(ValueError):
    """Series that cannot be compared (lengths, NaN, negative), or a profile that cannot project."""


def _series(values: npt.ArrayLike, what: str) -> FloatArray:
    arr = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if arr.ndim != 1:
        raise PerformanceError(f"{what}: expected a one-dimensional series, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise PerformanceError(f"{what}: contains NaN or infinite values")
    return arr


def _same_length(**named: FloatArray) -> int:
    lengths = {k: v.shape[0] for k, v in named.items()}
    if len(set(lengths.values())) > 1:
        raise PerformanceError(f"series differ in length: {lengths}")
    return int(next(iter(lengths.values())))


@dataclass(frozen=True, slots=True)
class Performance:
    """Per period (arrays) and in total: energy in the series' unit, CO2e in kg."""

    actual: FloatArray
    expected: FloatArray
    deviation: FloatArray          # actual − expected
    deviation_pct: FloatArray      # 100 × (actual − expected) / expected; NaN where expected ≤ 0
    enpi: FloatArray               # actual / expected; NaN where expected ≤ 0
    cusum: FloatArray              # running Σ (actual − expected): a turn upward is waste starting
    actual_co2e_kg: FloatArray
    expected_co2e_kg: FloatArray   # expected × the factor used for the actual
    deviation_co2e_kg: FloatArray

    @property
    def actual_total(self) -> float:
        return float(self.actual.sum())

    @property
    def expected_total(self) -> float:
        return float(self.expected.sum())

    @property
    def deviation_total(self) -> float:
        return self.actual_total - self.expected_total

    @property
    def deviation_pct_total(self) -> float:
        return 100.0 * self.deviation_total / self.expected_total if self.expected_total > 0 else math.nan

    @property
    def enpi_total(self) -> float:
        return self.actual_total / self.expected_total if self.expected_total > 0 else math.nan


def actual_vs_expected(actual: npt.ArrayLike, expected: npt.ArrayLike,
                       co2e_per_unit: float | npt.ArrayLike) -> Performance:
    """Compare an actual energy series with the expected one (same unit, same periods). `co2e_per_unit` is the
    factor used for the actual (kg CO2e per energy unit; one value, or one per period), so the expected CO2e
    is the expected energy as the actual energy was converted."""
    act, exp = _series(actual, "actual"), _series(expected, "expected")
    n = _same_length(actual=act, expected=exp)
    factor = np.broadcast_to(_series(co2e_per_unit, "co2e_per_unit"), (n,)) if n else np.zeros(0)
    if np.any(factor < 0):
        raise PerformanceError("co2e_per_unit: a factor must not be negative")
    deviation = act - exp
    positive = exp > 0
    safe = np.where(positive, exp, 1.0)
    with np.errstate(over="ignore"):  # a subnormal expected value gives an infinite ratio, which it is
        pct = np.where(positive, 100.0 * deviation / safe, np.nan)
        enpi = np.where(positive, act / safe, np.nan)
    return Performance(actual=act, expected=exp, deviation=deviation, deviation_pct=pct, enpi=enpi,
                       cusum=np.cumsum(deviation), actual_co2e_kg=act * factor, expected_co2e_kg=exp * factor,
                       deviation_co2e_kg=deviation * factor)


def implied_factor(energy: npt.ArrayLike, co2e_kg: npt.ArrayLike) -> FloatArray:
    """kg CO2e per energy unit of each period as stored (co2e / energy); a period without energy takes the
    whole series' ratio (0 when the series has none), so expected energy there still has a CO2e."""
    e, c = _series(energy, "energy"), _series(co2e_kg, "co2e_kg")
    _same_length(energy=e, co2e_kg=c)
    total = float(c.sum()) / float(e.sum()) if e.sum() > 0 else 0.0
    result: FloatArray = np.where(e > 0, c / np.where(e > 0, e, 1.0), total)
    return result


@dataclass(frozen=True, slots=True)
class IntensitySeries:
    """kg CO2e and kgce per unit of product, per period and in total. A period without production has NaN
    and its reason in `refused` (None where the period has a figure)."""

    co2e_per_unit: FloatArray
    kgce_per_unit: FloatArray
    refused: tuple[str | None, ...]
    total_co2e: Intensity | None          # None when the whole series has no production
    total_kgce: Intensity | None
    unit: str                             # "kg / <production unit>"


def intensity_series(co2e_kg: npt.ArrayLike, kgce: npt.ArrayLike, production: npt.ArrayLike,
                     production_unit: str) -> IntensitySeries:
    """Per-period intensities with calc.balance.intensity's rule (production must be positive; the unit must be
    one pint knows): the totals are its results, and a refused period carries its reason."""
    c, k, p = _series(co2e_kg, "co2e_kg"), _series(kgce, "kgce"), _series(production, "production")
    _same_length(co2e_kg=c, kgce=k, production=p)
    ok = p > 0
    safe = np.where(ok, p, 1.0)
    refused: list[str | None] = [None] * p.shape[0]
    for i in np.flatnonzero(~ok):
        try:
            intensity(float(c[i]), float(p[i]), production_unit)
        except ValueError as exc:
            refused[int(i)] = f"period {int(i)}: {exc}"
    total_p = float(p.sum())
    unit = intensity(1.0, 1.0, production_unit).unit  # checks the unit once, even for an all-refused series
    return IntensitySeries(
        co2e_per_unit=np.where(ok, c / safe, np.nan), kgce_per_unit=np.where(ok, k / safe, np.nan),
        refused=tuple(refused),
        total_co2e=intensity(float(c.sum()), total_p, production_unit) if total_p > 0 else None,
        total_kgce=intensity(float(k.sum()), total_p, production_unit) if total_p > 0 else None, unit=unit)


# ---- expected profiles and the allowance projection ---------------------------------------------------------


class ExpectedProfile(Protocol):
    """Expected kg CO2e (or energy) in [start, end); both implementations below, or a caller's own."""

    def expected_kg(self, start: datetime, end: datetime) -> float: ...

    def steps(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime, float]]: ...


def _hour_steps(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """[start, end) cut at whole UTC hours."""
    out: list[tuple[datetime, datetime]] = []
    t = start.astimezone(UTC)
    stop = end.astimezone(UTC)
    while t < stop:
        nxt = min(t.replace(minute=0, second=0, microsecond=0) + _HOUR, stop)
        out.append((t, nxt))
        t = nxt
    return out


class HourOfWeekProfile(BaseModel):
    """Mean kg per hour for each hour of the week in the site's time zone (Monday 00:00 first): shifts and
    weekends as they were, not a flat rate."""

    model_config = ConfigDict(frozen=True)

    timezone: str
    kg_per_h: tuple[float, ...] = Field(min_length=HOURS_PER_WEEK, max_length=HOURS_PER_WEEK)
    hours_seen: tuple[int, ...] = Field(min_length=HOURS_PER_WEEK, max_length=HOURS_PER_WEEK)

    def slot(self, ts: datetime) -> int:
        local = ts.astimezone(ZoneInfo(self.timezone))
        return local.weekday() * 24 + local.hour

    def steps(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime, float]]:
        return [(a, b, self.kg_per_h[self.slot(a)] * (b - a).total_seconds() / 3600)
                for a, b in _hour_steps(start, end)]

    def expected_kg(self, start: datetime, end: datetime) -> float:
        return sum(kg for _, _, kg in self.steps(start, end))


def hour_of_week_profile(series: Sequence[tuple[datetime, float]], timezone: str,
                         interval: timedelta = _HOUR) -> HourOfWeekProfile:
    """Profile from past hourly sums, (interval end, kg) as the API's history gives them. An hour of the week
    never seen takes the mean of the hours seen. Raises PerformanceError when the series is empty."""
    if interval != _HOUR:
        raise PerformanceError("the hour-of-week profile needs hourly sums (interval = 1 h)")
    total = np.zeros(HOURS_PER_WEEK)
    seen = np.zeros(HOURS_PER_WEEK, dtype=np.int64)
    zone = ZoneInfo(timezone)
    for end, kg in series:
        if not math.isfinite(kg):
            continue
        local = (end - interval).astimezone(zone)
        slot = local.weekday() * 24 + local.hour
        total[slot] += kg
        seen[slot] += 1
    if not seen.any():
        raise PerformanceError("no history to build an hour-of-week profile from")
    mean_seen = float(total[seen > 0].sum() / seen[seen > 0].sum())
    rate = np.where(seen > 0, total / np.where(seen > 0, seen, 1), mean_seen)
    return HourOfWeekProfile(timezone=timezone, kg_per_h=tuple(float(r) for r in rate),
                             hours_seen=tuple(int(s) for s in seen))


@dataclass(frozen=True, slots=True)
class ExpectedSeries:
    """Expected kg per interval, e.g. a baseline's prediction for planned production × the factor; `ends[i]` is
    the end of interval i, which starts at `ends[i-1]` (interval 0 at `start`). Outside the series: 0."""

    start: datetime
    ends: tuple[datetime, ...]
    kg: tuple[float, ...]

    def steps(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime, float]]:
        out: list[tuple[datetime, datetime, float]] = []
        lo = self.start
        for hi, kg in zip(self.ends, self.kg, strict=True):
            a, b = max(lo, start), min(hi, end)
            if b > a and hi > lo:
                out.append((a, b, kg * (b - a).total_seconds() / (hi - lo).total_seconds()))
            lo = hi
        return out

    def expected_kg(self, start: datetime, end: datetime) -> float:
        return sum(kg for _, _, kg in self.steps(start, end))


def project_expected(used_kg: float, allowance_kg: float, now: datetime, period_end: datetime,
                     profile: ExpectedProfile) -> Projection:
    """Projection to the period's end along the expected profile: projected = used + expected in [now, end);
    runs out where used + cumulative expected reaches the allowance (linear within a step). `rate_kg_per_h`
    is the mean expected rate over the rest of the period. Drop-in for `project(used, allowance, rate, …)`."""
    if allowance_kg < 0:
        raise PerformanceError("allowance must not be negative")
    steps = profile.steps(now, period_end) if period_end > now else []
    if any(kg < 0 for _, _, kg in steps):
        raise PerformanceError("the expected profile has negative kg")
    remaining = allowance_kg - used_kg
    runs_out: datetime | None = now if remaining <= 0 else None
    cumulative = 0.0
    for a, b, kg in steps:
        if runs_out is None and kg > 0 and cumulative + kg >= remaining:
            runs_out = a + (b - a) * ((remaining - cumulative) / kg)
        cumulative += kg
    hours_left = max(0.0, (period_end - now).total_seconds() / 3600)
    return Projection(used_kg=used_kg, allowance_kg=allowance_kg,
                      rate_kg_per_h=cumulative / hours_left if hours_left > 0 else 0.0,
                      projected_kg=used_kg + cumulative, remaining_kg=remaining, runs_out_at=runs_out,
                      exceeded=remaining < 0)


def allowance_check_expected(used_kg: float, allowance_kg: float, profile: ExpectedProfile, now: datetime,
                             period: Period, ccer_kg: float = 0.0,
                             ccer_cap_fraction: float = 0.05) -> AllowanceCheck:
    """`calc.balance.allowance_check` with the projection along `profile` instead of the recent burn rate."""
    projection = project_expected(used_kg, allowance_kg, now, period.end, profile)
    usable = min(max(ccer_kg, 0.0), ccer_cap_fraction * allowance_kg)
    return AllowanceCheck(projection=projection, ccer_usable_kg=usable, ccer_cap_fraction=ccer_cap_fraction)
