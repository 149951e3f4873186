"""GET /v1/balance: kg CO2e of a site, area or meter over a period: by area, scope, carrier and meter, location-
and market-based, net of offsets, against the allowance, with the factors used and the data completeness."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from api.accounting import BalanceOut, build_balance
from api.deps import DbDep, HeldDep, HistoryDep, NowDep, SettingsDep, SiteQuery, StoreDep, Viewer, invalid, site_of
from api.errors import NotFound
from api.flows import with_virtual_and_flows
from api.live_rates import live_rates
from api.virtual import is_virtual, virtual_boundary
from calc.periods import AccountingPeriod, PeriodError, resolve
from calc.rate import total_rate

router = APIRouter(prefix="/v1", tags=["balance"])

PeriodQuery = Annotated[str | None, Query(description="today | month | year (site time zone)", max_length=16,
                                          examples=["today"])]
FromQuery = Annotated[datetime | None, Query(alias="from", description="custom start, ISO 8601 with offset",
                                             examples=["2026-11-01T00:00:00Z"])]
ToQuery = Annotated[datetime | None, Query(alias="to", description="custom end (exclusive)",
                                           examples=["2026-12-01T00:00:00Z"])]


def period_of(settings: SettingsDep, now: datetime, period: str | None, start: datetime | None,
              end: datetime | None) -> AccountingPeriod:
    try:
        return resolve(period, start, end, settings.plant.site.timezone, now)
    except PeriodError as exc:
        raise invalid(("query", exc.where), str(exc)) from exc


def check_boundary(settings: SettingsDep, area: str | None, meter: str | None) -> None:
    if area is not None and area not in {m.area for m in settings.plant.meters}:
        raise NotFound(f"no area {area!r}")
    if meter is not None and meter not in settings.plant.meters_by_id and not is_virtual(settings, meter):
        raise NotFound(f"no meter {meter!r}")


@router.get("/balance", responses={404: {"description": "unknown site, area or meter"},
                                   422: {"description": "a period that cannot be understood"}})
def balance(settings: SettingsDep, store: StoreDep, db: DbDep, history: HistoryDep, held: HeldDep, now: NowDep,
            key: Viewer, site: SiteQuery = None, period: PeriodQuery = None, start: FromQuery = None,
            end: ToQuery = None,
            area: Annotated[str | None, Query(description="only this area", max_length=128)] = None,
            meter: Annotated[str | None, Query(description="only this meter", max_length=128)] = None,
            ) -> BalanceOut:
    """Emissions over today, this month, this year or a custom [from, to), in kg CO2e; of each figure what is
    estimated (gaps), and beside it what is held (measured, not counted, waiting for an engineer)."""
    site = site_of(key, settings, site)
    check_boundary(settings, area, meter)
    bounds = period_of(settings, now, period, start, end)
    members = [m.id for m in settings.plant.meters if (area is None or m.area == area)
               and (meter is None or m.id == meter)]
    rate = total_rate(live_rates(settings, store, site, now), members)
    if is_virtual(settings, meter):   # a virtual meter's balance: from the site's (api.virtual)
        assert meter is not None
        whole = build_balance(settings, store, db, history, held, site, bounds, now, 0.0)
        return virtual_boundary(settings, whole, meter)
    out = build_balance(settings, store, db, history, held, site, bounds, now, rate, area, meter)
    return with_virtual_and_flows(settings, store, out, site, bounds.start, bounds.end, now, area, meter)
