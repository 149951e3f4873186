"""Energy baselines (ISO 50006): fit energy on driver variables with OLS (statsmodels), report the statistics,
refuse a model that misses the acceptance limits (ASHRAE Guideline 14 style), and predict expected energy.

A fitted `Baseline` is a frozen, serialisable pydantic object with a content-hash version, so the API can
version and audit it like a rule. Also degree-days from a temperature series.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from enum import StrEnum

import numpy as np
import numpy.typing as npt
import pint
from pydantic import BaseModel, ConfigDict, Field

from calc.errors import CalcError
from calc.units import Q_, UnitError, conversion_factor

FloatArray = npt.NDArray[np.float64]


class BaselineError(CalcError):
    """Data that cannot be fitted or predicted (lengths, missing drivers, units); the message says which."""


class BaselineRefused(BaselineError):
    """A fitted model that misses acceptance limits; `misses` names each limit and the model's value."""

    def __init__(self, misses: list[str], stats: FitStats | None = None) -> None:
        super().__init__("baseline refused: " + "; ".join(misses))
        self.misses = misses
        self.stats = stats


class Resolution(StrEnum):
    HOURLY = "hourly"
    DAILY = "daily"
    MONTHLY = "monthly"


class AcceptanceLimits(BaseModel):
    """Limits a model must meet; fractions, not percent (0.15 = 15 %)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_cv_rmse: float = Field(gt=0, allow_inf_nan=False)
    max_abs_nmbe: float = Field(gt=0, allow_inf_nan=False)
    min_r2: float = Field(default=0.75, ge=0, le=1)
    min_points: int = Field(ge=3)
    max_p_value: float | None = Field(default=None, gt=0, le=1, description="each driver's p-value, when set")

    @classmethod
    def ashrae14(cls, resolution: Resolution | str) -> AcceptanceLimits:
        """ASHRAE Guideline 14 calibration limits: CV(RMSE) ≤ 15 % and |NMBE| ≤ 5 % for monthly data,
        30 % and 10 % for hourly (and daily) data; R² ≥ 0.75; at least 12 months, 30 days or 168 hours."""
        res = Resolution(resolution)
        if res is Resolution.MONTHLY:
            return cls(max_cv_rmse=0.15, max_abs_nmbe=0.05, min_points=12)
        return cls(max_cv_rmse=0.30, max_abs_nmbe=0.10, min_points=30 if res is Resolution.DAILY else 168)


class Term(BaseModel):
    """One coefficient with its uncertainty; `unit` is energy per unit of the driver."""

    model_config = ConfigDict(frozen=True)

    name: str                  # "intercept" or the driver's name
    value: float
    unit: str
    std_error: float
    p_value: float
    ci95_low: float
    ci95_high: float


class FitStats(BaseModel):
    """Goodness of fit over the baseline period (ASHRAE Guideline 14 definitions, p = number of terms)."""

    model_config = ConfigDict(frozen=True)

    n: int
    r2: float
    adj_r2: float
    rmse: float                # sqrt(SSE / (n − p)), in the energy unit
    cv_rmse: float             # rmse / mean(actual)
    nmbe: float                # Σ(actual − fitted) / ((n − p) × mean(actual))
    mean_energy: float


class Baseline(BaseModel):
    """A fitted energy baseline: energy = intercept + Σ coefficient × driver."""

    model_config = ConfigDict(frozen=True)

    subject: str               # what the energy series is: "site/area/meter", "site" …
    carrier: str | None = None
    energy_unit: str
    resolution: Resolution
    drivers: tuple[str, ...]
    driver_units: dict[str, str]
    terms: tuple[Term, ...]    # intercept first (when fitted), then the drivers in order
    stats: FitStats
    limits: AcceptanceLimits
    period: tuple[str, str] | None = None   # the baseline period as given (ISO 8601 bounds), for the record

    @property
    def version(self) -> str:
        """Content hash: the same data and fit give the same version."""
        body = json.dumps(self.model_dump(mode="json"), sort_keys=True, ensure_ascii=False).encode()
        return "sha256-" + hashlib.sha256(body).hexdigest()[:12]

    def term(self, name: str) -> Term:
        for t in self.terms:
            if t.name == name:
                return t
        raise BaselineError(f"baseline of {self.subject!r} has no term {name!r}; terms: {[t.name for t in self.terms]}")

    def predict(self, drivers: Mapping[str, npt.ArrayLike], units: Mapping[str, str] | None = None) -> FloatArray:
        """Expected energy (in `energy_unit`) for arrays of driver values, in the model's driver units unless
        `units` names another unit for a driver (pint converts)."""
        missing = [d for d in self.drivers if d not in drivers]
        if missing:
            raise BaselineError(f"predict: drivers {missing} missing; the model needs {list(self.drivers)}")
        columns = [_as_array(drivers[d], d) * _scale((units or {}).get(d), self.driver_units[d], d)
                   for d in self.drivers]
        lengths = {c.shape[0] for c in columns}
        if len(lengths) > 1:
            raise BaselineError(f"predict: driver arrays differ in length: {sorted(lengths)}")
        n = columns[0].shape[0] if columns else 1
        out: FloatArray = np.zeros(n, dtype=np.float64)
        by_name = {t.name: t.value for t in self.terms}
        out += by_name.get("intercept", 0.0)
        for name, column in zip(self.drivers, columns, strict=True):
            out += by_name[name] * column
        return out


def _as_array(values: npt.ArrayLike, what: str) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise BaselineError(f"{what}: expected a one-dimensional series, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise BaselineError(f"{what}: contains NaN or infinite values; drop or fill those periods first")
    return arr


def _scale(given: str | None, wanted: str, what: str) -> float:
    if given is None:
        return 1.0
    try:
        return conversion_factor(given, wanted)
    except UnitError as exc:
        raise BaselineError(f"{what}: {exc}") from exc


def fit_baseline(energy: npt.ArrayLike, drivers: Mapping[str, npt.ArrayLike], *, energy_unit: str,
                 driver_units: Mapping[str, str], resolution: Resolution | str, subject: str,
                 carrier: str | None = None, limits: AcceptanceLimits | None = None, intercept: bool = True,
                 period: tuple[str, str] | None = None) -> Baseline:
    """Fit energy on the drivers by ordinary least squares and check the acceptance limits.

    Raises BaselineError for unusable data and BaselineRefused (listing every limit missed with its value)
    for a model that does not meet `limits` (default: `AcceptanceLimits.ashrae14(resolution)`).
    """
    import statsmodels.api as sm  # imported on use: it pulls in scipy and pandas (~1 s)

    res = Resolution(resolution)
    lim = limits or AcceptanceLimits.ashrae14(res)
    y = _as_array(energy, "energy")
    names = tuple(drivers)
    if not names and not intercept:
        raise BaselineError("a baseline needs at least one driver or an intercept")
    for name in names:
        if name == "intercept":
            raise BaselineError("'intercept' is reserved; name the driver otherwise")
        if name not in driver_units:
            raise BaselineError(f"driver {name!r} has no unit (driver_units)")
        conversion_factor(driver_units[name], driver_units[name])  # pint must know it
    conversion_factor(energy_unit, "kWh")  # an energy unit
    columns = [_as_array(drivers[d], d) for d in names]
    for name, column in zip(names, columns, strict=True):
        if column.shape != y.shape:
            raise BaselineError(f"driver {name!r} has {column.shape[0]} values, energy has {y.shape[0]}")
    x = np.column_stack(columns) if columns else np.empty((y.shape[0], 0))
    if intercept:
        x = np.column_stack([np.ones(y.shape[0]), x])
    p = x.shape[1]
    if y.shape[0] <= p:
        raise BaselineRefused([f"n = {y.shape[0]} points is not more than the {p} terms"])
    if np.linalg.matrix_rank(x) < p:
        raise BaselineRefused([f"drivers {list(names)} are collinear or constant: the terms cannot be separated"])
    result = sm.OLS(y, x).fit()
    fitted = np.asarray(result.fittedvalues, dtype=np.float64)
    n, mean = int(y.shape[0]), float(np.mean(y))
    residual = y - fitted
    rmse = math.sqrt(float(np.sum(residual ** 2)) / (n - p))
    stats = FitStats(n=n, r2=float(result.rsquared), adj_r2=float(result.rsquared_adj), rmse=rmse,
                     cv_rmse=rmse / mean if mean > 0 else math.inf,
                     nmbe=float(np.sum(residual)) / ((n - p) * mean) if mean > 0 else math.inf, mean_energy=mean)
    ci = np.asarray(result.conf_int(alpha=0.05), dtype=np.float64)
    labels = (("intercept",) if intercept else ()) + names
    units = {"intercept": energy_unit, **{d: f"{energy_unit} / ({driver_units[d]})" for d in names}}
    terms = tuple(Term(name=label, value=float(result.params[i]), unit=units[label],
                       std_error=float(result.bse[i]), p_value=float(result.pvalues[i]),
                       ci95_low=float(ci[i, 0]), ci95_high=float(ci[i, 1])) for i, label in enumerate(labels))
    misses = _misses(stats, lim, terms, names)
    if misses:
        raise BaselineRefused(misses, stats)
    return Baseline(subject=subject, carrier=carrier, energy_unit=energy_unit, resolution=res, drivers=names,
                    driver_units={d: driver_units[d] for d in names}, terms=terms, stats=stats, limits=lim,
                    period=period)


def _misses(stats: FitStats, lim: AcceptanceLimits, terms: tuple[Term, ...], names: tuple[str, ...]) -> list[str]:
    misses: list[str] = []
    if stats.mean_energy <= 0:
        misses.append(f"mean energy {stats.mean_energy:.6g} is not positive: CV(RMSE) and NMBE are undefined")
    if stats.n < lim.min_points:
        misses.append(f"n = {stats.n} points < minimum {lim.min_points}")
    if not math.isfinite(stats.r2):  # energy that never varies: no variance to explain (statsmodels: NaN or -inf)
        misses.append("R² is undefined: the energy never varies over the baseline period")
    elif stats.r2 < lim.min_r2:
        misses.append(f"R² = {stats.r2:.4f} < {lim.min_r2:.4f}")
    if stats.mean_energy > 0 and stats.cv_rmse > lim.max_cv_rmse:
        misses.append(f"CV(RMSE) = {stats.cv_rmse:.2%} > {lim.max_cv_rmse:.2%}")
    if stats.mean_energy > 0 and abs(stats.nmbe) > lim.max_abs_nmbe:
        misses.append(f"|NMBE| = {abs(stats.nmbe):.2%} > {lim.max_abs_nmbe:.2%}")
    if lim.max_p_value is not None:
        misses += [f"driver {t.name!r} p-value = {t.p_value:.3g} > {lim.max_p_value:.3g}"
                   for t in terms if t.name in names and not t.p_value <= lim.max_p_value]
    return misses


def degree_days(temperature: npt.ArrayLike, *, base_c: float = 18.0, kind: str = "heating",
                sample_hours: float | npt.ArrayLike = 24.0, unit: str = "degC") -> FloatArray:
    """Degree-days (K·d) of each sample of a mean-temperature series: heating max(base − T, 0), cooling
    max(T − base, 0), times the sample's length in days (hourly means: sample_hours = 1; daily: 24).
    Sum them per period (day, month) for the baseline's driver."""
    if kind not in ("heating", "cooling"):
        raise BaselineError(f"degree-days kind {kind!r}: use 'heating' or 'cooling'")
    temps = _as_array(temperature, "temperature")
    if unit not in ("degC", "°C", "celsius"):
        try:
            temps = np.asarray(Q_(temps, unit).to("degC").magnitude, dtype=np.float64)
        except (pint.errors.PintError, ValueError, TypeError, AssertionError, AttributeError) as exc:
            raise BaselineError(f"temperature unit {unit!r}: {exc}") from exc
    hours = np.broadcast_to(np.asarray(sample_hours, dtype=np.float64), temps.shape)
    if np.any(hours <= 0):
        raise BaselineError("sample_hours must be positive")
    excess = base_c - temps if kind == "heating" else temps - base_c
    result: FloatArray = np.maximum(excess, 0.0) * hours / 24.0
    return result


def sum_per_period(values: npt.ArrayLike, period_index: npt.ArrayLike, periods: int) -> FloatArray:
    """Sum a per-sample series into `periods` bins (period_index[i] is sample i's bin, 0-based)."""
    idx = np.asarray(period_index, dtype=np.intp)
    if idx.size and (idx.min() < 0 or idx.max() >= periods):
        raise BaselineError(f"period index out of range 0..{periods - 1}")
    summed = np.bincount(idx, weights=np.asarray(values, dtype=np.float64), minlength=periods)
    return np.asarray(summed, dtype=np.float64)
