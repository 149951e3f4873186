"""The period report's performance section (ISO 50006, clause 9.1): for every baseline in force, actual against
expected over the report's period at the model's resolution: totals, EnPI, the CUSUM and its series, as
/v1/performance gives them. A baseline the period cannot be shown for says why instead."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from api.baselines import BaselineBook
from api.errors import ApiError
from api.performance import PerformanceSeries, PerformanceTotals, performance
from calc.baseline import Resolution
from calc.plant import Plant
from ingest.store.base import StoreReader
from records.db import ApiDb

HTML_ROWS_MAX = 62  # per-period rows in the printable report (a month of days, two of halves); more: see the JSON


class ReportPerformance(BaseModel):
    baseline: str
    baseline_version: int
    model_version: str
    subject: str
    carrier: str
    resolution: Resolution
    units: dict[str, str] = Field(default_factory=dict)
    totals: PerformanceTotals | None = None
    cusum_end: float | None = Field(default=None, description="the CUSUM at the period's end (energy unit)")
    series: PerformanceSeries | None = None
    refused: str | None = Field(default=None, description="why the period cannot be shown for this baseline")


def report_performance(store: StoreReader, db: ApiDb, plant: Plant, site: str, start: datetime, end: datetime,
                       now: datetime) -> list[ReportPerformance]:
    """One entry per baseline in force on the site, in id order."""
    out = []
    for b in sorted(BaselineBook(db).current(site), key=lambda b: b.id):
        entry = ReportPerformance(baseline=b.id, baseline_version=b.version, model_version=b.model_hash,
                                  subject=b.model.subject, carrier=b.model.carrier or "", resolution=b.model.resolution)
        try:
            p = performance(store, plant, site, b, b.model.resolution, start, end, now)
        except ApiError as exc:   # e.g. a monthly model over a period that is not whole months
            out.append(entry.model_copy(update={"refused": str(exc)}))
            continue
        out.append(entry.model_copy(update={"units": p.units, "totals": p.totals, "series": p.series,
                                            "cusum_end": p.series.cusum[-1] if p.series.cusum else None}))
    return out
