"""Reduction measures (ISO 50001 6.6.2) over records.measures, and a measure's verified savings: from the day
(hour, month) after it took effect to the last whole period before now, the baseline model's expected energy for
the actual drivers less the measured energy (IPMVP option B/C, avoided energy; calc.targets.verified_savings),
read as /v1/performance reads them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field

from api.baselines import BaselineBook, in_force
from api.performance import performance
from api.targets import DocBook
from calc.baseline import Resolution
from calc.performance import implied_factor
from calc.plant import Plant
from calc.targets import verified_savings
from ingest.store.base import StoreReader
from records.db import ApiDb
from records.measures import MeasureDoc, Measures


def measure_book(db: ApiDb) -> DocBook:
    return DocBook(db, Measures(db), "measure")


class SavingsOut(BaseModel):
    baseline: str
    baseline_version: int
    model_version: str = Field(description="content hash of the fitted model")
    resolution: Resolution
    start: datetime = Field(description="first whole period after the measure took effect")
    end: datetime = Field(description="end of the last whole period before now")
    periods: int
    energy_unit: str
    expected_energy: float = Field(description="Σ the model's energy for the actual drivers")
    actual_energy: float
    savings_energy: float = Field(description="expected − actual (avoided energy)")
    savings_pct: float | None = Field(description="100 × savings / expected")
    savings_co2e_kg: float = Field(description="Σ (expected − actual) × each period's stored kg CO2e per unit")
    method: str = "IPMVP option B/C, avoided energy: baseline model (actual drivers) − measured"


def _edge(t: datetime, resolution: Resolution, tz: str, up: bool) -> datetime:
    """The period edge at or after (`up`) or at or before `t`: whole UTC hours, local midnights or months."""
    if resolution is Resolution.HOURLY:
        floor = t.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        return floor + timedelta(hours=1) if up and floor < t else floor
    local = t.astimezone(ZoneInfo(tz))
    day = local.date().replace(day=1) if resolution is Resolution.MONTHLY else local.date()
    floor = datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(tz))
    if not up or floor == t:
        return floor
    if resolution is Resolution.MONTHLY:
        return floor.replace(year=floor.year + (floor.month == 12), month=floor.month % 12 + 1)
    nxt = day + timedelta(days=1)
    return datetime(nxt.year, nxt.month, nxt.day, tzinfo=ZoneInfo(tz))


def measure_savings(store: StoreReader, plant: Plant, baselines: BaselineBook, site: str, doc: MeasureDoc,
                    now: datetime) -> SavingsOut | None:
    """Verified savings of an implemented measure with a baseline; None when it has none, is not implemented,
    or no whole period has passed since it took effect. A baseline that is retired or gone raises NotFound."""
    if doc.baseline_id is None or doc.implemented_at is None or doc.status != "implemented":
        return None
    b = in_force(baselines, site, doc.baseline_id, None)
    resolution = b.model.resolution
    tz = plant.site.timezone
    start, end = _edge(doc.implemented_at, resolution, tz, up=True), _edge(now, resolution, tz, up=False)
    if end <= start:
        return None
    perf = performance(store, plant, site, b, resolution, start, end, now)
    s = perf.series
    saved = verified_savings(s.expected, s.actual, implied_factor(s.actual, s.actual_co2e_kg))
    return SavingsOut(baseline=b.id, baseline_version=b.version, model_version=b.model_hash, resolution=resolution,
                      start=perf.start, end=perf.end, periods=saved.periods, energy_unit=perf.units["energy"],
                      expected_energy=saved.expected_energy, actual_energy=saved.actual_energy,
                      savings_energy=saved.savings_energy, savings_pct=saved.savings_pct,
                      savings_co2e_kg=saved.savings_co2e_kg)
