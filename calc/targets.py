"""Targets and milestones (ISO 50001 6.6): a target's yearly trajectory from its base year through its milestones
(linear between them), a year's progress against it, whether the projection misses the next milestone, and a
measure's verified savings (IPMVP option B/C: the baseline's expected energy − the actual, after the measure)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

from calc.errors import CalcError


class TargetError(CalcError):
    """A target whose trajectory cannot be drawn, or figures that cannot be compared with it."""


class TargetKind(StrEnum):
    """What a milestone's value means."""

    ABSOLUTE = "absolute"            # kg CO2e per year at most
    REDUCTION_PCT = "reduction_pct"  # % below the base year's kg CO2e
    INTENSITY = "intensity"          # kg CO2e per unit of product at most


class Milestone(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    year: int = Field(ge=1990, le=2100)
    value: float = Field(allow_inf_nan=False, description="kg CO2e/a (absolute), % below the base year "
                         "(reduction_pct) or kg CO2e per unit of product (intensity)")


class TargetSpec(BaseModel):
    """A target as declared: the base year's figure and the milestones (the last one is the target itself)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: TargetKind
    base_year: int = Field(ge=1990, le=2100)
    base_value: float = Field(gt=0, allow_inf_nan=False, description="the base year's kg CO2e (absolute, "
                              "reduction_pct) or kg CO2e per unit of product (intensity)")
    milestones: tuple[Milestone, ...] = Field(min_length=1, max_length=50)

    @model_validator(mode="after")
    def _ordered(self) -> TargetSpec:
        years = [m.year for m in self.milestones]
        if years != sorted(set(years)):
            raise ValueError("milestones: one per year, in increasing years")
        if years[0] <= self.base_year:
            raise ValueError("milestones: every milestone comes after the base year")
        for m in self.milestones:
            if self.kind is TargetKind.REDUCTION_PCT and not 0 <= m.value <= 100:
                raise ValueError(f"milestone {m.year}: a reduction is between 0 and 100 %")
            if self.kind is not TargetKind.REDUCTION_PCT and m.value < 0:
                raise ValueError(f"milestone {m.year}: a figure must not be negative")
        return self

    def figure(self, m: Milestone) -> float:
        """A milestone as the figure it allows (kg CO2e/a, or kg per unit for intensity)."""
        if self.kind is TargetKind.REDUCTION_PCT:
            return self.base_value * (1.0 - m.value / 100.0)
        return m.value


def trajectory(spec: TargetSpec) -> list[tuple[int, float]]:
    """(year, allowed figure) for every year from the base year to the last milestone: the base figure, each
    milestone's figure in its year, linear in between."""
    points = [(spec.base_year, spec.base_value)] + [(m.year, spec.figure(m)) for m in spec.milestones]
    years = np.arange(spec.base_year, points[-1][0] + 1)
    values = np.interp(years, [p[0] for p in points], [p[1] for p in points])
    return [(int(y), float(v)) for y, v in zip(years, values, strict=True)]


def allowed_in(spec: TargetSpec, year: int) -> float:
    """The trajectory's figure for `year` (the base figure before the base year, the last milestone's after)."""
    path = trajectory(spec)
    if year <= path[0][0]:
        return path[0][1]
    if year >= path[-1][0]:
        return path[-1][1]
    return path[year - path[0][0]][1]


@dataclass(frozen=True, slots=True)
class Progress:
    """A year against the trajectory; figures in the target's unit (kg CO2e/a, or kg per unit of product)."""

    year: int
    allowed: float                    # the trajectory's figure for the year
    actual_to_date: float             # the year so far (intensity: kg so far / product so far)
    projected: float                  # the whole year as projected (intensity: the ratio so far)
    reduction_pct: float              # 100 × (base − projected) / base
    required_pct: float               # 100 × (base − allowed) / base
    on_track: bool                    # projected ≤ allowed
    gap: float                        # projected − allowed (positive: above the path)
    next_milestone: Milestone | None  # the first milestone in this year or later
    next_allowed: float | None        # its figure
    projected_at_next: float | None   # the projection carried to its year
    misses_next: bool                 # projected_at_next > next_allowed


def progress(spec: TargetSpec, year: int, actual_to_date: float, projected: float) -> Progress:
    """Progress of `year`: `projected` is the whole year's figure (absolute: used + the expected rest, as the
    allowance projection makes it; intensity: the ratio so far). The next milestone's year is reached by
    carrying on the line from the base year through this year's projection (this year's figure when the year is
    the base year or the milestone's own year); it is missed when that exceeds the milestone's figure."""
    for name, v in (("actual_to_date", actual_to_date), ("projected", projected)):
        if not math.isfinite(v) or v < 0:
            raise TargetError(f"{name}: {v} is not a figure a target can be compared with")
    allowed = allowed_in(spec, year)
    base = spec.base_value
    nxt = next((m for m in spec.milestones if m.year >= year), None)
    next_allowed = spec.figure(nxt) if nxt is not None else None
    carried: float | None = None
    if nxt is not None:
        carried = projected
        if year > spec.base_year and nxt.year > year:
            slope = (projected - base) / (year - spec.base_year)
            carried = max(0.0, projected + slope * (nxt.year - year))
    return Progress(year=year, allowed=allowed, actual_to_date=actual_to_date, projected=projected,
                    reduction_pct=100.0 * (base - projected) / base, required_pct=100.0 * (base - allowed) / base,
                    on_track=projected <= allowed, gap=projected - allowed, next_milestone=nxt,
                    next_allowed=next_allowed, projected_at_next=carried,
                    misses_next=carried is not None and next_allowed is not None and carried > next_allowed)


# ---- verified savings of a measure ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Savings:
    """Avoided energy and CO2e over the reporting periods (after the measure): expected − actual."""

    periods: int
    expected_energy: float
    actual_energy: float
    savings_energy: float              # Σ expected − Σ actual, in the energy unit of the series
    savings_pct: float | None          # 100 × savings / Σ expected; None when nothing is expected
    savings_co2e_kg: float             # Σ (expected − actual) × the factor each period's actual was converted with


def verified_savings(expected: npt.ArrayLike, actual: npt.ArrayLike, co2e_per_unit: npt.ArrayLike) -> Savings:
    """Savings of the reporting periods (IPMVP option B/C, avoided energy): the baseline model's energy for the
    periods' actual drivers less the measured energy; CO2e with each period's own factor (kg per energy unit)."""
    e = np.atleast_1d(np.asarray(expected, dtype=np.float64))
    a = np.atleast_1d(np.asarray(actual, dtype=np.float64))
    f = np.broadcast_to(np.atleast_1d(np.asarray(co2e_per_unit, dtype=np.float64)), a.shape)
    if e.shape != a.shape or e.ndim != 1:
        raise TargetError(f"expected and actual differ in shape: {e.shape} vs {a.shape}")
    if not (np.all(np.isfinite(e)) and np.all(np.isfinite(a)) and np.all(np.isfinite(f))):
        raise TargetError("expected, actual and factors must be finite")
    exp_total, act_total = float(e.sum()), float(a.sum())
    saved = exp_total - act_total
    return Savings(periods=int(e.shape[0]), expected_energy=exp_total, actual_energy=act_total,
                   savings_energy=saved, savings_pct=100.0 * saved / exp_total if exp_total > 0 else None,
                   savings_co2e_kg=float(((e - a) * f).sum()))
