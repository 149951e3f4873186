"""GET /v1/history: energy and CO2e series (1 min, 15 min, 1 h, 1 day buckets) per site, area or meter, as JSON
or CSV."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel

from api.deps import HistoryDep, NowDep, SettingsDep, SiteQuery, Viewer, invalid, site_of
from api.routes.balance import FromQuery, PeriodQuery, ToQuery, check_boundary, period_of
from api.store_ext import STEPS_S, HistoryError

router = APIRouter(prefix="/v1", tags=["history"])

MAX_BUCKETS = 20_000


class Bucket(BaseModel):
    start: datetime
    boundary: str
    energy: float
    energy_unit: str
    co2e_kg: float
    points: int


class HistoryOut(BaseModel):
    site: str
    step: str
    group: str
    start: datetime
    end: datetime
    buckets: list[Bucket]


@router.get("/history", response_model=HistoryOut,
            responses={200: {"content": {"text/csv": {}}}, 404: {"description": "unknown boundary"},
                                   422: {"description": "bad period, or too many buckets"}})
def history(settings: SettingsDep, reader: HistoryDep, now: NowDep, key: Viewer, site: SiteQuery = None,
            period: PeriodQuery = None, start: FromQuery = None, end: ToQuery = None,
            step: Annotated[Literal["1m", "15m", "1h", "1d"], Query(description="bucket length")] = "1h",
            group: Annotated[Literal["site", "area", "meter"], Query(description="one series per")] = "site",
            area: Annotated[str | None, Query(description="only this area", max_length=128)] = None,
            meter: Annotated[str | None, Query(description="only this meter", max_length=128)] = None,
            format: Annotated[Literal["json", "csv"], Query(description="json or csv")] = "json",
            ) -> HistoryOut | Response:
    """Sums of energy (in its unit) and kg CO2e per bucket; buckets without data are left out."""
    site = site_of(key, settings, site)
    check_boundary(settings, area, meter)
    bounds = period_of(settings, now, period, start, end)
    if (bounds.end - bounds.start).total_seconds() / STEPS_S[step] > MAX_BUCKETS:
        raise invalid(("query", "step"),
                      f"more than {MAX_BUCKETS} buckets of {step}: use a coarser step or a shorter range")
    try:
        points = reader.series(site, bounds.start, bounds.end, step, settings.plant.site.timezone)
    except HistoryError as exc:
        raise invalid(("query", "step"), str(exc)) from exc
    acc: dict[tuple[datetime, str, str], list[float]] = defaultdict(lambda: [0.0, 0.0, 0])
    for p in points:
        if (area is not None and p.area != area) or (meter is not None and p.meter != meter):
            continue
        name = site if group == "site" else (p.area if group == "area" else p.meter)
        a = acc[(p.start, name, p.energy_unit)]
        a[0] += p.energy
        a[1] += p.co2e_kg
        a[2] += p.points
    buckets = [Bucket(start=s, boundary=b, energy_unit=u, energy=v[0], co2e_kg=v[1], points=int(v[2]))
               for (s, b, u), v in sorted(acc.items())]
    if format == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["start", "boundary", "energy", "energy_unit", "co2e_kg", "points"])
        for b in buckets:
            writer.writerow([b.start.isoformat(), b.boundary, repr(b.energy), b.energy_unit, repr(b.co2e_kg),
                             b.points])
        return Response(out.getvalue(), media_type="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="history-{site}-{step}.csv"'})
    return HistoryOut(site=site, step=step, group=group, start=bounds.start, end=bounds.end, buckets=buckets)
