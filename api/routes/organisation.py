"""GET /v1/org/...: the organisation roll-up over the sites the caller's key may see: balance, history, period
report, allowances and instruments. Each site's part is what that site's own endpoint answers (the same code,
called with that site's context), so a total is exactly the sum of its sites."""

from __future__ import annotations

from math import fsum
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api.accounting import AllowanceStatus, allowance_status
from api.deps import DbDep, NowDep, OrgDep, Viewer
from api.instruments import InstrumentDesk, InstrumentOut
from api.org import OrgBalanceOut, OrgBucket, OrgTotals, SitePeriod, roll_up, sum_buckets, visible_sites
from api.routes.balance import FromQuery, PeriodQuery, ToQuery, balance
from api.routes.history import HistoryOut, history
from api.routes.reports import ReportOut, period_report

router = APIRouter(prefix="/v1/org", tags=["organisation"])

Page = Annotated[int, Query(ge=1, le=500, description="entries per site")]


class SiteOut(BaseModel):
    id: str
    name: str
    timezone: str
    default: bool = Field(description="the server's own site: what a request without ?site= is about")


@router.get("/sites", responses={404: {"description": "no site visible to this key"}})
def org_sites(org: OrgDep, key: Viewer) -> list[SiteOut]:
    """The sites of this API the key may see (the dashboard's site switcher)."""
    return [SiteOut(id=s.site, name=s.settings.plant.site.name, timezone=s.settings.plant.site.timezone,
                    default=s is org.primary) for s in visible_sites(org, key)]


@router.get("/balance", responses={404: {"description": "no site visible to this key"},
                                   422: {"description": "a period that cannot be understood"}})
def org_balance(org: OrgDep, db: DbDep, now: NowDep, key: Viewer, period: PeriodQuery = None,
                start: FromQuery = None, end: ToQuery = None) -> OrgBalanceOut:
    """Each visible site's /v1/balance for the period (today, month, year: in the site's own time zone; a custom
    [from, to) is the same instants everywhere) and their sum."""
    sites = visible_sites(org, key)
    return roll_up(sites, [balance(s.settings, s.store, db, s.store, s.held, now, key, s.site, period, start, end)
                           for s in sites])


class OrgHistoryOut(BaseModel):
    sites: list[str]
    step: str
    periods: list[SitePeriod]
    buckets: list[OrgBucket] = Field(description="the sites' buckets summed per start instant and energy unit")


@router.get("/history", responses={404: {"description": "no site visible to this key"},
                                   422: {"description": "bad period, or too many buckets"}})
def org_history(org: OrgDep, now: NowDep, key: Viewer, db: DbDep, period: PeriodQuery = None, start: FromQuery = None,
                end: ToQuery = None,
                step: Annotated[Literal["1m", "15m", "1h", "1d"], Query(description="bucket length")] = "1h",
                ) -> OrgHistoryOut:
    """Each visible site's /v1/history (group site), summed bucket by bucket."""
    sites = visible_sites(org, key)
    series, periods = {}, []
    for s in sites:
        out = history(s.settings, s.store, s.held, now, key, db, site=s.site, period=period, start=start, end=end,
                      step=step, group="site", area=None, meter=None, format="json")
        if not isinstance(out, HistoryOut):   # JSON was asked for: anything else is this server's own fault
            raise TypeError(f"/v1/history of {s.site} answered {type(out).__name__}, not JSON")
        series[s.site] = [(b.start, b.energy_unit, b.energy, b.co2e_kg, b.estimated_co2e_kg, b.held_co2e_kg)
                          for b in out.buckets]
        periods.append(SitePeriod(site=s.site, timezone=s.settings.plant.site.timezone, start=out.start,
                                  end=out.end))
    return OrgHistoryOut(sites=[s.site for s in sites], step=step, periods=periods, buckets=sum_buckets(series))


class OrgReportOut(BaseModel):
    sites: list[str]
    periods: list[SitePeriod]
    total: OrgTotals
    by_site: list[ReportOut]


@router.get("/reports/period", responses={404: {"description": "no site visible to this key"}})
def org_report(org: OrgDep, db: DbDep, now: NowDep, key: Viewer, period: PeriodQuery = None,
               start: FromQuery = None, end: ToQuery = None) -> OrgReportOut:
    """Each visible site's period report (JSON; default this month, in the site's zone) and the totals."""
    sites = visible_sites(org, key)
    made = []
    for s in sites:
        out = period_report(s.settings, s.store, db, s.store, s.held, now, key, s.site, period, start, end, "json")
        if not isinstance(out, ReportOut):
            raise TypeError(f"the report of {s.site} answered {type(out).__name__}, not JSON")
        made.append(out)
    rolled = roll_up(sites, [r.balance for r in made])
    return OrgReportOut(sites=rolled.sites, periods=rolled.periods, total=rolled.total, by_site=made)


class SiteAllowance(BaseModel):
    site: str
    status: AllowanceStatus | None = Field(description="the site allowance in force now, against its emissions")


class OrgAllowancesOut(BaseModel):
    sites: list[SiteAllowance]
    allowance_kg: float = Field(description="sum of the site allowances in force now (sites with one)")
    used_kg: float
    projected_kg: float
    remaining_kg: float
    without_allowance: list[str] = Field(description="visible sites with no site allowance in force now")


@router.get("/allowances", responses={404: {"description": "no site visible to this key"}})
def org_allowances(org: OrgDep, db: DbDep, now: NowDep, key: Viewer) -> OrgAllowancesOut:
    """Each visible site's site-wide allowance in force now (as /v1/allowances/{id} shows it) and the sums."""
    sites = visible_sites(org, key)
    rows = [SiteAllowance(site=s.site, status=allowance_status(db, s.store, s.store, s.settings, s.site, now, now))
            for s in sites]
    held = [r.status for r in rows if r.status is not None]
    return OrgAllowancesOut(sites=rows, allowance_kg=fsum(a.allowance_kg for a in held),
                            used_kg=fsum(a.used_kg for a in held), projected_kg=fsum(a.projected_kg for a in held),
                            remaining_kg=fsum(a.remaining_kg for a in held),
                            without_allowance=[r.site for r in rows if r.status is None])


class OrgInstrumentsOut(BaseModel):
    instruments: list[InstrumentOut] = Field(description="each visible site's instruments, voided ones marked")
    quantity_mwh: float = Field(description="MWh of the unvoided ones listed")


@router.get("/instruments", responses={404: {"description": "no site visible to this key"}})
def org_instruments(org: OrgDep, db: DbDep, key: Viewer, limit: Page = 100,
                    offset: Annotated[int, Query(ge=0, le=10**9)] = 0) -> OrgInstrumentsOut:
    """The instruments of every visible site (a serial or contract is counted once across the organisation)."""
    desk = InstrumentDesk(db)
    found = [i for s in visible_sites(org, key) for i in desk.entries(s.site, limit, offset)]
    return OrgInstrumentsOut(instruments=found, quantity_mwh=fsum(i.quantity_mwh for i in found if not i.voided))
