"""Actual against a baseline's expectation over a window of any length (the deviation rule): the expected energy
of a window from a `calc.baseline.Baseline` given the drivers' totals in it, and the deviation in percent.

Pure. A baseline is fitted per period of its resolution (energy per hour, day or month = intercept + Σ
coefficient × driver per period); over a window of k periods the intercept counts k times and the drivers with
their totals in the window. That holds for additive drivers (production, operating hours, degree-days); a
mean-valued driver (a temperature) is passed as its mean × k, so it also counts k times.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from calc.baseline import Baseline, Resolution, degree_days
from calc.errors import CalcError

#: hours in one period of each baseline resolution (a month: a mean Gregorian month)
RESOLUTION_H: dict[Resolution, float] = {Resolution.HOURLY: 1.0, Resolution.DAILY: 24.0,
                                         Resolution.MONTHLY: 365.2425 * 24 / 12}
DEGREE_DAY_UNIT = "K * day"


class DeviationError(CalcError):
    """A window that cannot be compared with its baseline (no length, a driver missing)."""


def periods_in(model: Baseline, window_h: float) -> float:
    """How many of the model's periods a window of `window_h` hours is."""
    if not window_h > 0 or not math.isfinite(window_h):
        raise DeviationError(f"window must be a positive number of hours, got {window_h}")
    return window_h / RESOLUTION_H[model.resolution]


def expected_in_window(model: Baseline, window_h: float, drivers: Mapping[str, float],
                       units: Mapping[str, str] | None = None) -> float:
    """Expected energy in the model's `energy_unit` over a window of `window_h` hours, given each driver's
    total over the window (a mean-valued driver: mean × periods_in(model, window_h)), in the model's driver
    units unless `units` names another (pint converts, as Baseline.predict does)."""
    k = periods_in(model, window_h)
    missing = [d for d in model.drivers if d not in drivers]
    if missing:
        raise DeviationError(f"drivers {missing} have no value in the window; the model needs {list(model.drivers)}")
    per_period = {d: np.array([drivers[d] / k]) for d in model.drivers}
    return float(model.predict(per_period, units)[0]) * k


def deviation_pct(actual: float, expected: float) -> float:
    """100 × (actual − expected) / expected; NaN where nothing is expected (no comparison to make)."""
    return 100.0 * (actual - expected) / expected if expected > 0 else math.nan


def heating_degree_days(samples: Sequence[tuple[float, float]], base_c: float, unit: str = "degC") -> float:
    """Heating degree-days (K·d) of (temperature, seconds it stands for) samples below `base_c`
    (calc.baseline.degree_days summed)."""
    if not samples:
        return 0.0
    temps = np.array([t for t, _ in samples], dtype=np.float64)
    hours = np.array([s / 3600 for _, s in samples], dtype=np.float64)
    return float(degree_days(temps, base_c=base_c, sample_hours=hours, unit=unit).sum())


def time_weighted_mean(samples: Sequence[tuple[float, float]]) -> float:
    """Mean of (value, seconds it stands for) samples weighted by their seconds; NaN without weight."""
    weight = sum(s for _, s in samples)
    return sum(v * s for v, s in samples) / weight if weight > 0 else math.nan
