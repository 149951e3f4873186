"""Actual against expected for a stored baseline over any period and resolution: the stored energy and CO2e, the
energy the model expects given the actual drivers, the deviation, the EnPI and the CUSUM (calc.performance)."""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np
from pydantic import BaseModel, Field

from api.baseline_inputs import FloatArray, Inputs, read_inputs
from api.errors import Invalid
from calc.baseline import BaselineError, Resolution
from calc.performance import actual_vs_expected, implied_factor
from calc.plant import Plant
from calc.units import UnitError
from ingest.store.base import StoreReader
from records.baselines import StoredBaseline


class PerformanceTotals(BaseModel):
    actual_energy: float
    expected_energy: float
    deviation_energy: float = Field(description="actual − expected")
    deviation_pct: float | None = Field(description="100 × deviation / expected; null when nothing is expected")
    enpi: float | None = Field(description="actual / expected (EnPI ratio); null when nothing is expected")
    actual_co2e_kg: float
    expected_co2e_kg: float = Field(description="expected energy × the factor the actual energy was converted with")
    deviation_co2e_kg: float


class PerformanceSeries(BaseModel):
    """One entry per period, in columns (period i starts at start[i] and lasts hours[i])."""

    start: list[datetime]
    hours: list[float]
    elapsed: list[float] = Field(description="share of the period that has elapsed (below 1 for the one under way: "
                                 "its intercept is counted for that share)")
    points: list[int] = Field(description="stored energy points in the period (0: no data, actual reads 0)")
    actual: list[float]
    expected: list[float]
    deviation: list[float]
    deviation_pct: list[float | None]
    enpi: list[float | None]
    cusum: list[float] = Field(description="running Σ (actual − expected) from the period's start")
    actual_co2e_kg: list[float]
    expected_co2e_kg: list[float]
    drivers: dict[str, list[float]]


class PerformanceOut(BaseModel):
    site: str
    baseline: str
    baseline_version: int
    model_version: str = Field(description="content hash of the fitted model")
    subject: str
    carrier: str
    resolution: Resolution
    start: datetime
    end: datetime = Field(description="end of the last period shown (periods not yet begun are left out)")
    requested_end: datetime
    units: dict[str, str] = Field(description="unit of each figure: energy, co2e, deviation_pct, enpi, cusum and "
                                  "each driver by its name")
    totals: PerformanceTotals
    series: PerformanceSeries
    intercept_scaled: bool = Field(description="true when the resolution differs from the model's: the intercept "
                                   "is then spread by hours (intercept × period hours / the fit's mean period hours)")


def _opt(values: FloatArray) -> list[float | None]:
    return [None if math.isnan(v) else float(v) for v in values.tolist()]


def _num(value: float) -> float | None:
    return None if math.isnan(value) else value


def expected_energy(b: StoredBaseline, data: Inputs, resolution: Resolution) -> tuple[FloatArray, bool]:
    """The model's energy per period given the actual drivers; at another resolution than the model's the
    intercept is spread by the periods' hours (the driver terms are totals, so they add up exactly), and the
    period under way gets the share of its intercept that has elapsed."""
    try:
        expected = b.model.predict(data.drivers, data.driver_units)
    except (BaselineError, UnitError) as exc:
        raise Invalid(("query", "baseline"), str(exc)) from exc
    scaled = resolution is not b.model.resolution
    if "intercept" in {t.name for t in b.model.terms}:
        share = data.elapsed * (data.hours / b.period_hours if scaled else 1.0)
        expected = expected + b.model.term("intercept").value * (share - 1.0)
    return expected, scaled


def performance(store: StoreReader, plant: Plant, site: str, b: StoredBaseline, resolution: Resolution,
                start: datetime, end: datetime, now: datetime | None = None) -> PerformanceOut:
    """Actual vs expected per period of [start, end) that has begun by `now` (the one under way up to now)."""
    data = read_inputs(store, plant, site, b.spec, resolution, start, end, until=now)
    if data.energy_unit != b.model.energy_unit:
        raise Invalid(("query", "baseline"), f"energy is stored in {data.energy_unit}, the model is in "
                      f"{b.model.energy_unit}")
    expected, scaled = expected_energy(b, data, resolution)
    perf = actual_vs_expected(data.energy, expected, implied_factor(data.energy, data.co2e_kg))
    totals = PerformanceTotals(
        actual_energy=perf.actual_total, expected_energy=perf.expected_total, deviation_energy=perf.deviation_total,
        deviation_pct=_num(perf.deviation_pct_total), enpi=_num(perf.enpi_total),
        actual_co2e_kg=float(perf.actual_co2e_kg.sum()), expected_co2e_kg=float(perf.expected_co2e_kg.sum()),
        deviation_co2e_kg=float(perf.deviation_co2e_kg.sum()))
    series = PerformanceSeries(
        start=list(data.edges[:-1]), hours=data.hours.tolist(), elapsed=data.elapsed.tolist(),
        points=data.points.tolist(),
        actual=perf.actual.tolist(), expected=perf.expected.tolist(), deviation=perf.deviation.tolist(),
        deviation_pct=_opt(perf.deviation_pct), enpi=_opt(perf.enpi), cusum=perf.cusum.tolist(),
        actual_co2e_kg=perf.actual_co2e_kg.tolist(), expected_co2e_kg=perf.expected_co2e_kg.tolist(),
        drivers={k: np.asarray(v).tolist() for k, v in data.drivers.items()})
    units = {"energy": data.energy_unit, "co2e": "kg", "deviation_pct": "%", "enpi": "1",
             "cusum": data.energy_unit, "hours": "h", **{f"driver:{k}": u for k, u in data.driver_units.items()}}
    return PerformanceOut(site=site, baseline=b.id, baseline_version=b.version, model_version=b.model_hash,
                          subject=b.model.subject, carrier=data.carrier, resolution=resolution, start=data.edges[0],
                          end=data.edges[-1], requested_end=end, units=units, totals=totals, series=series,
                          intercept_scaled=scaled)
