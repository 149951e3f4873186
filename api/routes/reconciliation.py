"""GET /v1/reconciliation: a main meter against its submeters (a virtual meter written `main - sub-1 - ...`):
per bucket and over the period the main's energy, the submeters' sum, the difference (losses or unmetered load)
in energy and in % of the main, and how complete the figures are."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api.deps import HistoryDep, NowDep, SettingsDep, SiteQuery, Viewer, invalid, site_of
from api.errors import NotFound
from api.routes.balance import FromQuery, PeriodQuery, ToQuery, period_of
from api.virtual import expanded, input_series
from calc.virtual_series import reconcile_virtual
from ingest.store.base import SeriesError
from ingest.store.buckets import STEPS_S

router = APIRouter(prefix="/v1", tags=["reconciliation"])
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_BUCKETS = 20_000


class ReconciliationBucket(BaseModel):
    start: datetime
    main_energy: float
    submetered_energy: float
    difference_energy: float = Field(description="main − Σ submeters: losses or unmetered load (negative: the "
                                     "submeters read more than the main)")
    difference_pct: float | None = Field(description="difference in % of the main (null: the main has no energy)")
    completeness: float = Field(description="0..1, the least complete of the main and its submeters")


class ReconciliationOut(BaseModel):
    site: str
    virtual_meter: str
    main: str
    submeters: list[str]
    start: datetime
    end: datetime
    step: str
    energy_unit: str
    main_energy: float
    submetered_energy: float
    difference_energy: float
    difference_pct: float | None = Field(description="over the period, in % of the main's energy")
    completeness: float = Field(description="the least complete bucket (0 without buckets)")
    buckets: list[ReconciliationBucket]


def _pct(v: float) -> float | None:
    return None if math.isnan(v) else v


@router.get("/reconciliation", responses={404: {"description": "no such virtual meter"},
                                          422: {"description": "bad period, too many buckets, or a virtual meter "
                                                "that is not main − submeters"}})
def reconciliation(settings: SettingsDep, reader: HistoryDep, now: NowDep, key: Viewer,
                   meter: Annotated[str, Query(description="a virtual meter written 'main - sub-1 - sub-2'",
                                               max_length=128)],
                   site: SiteQuery = None, period: PeriodQuery = None, start: FromQuery = None, end: ToQuery = None,
                   step: Annotated[Literal["1m", "15m", "1h", "1d"], Query(description="bucket length")] = "1h",
                   ) -> ReconciliationOut:
    """The main meter of a virtual meter against its submeters: energy unmetered (losses, or a load no submeter
    sees) per bucket and over the period, in energy and in % of the main."""
    site = site_of(key, settings, site)
    resolved = settings.plant.virtual()
    if meter not in resolved:
        raise NotFound(f"no virtual meter {meter!r}")
    res = expanded(resolved[meter])
    plus = [t.meter for t in res.base if t.sign > 0]
    if len(plus) != 1:
        raise invalid(("query", "meter"), f"virtual meter {meter!r} is not 'main - submeters' (it has {len(plus)} "
                      "added meters once expanded; a reconciliation needs one)")
    bounds = period_of(settings, now, period, start, end)
    if (bounds.end - bounds.start).total_seconds() / STEPS_S[step] > MAX_BUCKETS:
        raise invalid(("query", "step"), f"more than {MAX_BUCKETS} buckets of {step}: use a coarser step")
    try:
        inputs = input_series(settings, reader, site, bounds.start, bounds.end, now, step,
                              {t.meter for t in res.base})
    except SeriesError as exc:
        raise invalid(("query", "step"), str(exc)) from exc
    r = reconcile_virtual(res, inputs)
    s = r.series
    buckets = [ReconciliationBucket(start=_EPOCH + timedelta(microseconds=int(us)),
                                    main_energy=float(r.main_energy[i]),
                                    submetered_energy=float(r.submetered_energy[i]),
                                    difference_energy=float(s.energy[i]),
                                    difference_pct=_pct(float(r.difference_pct[i])),
                                    completeness=float(s.completeness[i]))
               for i, us in enumerate(s.start_us)]
    return ReconciliationOut(site=site, virtual_meter=meter, main=plus[0],
                             submeters=[t.meter for t in res.base if t.sign < 0], start=bounds.start, end=bounds.end,
                             step=step, energy_unit=s.energy_unit, main_energy=r.main_total,
                             submetered_energy=r.submetered_total, difference_energy=r.difference_total,
                             difference_pct=_pct(r.difference_pct_total), completeness=r.completeness,
                             buckets=buckets)
