"""GET /v1/balance: kg CO2e of a site over a period, in total, per area and per meter, with the factors used."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from api.deps import SettingsDep, StoreDep, Viewer, check_site
from api.periods import PeriodError, resolve

router = APIRouter(prefix="/v1", tags=["balance"])


class PeriodOut(BaseModel):
    name: str
    start: datetime
    end: datetime


class MeterBalance(BaseModel):
    meter: str
    area: str
    carrier: str
    scope: str
    energy: float
    energy_unit: str
    co2e_kg: float
    points: int
    factor_ids: list[str]
    factor_versions: list[str]


class AreaBalance(BaseModel):
    area: str
    co2e_kg: float


class BalanceOut(BaseModel):
    site: str
    period: PeriodOut
    co2e_kg: float = Field(description="total emissions of the site over the period, kg CO2e")
    areas: list[AreaBalance]
    meters: list[MeterBalance]
    factor_ids: list[str]


@router.get("/balance")
def balance(
    settings: SettingsDep,
    store: StoreDep,
    key: Viewer,
    site: Annotated[str | None, Query(description="site id (default: this server's site)")] = None,
    period: Annotated[str | None, Query(description="today | month | year (site time zone)")] = None,
    start: Annotated[datetime | None, Query(alias="from", description="custom start, ISO 8601 with offset")] = None,
    end: Annotated[datetime | None, Query(alias="to", description="custom end (exclusive)")] = None,
) -> BalanceOut:
    site = site or settings.plant.site.id
    check_site(key, settings, site)
    try:
        bounds = resolve(period, start, end, settings.plant.site.timezone, datetime.now(UTC))
    except PeriodError as exc:
        raise HTTPException(422, str(exc)) from exc
    totals = store.totals(site, bounds.start, bounds.end)
    areas: dict[str, float] = defaultdict(float)
    for t in totals:
        areas[t.area] += t.co2e_kg
    meters = [MeterBalance(meter=t.meter, area=t.area, carrier=t.carrier, scope=t.scope, energy=t.energy,
                           energy_unit=t.energy_unit, co2e_kg=t.co2e_kg, points=t.points,
                           factor_ids=sorted(t.factor_ids), factor_versions=sorted(t.factor_versions))
              for t in sorted(totals, key=lambda t: t.meter)]
    return BalanceOut(
        site=site,
        period=PeriodOut(name=bounds.name, start=bounds.start, end=bounds.end),
        co2e_kg=sum(t.co2e_kg for t in totals),
        areas=[AreaBalance(area=a, co2e_kg=v) for a, v in sorted(areas.items())],
        meters=meters,
        factor_ids=sorted({f for t in totals for f in t.factor_ids}),
    )
