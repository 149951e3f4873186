"""Market-based scope 2 for a period: the site's unvoided instruments cover its electricity through
calc.market.electricity_dual, month by month in time order (meter-scoped instruments first, then area, then site);
what the months before the period used is not used again; the rest is counted at the residual factor. Other
carriers count at their stored (location) figure, as calc.balance does, so both totals cover the same emissions."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from itertools import pairwise
from typing import Protocol
from zoneinfo import ZoneInfo

from api.instruments import Scoped
from api.settings import Settings
from calc.factors import FactorSet, default_factor_set
from calc.market import DualResult, Instrument, electricity_dual
from calc.units import conversion_factor
from ingest.store.base import MeterTotal

TICK = timedelta(microseconds=1)


class TotalsReader(Protocol):
    def totals(self, site: str, start: datetime, end: datetime) -> list[MeterTotal]: ...


class TotalsMemo:
    """The store's totals, each window read once per request: the market-based pass asks again for the window
    the balance itself has just read (a whole period without instruments is a single step)."""

    def __init__(self, store: TotalsReader) -> None:
        self.store = store
        self.seen: dict[tuple[str, datetime, datetime], list[MeterTotal]] = {}

    def totals(self, site: str, start: datetime, end: datetime) -> list[MeterTotal]:
        key = (site, start, end)
        if key not in self.seen:
            self.seen[key] = self.store.totals(site, start, end)
        return self.seen[key]


@dataclass
class MeterMarket:
    """One meter's market-based figure over the period (None when some part of it could not be computed)."""

    co2e_kg: float | None = 0.0
    covered_kwh: float = 0.0
    residual_kwh: float = 0.0
    factor_ids: set[str] = field(default_factory=set)
    used_kwh: dict[str, float] = field(default_factory=lambda: defaultdict(float))   # instrument id -> kWh
    reason: str | None = None


@dataclass
class Allocation:
    meters: dict[tuple[str, str], MeterMarket] = field(default_factory=dict)   # (meter, scope) -> figure
    used_kwh: dict[str, float] = field(default_factory=lambda: defaultdict(float))    # in the period
    before_kwh: dict[str, float] = field(default_factory=lambda: defaultdict(float))  # before the period


def month_steps(start: datetime, end: datetime, tz: ZoneInfo, lo: datetime, hi: datetime, months: int = 1,
                ) -> list[tuple[datetime, datetime]]:
    """[start, end) cut at the site's month starts (every `months` months from January: 12 cuts at years) that lie
    strictly inside (max(start, lo), min(end, hi)): no data exists outside [lo, hi), so no more steps are needed
    there."""
    cuts = [start]
    inner_lo, inner_hi = max(start, lo), min(end, hi)
    if inner_lo < inner_hi:
        local = inner_lo.astimezone(tz)
        index = local.year * 12 + (local.month - 1) // months * months   # months since year 0 of the step's start
        while True:
            index += months
            month = datetime(index // 12, index % 12 + 1, 1, tzinfo=tz)
            if month >= inner_hi:
                break
            cuts.append(month.astimezone(start.tzinfo))
    cuts.append(end)
    return list(pairwise(cuts))


def ordered_for(instruments: Sequence[Scoped], meter: str, area: str) -> list[Instrument]:
    """The instruments a meter may use, most specific boundary first (meter, then area, then site)."""
    return ([s.instrument for s in instruments if s.scope == "meter" and s.target == meter]
            + [s.instrument for s in instruments if s.scope == "area" and s.target == area]
            + [s.instrument for s in instruments if s.scope == "site"])


def _step(settings: Settings, store: TotalsReader, factors: FactorSet, instruments: Sequence[Scoped], site: str,
          a: datetime, b: datetime, used: dict[str, float], out: dict[tuple[str, str], MeterMarket] | None) -> None:
    tz = ZoneInfo(settings.plant.site.timezone)
    first_day, last_day = a.astimezone(tz).date(), (b - TICK).astimezone(tz).date()
    by_id = settings.plant.meters_by_id   # once: Plant.meter() searches the tuple, N² over a plant
    per_kwh: dict[str, DualResult] = {}   # region -> calc.market's figures of 1 kWh without instruments
    for t in sorted(store.totals(site, a, b), key=lambda t: (t.meter, t.scope)):
        figure = out.setdefault((t.meter, t.scope), MeterMarket()) if out is not None else MeterMarket()
        if t.carrier != "electricity":   # scope 1 and heat: the market-based total counts their one figure
            if figure.co2e_kg is not None:
                figure.co2e_kg += t.co2e_kg
            figure.factor_ids.update(t.factor_ids)
            continue
        meter = by_id.get(t.meter)
        if meter is None:
            figure.co2e_kg, figure.reason = None, f"meter {t.meter} is not in the plant"
            continue
        region, own = settings.plant.region_of(meter), ordered_for(instruments, meter.id, meter.area)
        try:
            if own:
                dual = electricity_dual(t.energy, t.energy_unit, factors, region=region, start=first_day,
                                        end=last_day, already_used_kwh=used, instruments=own)
                market_kg, covered_kwh, residual_kwh = dual.market.co2e_kg, dual.covered_kwh, dual.residual_kwh
                factor_ids = dual.market.factor_ids
            else:   # no instrument: linear in the energy, so calc.market's figure of 1 kWh, once per region
                one = per_kwh.get(region)
                if one is None:
                    one = per_kwh[region] = electricity_dual(1.0, "kWh", factors, region=region, start=first_day,
                                                             end=last_day)
                residual_kwh = t.energy * conversion_factor(t.energy_unit, "kWh")
                market_kg, covered_kwh, factor_ids = residual_kwh * one.market.co2e_kg, 0.0, one.market.factor_ids
                dual = None
        except ValueError as exc:   # FactorError, UnitError: no residual factor or a unit that is not energy
            figure.co2e_kg, figure.reason = None, str(exc)
            continue
        for inst_id, kwh in (dual.used_kwh.items() if dual is not None else ()):
            used[inst_id] = used.get(inst_id, 0.0) + kwh
            figure.used_kwh[inst_id] += kwh
        if figure.co2e_kg is not None:
            figure.co2e_kg += market_kg
        figure.covered_kwh += covered_kwh
        figure.residual_kwh += residual_kwh
        figure.factor_ids.update(factor_ids)


def allocate(settings: Settings, store: TotalsReader, instruments: Sequence[Scoped], site: str, start: datetime,
             end: datetime, now: datetime) -> Allocation:
    """Market-based figures of every meter of the site over [start, end), and what each instrument covered."""
    tz = ZoneInfo(settings.plant.site.timezone)
    site_start = settings.plant.site.start
    factors = default_factor_set()
    result = Allocation()
    used: dict[str, float] = {}
    if instruments:
        earliest = min(s.instrument.valid_from for s in instruments)
        prior_lo = max(site_start, datetime.combine(earliest, time(), tz))
        if prior_lo < start:   # replay the months before the period, in order, to know what they used
            for a, b in month_steps(prior_lo, start, tz, prior_lo, min(start, now)):
                _step(settings, store, factors, instruments, site, a, b, used, None)
    result.before_kwh.update(used)
    # Without instruments the market-based figure is energy × residual factor, and residual factors change by
    # the year: cutting at years gives the same figure with one store query a year instead of one a month.
    for a, b in month_steps(start, end, tz, site_start, now, months=1 if instruments else 12):
        _step(settings, store, factors, instruments, site, a, b, used, result.meters)
    for inst_id, kwh in used.items():
        if kwh - result.before_kwh.get(inst_id, 0.0) > 0:
            result.used_kwh[inst_id] = kwh - result.before_kwh.get(inst_id, 0.0)
    return result
