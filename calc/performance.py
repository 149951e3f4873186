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

from calc.balance import AllowanceCheck, Intensity, TimeRange, intensity
from calc.errors import CalcError
from calc.rules import Projection

FloatArray = npt.NDArray[np.float64]
HOURS_PER_WEEK = 168
_HOUR = timedelta(hours=1)


class PerformanceError(CalcError):
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
    """Expected kg CO2e (or energy) over [start, end), cut in steps: `edges_s` (n + 1 epoch seconds) and `kg`
    (n). Both implementations below satisfy it; a caller may bring its own."""

    def steps(self, start: datetime, end: datetime) -> tuple[FloatArray, FloatArray]: ...


def _epoch_s(ts: datetime) -> float:
    if ts.tzinfo is None:
        raise PerformanceError(f"{ts.isoformat()}: a time needs its time zone")
    return ts.timestamp()


def _utc(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(round(epoch_s, 6), UTC)


def expected_kg(profile: ExpectedProfile, start: datetime, end: datetime) -> float:
    """Expected kg in [start, end) under a profile."""
    return float(profile.steps(start, end)[1].sum()) if end > start else 0.0


def _hour_edges(start_s: float, end_s: float) -> FloatArray:
    """[start, end) cut at whole UTC hours, as epoch seconds."""
    inner = np.arange(math.floor(start_s / 3600) + 1, math.ceil(end_s / 3600), dtype=np.float64) * 3600.0
    return np.concatenate(([start_s], inner, [end_s])) if end_s > start_s else np.array([start_s])


def _offsets_s(zone: ZoneInfo, at_s: FloatArray) -> FloatArray:
    """UTC offset (seconds) of `zone` at each instant: one zoneinfo call per UTC day, per hour only on days whose
    offset changes (DST), so a year costs a few hundred calls instead of 8 760."""
    def offset(t: float) -> float:
        delta = datetime.fromtimestamp(t, UTC).astimezone(zone).utcoffset()
        return delta.total_seconds() if delta is not None else 0.0

    days = np.floor(at_s / 86_400)
    out = np.empty_like(at_s)
    for day in np.unique(days):
        here = days == day
        first, last = offset(day * 86_400), offset(day * 86_400 + 86_399)
        out[here] = first if first == last else [offset(t) for t in at_s[here]]
    return out


class HourOfWeekProfile(BaseModel):
    """Mean kg per hour for each hour of the week in the site's time zone (Monday 00:00 first): shifts and
    weekends as they were, not a flat rate."""

    model_config = ConfigDict(frozen=True)

    timezone: str
    kg_per_h: tuple[float, ...] = Field(min_length=HOURS_PER_WEEK, max_length=HOURS_PER_WEEK)
    hours_seen: tuple[int, ...] = Field(min_length=HOURS_PER_WEEK, max_length=HOURS_PER_WEEK)

    def steps(self, start: datetime, end: datetime) -> tuple[FloatArray, FloatArray]:
        """Steps cut at whole UTC hours; each takes the rate of the local hour of the week it starts in."""
        edges = _hour_edges(_epoch_s(start), _epoch_s(end))
        starts = edges[:-1]
        local_hours = np.floor((starts + _offsets_s(ZoneInfo(self.timezone), starts)) / 3600).astype(np.int64)
        slots = (local_hours + 72) % HOURS_PER_WEEK   # 1970-01-01 00:00 was a Thursday: hour 72 of its week
        kg: FloatArray = np.asarray(self.kg_per_h, dtype=np.float64)[slots] * np.diff(edges) / 3600
        return edges, kg


def hour_of_week_profile(series: Sequence[tuple[datetime, float]], timezone: str,
                         interval: timedelta = _HOUR) -> HourOfWeekProfile:
    """Profile from past hourly sums, (interval end, kg) as the API's history gives them. An hour of the week
    never seen takes the mean of the hours seen. Raises PerformanceError when the series is empty."""
    if interval != _HOUR:
        raise PerformanceError("the hour-of-week profile needs hourly sums (interval = 1 h)")
    kept = [(end, kg) for end, kg in series if math.isfinite(kg)]
    if not kept:
        raise PerformanceError("no history to build an hour-of-week profile from")
    starts = np.array([_epoch_s(end) - 3600 for end, _ in kept], dtype=np.float64)
    local_hours = np.floor((starts + _offsets_s(ZoneInfo(timezone), starts)) / 3600).astype(np.int64)
    slots = (local_hours + 72) % HOURS_PER_WEEK
    total = np.bincount(slots, weights=np.array([kg for _, kg in kept]), minlength=HOURS_PER_WEEK)
    seen = np.bincount(slots, minlength=HOURS_PER_WEEK)
    mean_seen = float(total.sum() / seen.sum())
    rate = np.where(seen > 0, total / np.where(seen > 0, seen, 1), mean_seen)
    return HourOfWeekProfile(timezone=timezone, kg_per_h=tuple(float(r) for r in rate),
                             hours_seen=tuple(int(n) for n in seen))


@dataclass(frozen=True, slots=True)
class ExpectedSeries:
    """Expected kg per interval, e.g. a baseline's prediction for planned production × the factor; `ends[i]` is
    the end of interval i, which starts at `ends[i-1]` (interval 0 at `start`). Outside the series: 0."""

    start: datetime
    ends: tuple[datetime, ...]
    kg: tuple[float, ...]

    def steps(self, start: datetime, end: datetime) -> tuple[FloatArray, FloatArray]:
        """The series' own intervals clipped to [start, end), each interval's kg in proportion to its overlap."""
        if len(self.ends) != len(self.kg):
            raise PerformanceError(f"expected series: {len(self.ends)} ends for {len(self.kg)} values")
        bounds = np.array([_epoch_s(self.start), *(_epoch_s(t) for t in self.ends)], dtype=np.float64)
        widths = np.diff(bounds)
        if np.any(widths <= 0):
            raise PerformanceError("expected series: interval ends must increase")
        lo, hi = _epoch_s(start), _epoch_s(end)
        a, b = np.clip(bounds[:-1], lo, hi), np.clip(bounds[1:], lo, hi)
        keep = b > a
        edges = np.concatenate(([lo], b[keep])) if keep.any() else np.array([lo])
        if keep.any() and a[keep][0] > lo:           # a gap before the series: a step with nothing expected
            edges = np.concatenate(([lo, a[keep][0]], b[keep]))
            return edges, np.concatenate(([0.0], np.asarray(self.kg)[keep] * (b - a)[keep] / widths[keep]))
        kg: FloatArray = np.asarray(self.kg, dtype=np.float64)[keep] * (b - a)[keep] / widths[keep]
        return edges, kg


def project_expected(used_kg: float, allowance_kg: float, now: datetime, period_end: datetime,
                     profile: ExpectedProfile) -> Projection:
    """Projection to the period's end along the expected profile: projected = used + expected in [now, end);
    runs out where used + cumulative expected reaches the allowance (linear within a step). `rate_kg_per_h`
    is the mean expected rate over the rest of the period. Drop-in for `project(used, allowance, rate, …)`."""
    if allowance_kg < 0:
        raise PerformanceError("allowance must not be negative")
    edges, kg = profile.steps(now, period_end) if period_end > now else (np.array([_epoch_s(now)]), np.zeros(0))
    if np.any(kg < 0) or not np.all(np.isfinite(kg)):
        raise PerformanceError("the expected profile has negative or non-finite kg")
    remaining = allowance_kg - used_kg
    cumulative = np.cumsum(kg)
    expected = float(cumulative[-1]) if kg.size else 0.0
    runs_out: datetime | None = None
    if remaining <= 0:
        runs_out = now
    elif expected >= remaining:
        i = int(np.searchsorted(cumulative, remaining, side="left"))
        before = float(cumulative[i - 1]) if i > 0 else 0.0
        runs_out = _utc(float(edges[i]) + float(edges[i + 1] - edges[i]) * (remaining - before) / float(kg[i]))
    hours_left = max(0.0, (period_end - now).total_seconds() / 3600)
    return Projection(used_kg=used_kg, allowance_kg=allowance_kg,
                      rate_kg_per_h=expected / hours_left if hours_left > 0 else 0.0,
                      projected_kg=used_kg + expected, remaining_kg=remaining, runs_out_at=runs_out,
                      exceeded=remaining < 0)


def allowance_check_expected(used_kg: float, allowance_kg: float, profile: ExpectedProfile, now: datetime,
                             period: TimeRange, ccer_kg: float = 0.0,
                             ccer_cap_fraction: float = 0.05) -> AllowanceCheck:
    """`calc.balance.allowance_check` with the projection along `profile` instead of the recent burn rate."""
    projection = project_expected(used_kg, allowance_kg, now, period.end, profile)
    usable = min(max(ccer_kg, 0.0), ccer_cap_fraction * allowance_kg)
    return AllowanceCheck(projection=projection, ccer_usable_kg=usable, ccer_cap_fraction=ccer_cap_fraction)
