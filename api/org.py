"""The organisation roll-up: the sites a key may see, and the sums of their balances, history buckets, allowances
and instruments. Each site's figure is the one its own endpoint answers; a total is math.fsum of them, nothing else.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from pydantic import BaseModel, Field

from api.accounting import BalanceOut, ScopeBalance
from api.auth import ApiKey
from api.errors import NotFound
from api.sites import Organisation, SiteContext


def visible_sites(org: Organisation, key: ApiKey) -> list[SiteContext]:
    """The organisation's sites the key may see, in the server's order; none is a 404 (as an unknown site)."""
    found = [s for s in org if key.may_see(s.site)]
    if not found:
        raise NotFound("no site of this organisation is visible to this key")
    return found


class SitePeriod(BaseModel):
    site: str
    timezone: str
    start: datetime
    end: datetime


class CarrierTotal(BaseModel):
    carrier: str
    energy: float
    energy_unit: str
    co2e_kg: float


class OrgTotals(BaseModel):
    """Sums over the sites (math.fsum of each site's figure as its own /v1/balance gives it)."""

    co2e_kg: float = Field(description="location-based kg CO2e")
    market_co2e_kg: float = Field(description="market-based kg CO2e")
    offsets_kg: float
    net_co2e_kg: float = Field(description="co2e_kg − offsets_kg")
    market_net_co2e_kg: float = Field(description="market_co2e_kg − offsets_kg")
    rate_kg_per_h: float = Field(description="live CO2e rate now, kg CO2e/h")
    estimated_co2e_kg: float
    held_co2e_kg: float
    held_records: int
    energy_kgce: float
    manual_co2e_kg: float = Field(description="of co2e_kg, what manual activity entries add (api.activity)")
    uncertain_co2e_kg: float = Field(description="of co2e_kg, what meters measured while their calibration was "
                                     "overdue (api.meter_register)")
    scopes: list[ScopeBalance]
    carriers: list[CarrierTotal] = Field(description="per carrier and energy unit (units are never added)")
    factor_versions: list[str] = Field(description="every factor version behind the sites' figures")


class OrgBalanceOut(BaseModel):
    sites: list[str]
    periods: list[SitePeriod] = Field(description="each site's period, resolved in its own time zone")
    total: OrgTotals
    by_site: list[BalanceOut]


def _sum(values: Iterable[float]) -> float:
    return math.fsum(values)


def total_of(balances: list[BalanceOut]) -> OrgTotals:
    scopes: dict[str, list[float]] = defaultdict(list)
    carriers: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for b in balances:
        for s in b.scopes:
            scopes[s.scope].append(s.co2e_kg)
        for c in b.carriers:
            carriers[(c.carrier, c.energy_unit)].append((c.energy, c.co2e_kg))
    co2e = _sum(b.co2e_kg for b in balances)
    market = _sum(b.market_based.co2e_kg for b in balances)
    offsets = _sum(b.offsets_kg for b in balances)
    return OrgTotals(
        co2e_kg=co2e, market_co2e_kg=market, offsets_kg=offsets, net_co2e_kg=co2e - offsets,
        market_net_co2e_kg=market - offsets, rate_kg_per_h=_sum(b.rate_kg_per_h for b in balances),
        estimated_co2e_kg=_sum(b.estimated_co2e_kg for b in balances),
        held_co2e_kg=_sum(b.held_co2e_kg for b in balances), held_records=sum(b.held_records for b in balances),
        energy_kgce=_sum(b.energy_kgce for b in balances),
        manual_co2e_kg=_sum(b.manual_co2e_kg for b in balances),
        uncertain_co2e_kg=_sum(b.uncertain.co2e_kg for b in balances if b.uncertain is not None),
        scopes=[ScopeBalance(scope=k, co2e_kg=_sum(v)) for k, v in sorted(scopes.items())],
        carriers=[CarrierTotal(carrier=c, energy_unit=u, energy=_sum(e for e, _ in v), co2e_kg=_sum(k for _, k in v))
                  for (c, u), v in sorted(carriers.items())],
        factor_versions=sorted({v for b in balances for v in b.factor_versions}))


def roll_up(sites: list[SiteContext], balances: list[BalanceOut]) -> OrgBalanceOut:
    return OrgBalanceOut(
        sites=[s.site for s in sites],
        periods=[SitePeriod(site=s.site, timezone=s.settings.plant.site.timezone, start=b.period.start,
                            end=b.period.end) for s, b in zip(sites, balances, strict=True)],
        total=total_of(balances), by_site=balances)


class OrgBucket(BaseModel):
    start: datetime
    energy: float
    energy_unit: str
    co2e_kg: float
    estimated_co2e_kg: float
    held_co2e_kg: float
    sites: list[str] = Field(description="the sites with data in this bucket")


def sum_buckets(series: dict[str, list[tuple[datetime, str, float, float, float, float]]]) -> list[OrgBucket]:
    """Buckets of the sites summed where they start at the same instant and share an energy unit; a day bucket of
    a site in another time zone starts at another instant and stays its own row (never cut or shifted)."""
    acc: dict[tuple[datetime, str], list[tuple[str, float, float, float, float]]] = defaultdict(list)
    for site, rows in series.items():
        for start, unit, energy, co2e, estimated, held in rows:
            acc[(start, unit)].append((site, energy, co2e, estimated, held))
    return [OrgBucket(start=start, energy_unit=unit, energy=_sum(r[1] for r in rows),
                      co2e_kg=_sum(r[2] for r in rows), estimated_co2e_kg=_sum(r[3] for r in rows),
                      held_co2e_kg=_sum(r[4] for r in rows), sites=sorted({r[0] for r in rows}))
            for (start, unit), rows in sorted(acc.items())]
