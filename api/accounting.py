"""The period accounting shared by the balance endpoint and the report (so both always agree): emissions by
meter, area, scope and carrier, location- and market-based (contractual instruments, api.market); offsets; net
balance; allowance; completeness.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from api.activity_counts import Reconciliation
from api.completeness import expected_points, first_readings
from api.flows import FlowsOut
from api.instruments import InstrumentDesk
from api.intensity import IntensityOut, intensities, production_groups
from api.market import TotalsMemo, allocate
from api.meter_register import Uncertainty, with_uncertainty
from api.projection import API_BURN_WINDOW, expected_profile, hourly_history, project_allowance
from api.settings import Settings
from api.standard_coal import coal_book
from api.virtual import VirtualBalance
from calc.balance import TimeRange
from calc.factors import default_factor_set
from calc.periods import AccountingPeriod
from ingest.store.base import HeldReader, HeldTotal, StoreReader
from records.db import ApiDb
from records.ledger import Ledger

BURN_WINDOW = API_BURN_WINDOW  # the fallback while a boundary has no history (api.projection)


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
    co2e_kg: float = Field(description="location-based kg CO2e")
    market_co2e_kg: float | None = Field(default=None, description="market-based kg CO2e (electricity: instruments, "
                                         "then the residual factor; other carriers: their one figure)")
    market_covered_kwh: float | None = Field(default=None, description="kWh covered by contractual instruments")
    points: int
    expected_points: int | None = None
    expected_from: datetime | None = Field(default=None, description="expected samples are counted from here: the "
                                           "period's start, or the meter's first stored reading when it began "
                                           "in the period")
    completeness: float | None = Field(default=None, description="stored counter samples / expected (0..1)")
    factor_ids: list[str]
    factor_versions: list[str]
    estimated_energy: float = Field(default=0.0, description="of `energy`, what is estimated (a gap's energy "
                                    "spread over the gap), in energy_unit")
    estimated_co2e_kg: float = Field(default=0.0, description="of `co2e_kg`, what is estimated")
    held_energy: float = Field(default=0.0, description="energy measured in the period but held, not counted "
                               "(open records; not in `energy`), in held_energy_unit")
    held_energy_unit: str | None = Field(default=None, description="unit of held_energy (the meter's energy unit)")
    held_co2e_kg: float = Field(default=0.0, description="kg CO2e of the open held energy (not in `co2e_kg`)")
    held_records: int = Field(default=0, description="open held records of the meter in the period")
    energy_kgce: float | None = Field(default=None, description="`energy` in kg of standard coal equivalent "
                                      "(GB/T 2589; null: see kgce_refused)")
    kgce_coefficient_id: str | None = Field(default=None, description="the GB/T 2589 coefficient used")
    kgce_version: str | None = Field(default=None, description="<set>@<version>:<row hash> of the coefficient")
    kgce_refused: str | None = Field(default=None, description="why the energy has no kgce")
    factor_energy: float = Field(default=0.0, description="`energy` in the unit its emission factor applies to "
                                 "(natural gas by volume: normal m3 at 0 degC, 101.325 kPa; others: as `energy`)")
    factor_energy_unit: str = Field(default="", description="unit of factor_energy (Nm^3 for natural gas)")
    calibration_overdue: bool = Field(default=False, description="the meter's calibration is overdue now "
                                      "(meter register, 7.1.4)")
    uncertain_co2e_kg: float = Field(default=0.0, description="of `co2e_kg`, what the meter measured while its "
                                     "calibration was overdue")
    source: str = Field(default="meter", description="meter: a live meter; manual: activity entries (api.activity)")


class AreaBalance(BaseModel):
    area: str
    co2e_kg: float
    energy_kgce: float = Field(default=0.0, description="kgce of the area's meters (those with a coefficient)")


class ScopeBalance(BaseModel):
    scope: str
    co2e_kg: float


class CarrierBalance(BaseModel):
    carrier: str
    energy: float
    energy_unit: str
    co2e_kg: float
    estimated_energy: float = Field(default=0.0, description="of `energy`, what is estimated")
    estimated_co2e_kg: float = Field(default=0.0, description="of `co2e_kg`, what is estimated")
    held_energy: float = Field(default=0.0, description="open held energy (not in `energy`), in energy_unit")
    held_co2e_kg: float = Field(default=0.0, description="kg CO2e of it (not in `co2e_kg`)")
    energy_kgce: float = Field(default=0.0, description="kgce of `energy` (meters with a coefficient)")
    kgce_coefficient_ids: list[str] = Field(default_factory=list)
    kgce_versions: list[str] = Field(default_factory=list)
    factor_energy: float = Field(default=0.0, description="`energy` in the unit its emission factor applies to")
    factor_energy_unit: str = Field(default="", description="Nm^3 for natural gas metered by volume, else "
                                    "energy_unit")


class InstrumentUse(BaseModel):
    id: int
    kind: str
    used_kwh: float = Field(description="electricity of the boundary this instrument covers in the period, kWh")
    used_before_kwh: float = Field(description="what the site used of it before the period (not used again), kWh")


class MarketBased(BaseModel):
    co2e_kg: float = Field(description="market-based kg CO2e: instruments cover part of the electricity, the rest "
                           "at the residual factor; other carriers at their location-based figure")
    net_co2e_kg: float = Field(default=0.0, description="market-based co2e_kg − offsets_kg")
    factor_ids: list[str]
    complete: bool = Field(description="false when some meter had no market-based factor")
    covered_kwh: float = Field(default=0.0, description="electricity covered by contractual instruments, kWh")
    residual_kwh: float = Field(default=0.0, description="electricity counted at the residual factor, kWh")
    instruments: list[InstrumentUse] = Field(default_factory=list)


class AllowanceStatus(BaseModel):
    id: int
    scope: str
    target: str | None
    start: datetime
    end: datetime
    allowance_kg: float
    used_kg: float
    rate_kg_per_h: float = Field(description="mean rate of the projection to the period's end: expected kg over "
                                 "the hours left (hour_of_week_profile), or the burn rate over the last 24 h")
    projected_kg: float
    remaining_kg: float
    runs_out_at: datetime | None
    exceeded: bool
    ccer_kg: float = Field(description="unvoided CCER credits of the site dated in the allowance period, kg CO2e")
    ccer_usable_kg: float = Field(description="the part of them that may count against the allowance (capped)")
    ccer_cap_fraction: float = Field(description="cap on CCER as a share of the allowance (factor "
                                     "cn_ccer_offset_cap)")
    projected_over_kg: float = Field(description="projected − allowance − usable CCER (≤ 0: within the allowance)")
    projection_method: str = Field(default="burn_rate", description="hour_of_week_profile: the rest of the period "
                                   "along the boundary's hour-of-week profile of the 28 days before now (whole "
                                   "hours; shifts and weekends as they were), as the live allowance rule projects; "
                                   "burn_rate: no history yet, the last 24 h's mean rate")
    burn_window_h: float | None = Field(default=None, description="the burn rate's window, h (burn_rate only)")


CCER_CAP_FACTOR = "cn_ccer_offset_cap"


def ccer_cap_fraction() -> float:
    """The share of an allowance CCER may offset, from the factor set (5 % in the national ETS)."""
    return default_factor_set().get(CCER_CAP_FACTOR).value


class BalanceOut(BaseModel):
    site: str
    period: PeriodOut
    area: str | None = None
    meter: str | None = None
    co2e_kg: float = Field(description="total emissions over the period, kg CO2e (location-based)")
    co2e_unit: str = "kg"
    market_based: MarketBased
    offsets_kg: float = Field(description="offsets (unvoided entries dated in the period), kg CO2e")
    net_co2e_kg: float = Field(description="co2e_kg − offsets_kg")
    rate_kg_per_h: float = Field(description="live CO2e rate now, kg CO2e/h")
    areas: list[AreaBalance]
    scopes: list[ScopeBalance]
    carriers: list[CarrierBalance]
    meters: list[MeterBalance]
    factor_ids: list[str]
    factor_versions: list[str]
    allowance: AllowanceStatus | None = None
    completeness: float | None = None
    estimated_co2e_kg: float = Field(default=0.0, description="of `co2e_kg`, what is estimated (gaps' energy "
                                     "spread over the gap, flag \"estimated\")")
    held_co2e_kg: float = Field(default=0.0, description="kg CO2e of energy measured in the period but held (open "
                                "records waiting for an engineer; not in `co2e_kg`): see /v1/held")
    held_records: int = Field(default=0, description="open held records in the period")
    energy_kgce: float = Field(default=0.0, description="counted energy in kg of standard coal equivalent "
                               "(GB/T 2589; meters without a coefficient are listed in kgce_refused)")
    kgce_method: str = Field(default="equivalent", description="equivalent (calorific) or equal value")
    kgce_refused: list[str] = Field(default_factory=list, description="meters whose energy has no kgce, and why")
    intensity: list[IntensityOut] = Field(default_factory=list, description="kg CO2e and kgce per unit of product "
                                          "of the site, areas and lines that declare production counters")
    uncertain: Uncertainty | None = Field(default=None, description="energy measured while a meter's "
                                          "calibration was overdue (api.meter_register)")
    manual_co2e_kg: float = Field(default=0.0, description="of `co2e_kg`, what manual activity entries add (their "
                                  "share of the period; source manual in `meters`)")
    manual_share: float | None = Field(default=None, description="manual_co2e_kg / co2e_kg")
    reconciliations: list[Reconciliation] = Field(default_factory=list, description="bills for live meters that "
                                                  "overlap the period: billed vs metered, not added")
    virtual_meters: list[VirtualBalance] = Field(default_factory=list, description="the plant's virtual meters "
                                                 "over the period (api.virtual; not added to the figures above)")
    flows: FlowsOut | None = Field(default=None, description="electricity import, export and generation, net "
                                   "import (api.flows); null when no meter of the boundary exports or generates")


def allowance_status(db: ApiDb, store: StoreReader, history: StoreReader, settings: Settings, site: str,
                     at: datetime, now: datetime, scope: str = "site", target: str | None = None,
                     ) -> AllowanceStatus | None:
    """The newest unvoided allowance of the boundary whose period contains `at`, against emissions up to now."""
    ledger = Ledger(db)
    row = ledger.allowance_at(site, scope, target, at)
    if row is None:
        return None
    start, end = row.start, row.end
    upto = min(now, end)
    totals = [t for t in store.totals(site, start, upto) if _in_boundary(t, scope, target)] if upto > start else []
    used = sum(t.co2e_kg for t in totals)
    profile = expected_profile(hourly_history(history, site, upto, scope, target), settings.plant.site.timezone)
    series: list[tuple[datetime, float]] = []
    series_start = max(start, upto - BURN_WINDOW)
    if profile is None and upto > series_start:
        hourly: dict[datetime, float] = defaultdict(float)
        for point in history.series(site, series_start, upto, "1h", "UTC"):
            if _in_boundary(point, scope, target):
                hourly[point.start + timedelta(hours=1)] += point.co2e_kg
        series = [(min(ts, upto), kg) for ts, kg in hourly.items()]
    # CCER counts against the site's allowance only (credits are entered per site, not per area or meter)
    ccer = ledger.ccer_kg(site, start, end) if scope == "site" else 0.0
    made = project_allowance(used, row.amount_kg, upto, TimeRange(start=start, end=end), profile, series,
                             BURN_WINDOW, ccer_kg=ccer, ccer_cap_fraction=ccer_cap_fraction())
    check = made.check
    p = check.projection
    return AllowanceStatus(id=row.id, scope=scope, target=target, start=start, end=end,
                           allowance_kg=row.amount_kg, used_kg=used, rate_kg_per_h=p.rate_kg_per_h,
                           projected_kg=p.projected_kg, remaining_kg=p.remaining_kg, runs_out_at=p.runs_out_at,
                           exceeded=p.exceeded, ccer_kg=ccer, ccer_usable_kg=check.ccer_usable_kg,
                           ccer_cap_fraction=check.ccer_cap_fraction, projected_over_kg=check.projected_over_kg,
                           projection_method=made.method.value,
                           burn_window_h=made.burn_window / timedelta(hours=1) if made.burn_window else None)


def _in_boundary(t: Any, scope: str, target: str | None) -> bool:
    return scope == "site" or (scope == "area" and t.area == target) or (scope == "meter" and t.meter == target)


def held_in(held: HeldReader, site: str, bounds: AccountingPeriod, area: str | None = None,
            meter: str | None = None) -> dict[str, HeldTotal]:
    """Open held energy per meter of the boundary, of records timed in the period."""
    return {h.meter: h for h in held.held_totals(site, bounds.start, bounds.end)
            if (area is None or h.area == area) and (meter is None or h.meter == meter)}


def build_balance(settings: Settings, store: StoreReader, db: ApiDb, history: StoreReader, held: HeldReader,
                  site: str, bounds: AccountingPeriod, now: datetime, rate_kg_per_h: float, area: str | None = None,
                  meter: str | None = None) -> BalanceOut:
    memo = TotalsMemo(store)
    totals = memo.totals(site, bounds.start, bounds.end)
    if area is not None:
        totals = [t for t in totals if t.area == area]
    if meter is not None:
        totals = [t for t in totals if t.meter == meter]
    holds = held_in(held, site, bounds, area, meter)
    firsts = first_readings(settings, store, site, bounds.start, bounds.end, now)
    book = coal_book(settings, now.date())
    areas: dict[str, float] = defaultdict(float)
    area_kgce: dict[str, float] = defaultdict(float)
    scopes: dict[str, float] = defaultdict(float)
    # (carrier, unit) -> energy, co2e, estimated energy, estimated co2e, held energy, held co2e, kgce, factor energy
    carriers: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0] * 8)
    carrier_coal: dict[tuple[str, str], set[tuple[str, str]]] = defaultdict(set)
    factor_units: dict[tuple[str, str], str] = {}
    energy: dict[tuple[datetime | None, str], tuple[float, float]] = {}
    refused: list[str] = []
    market_total, market_ids, market_complete = 0.0, set(), True
    active = InstrumentDesk(db).active(site)
    allocation = allocate(settings, memo, active, site, bounds.start, bounds.end, now)
    uses: dict[str, float] = defaultdict(float)
    covered = residual = 0.0
    meters = []
    for t in sorted(totals, key=lambda t: t.meter):
        areas[t.area] += t.co2e_kg
        scopes[t.scope or "unknown"] += t.co2e_kg
        h = holds.get(t.meter)
        c = carriers[(t.carrier, t.energy_unit)]
        c[0], c[1] = c[0] + t.energy, c[1] + t.co2e_kg
        c[2], c[3] = c[2] + t.estimated_energy, c[3] + t.estimated_co2e_kg
        coal = book.of(t.meter, t.energy_unit)
        kgce = None if coal.kgce_per_unit is None else t.energy * coal.kgce_per_unit
        if coal.refused:
            refused.append(coal.refused)
        if kgce is not None and coal.coefficient_id and coal.version:
            c[6] += kgce
            area_kgce[t.area] += kgce
            carrier_coal[(t.carrier, t.energy_unit)].add((coal.coefficient_id, coal.version))
        fe, fu = book.factor_energy(t.meter, t.energy, t.energy_unit)
        c[7] += fe
        factor_units[(t.carrier, t.energy_unit)] = fu
        energy[(None, t.meter)] = (t.co2e_kg, kgce or 0.0)
        if h is not None:
            # held energy in the same unit as the counted (the meter's energy unit), else its own carrier row
            hc = c if h.energy_unit == t.energy_unit else carriers[(t.carrier, h.energy_unit)]
            hc[4], hc[5] = hc[4] + h.energy, hc[5] + h.co2e_kg
        figure = allocation.meters.get((t.meter, t.scope))
        market = figure.co2e_kg if figure is not None else None
        if figure is None or market is None:
            market_complete = False
        else:
            market_total += market
            market_ids.update(figure.factor_ids)
            covered, residual = covered + figure.covered_kwh, residual + figure.residual_kwh
            for inst_id, kwh in figure.used_kwh.items():
                uses[inst_id] += kwh
        first = firsts.get(t.meter)
        expected = expected_points(settings, t.meter, bounds.start, bounds.end, now, first)
        meters.append(MeterBalance(meter=t.meter, area=t.area, carrier=t.carrier, scope=t.scope, energy=t.energy,
                                   energy_unit=t.energy_unit, co2e_kg=t.co2e_kg, market_co2e_kg=market,
                                   market_covered_kwh=figure.covered_kwh if market is not None and figure else None,
                                   points=t.points, expected_points=expected,
                                   expected_from=max(bounds.start, first or bounds.start),
                                   completeness=min(1.0, t.points / expected) if expected else None,
                                   factor_ids=sorted(t.factor_ids), factor_versions=sorted(t.factor_versions),
                                   estimated_energy=t.estimated_energy, estimated_co2e_kg=t.estimated_co2e_kg,
                                   held_energy=h.energy if h else 0.0, held_energy_unit=h.energy_unit if h else None,
                                   held_co2e_kg=h.co2e_kg if h else 0.0, held_records=h.records if h else 0,
                                   energy_kgce=kgce, kgce_coefficient_id=coal.coefficient_id,
                                   kgce_version=coal.version, kgce_refused=coal.refused, factor_energy=fe,
                                   factor_energy_unit=fu))
    counted = {t.meter for t in totals}
    for h in sorted(holds.values(), key=lambda h: h.meter):
        if h.meter in counted:
            continue
        # a meter whose only energy in the period is held: a row that says so (nothing counted, all held)
        c = carriers[(h.carrier, h.energy_unit)]
        c[4], c[5] = c[4] + h.energy, c[5] + h.co2e_kg
        meters.append(MeterBalance(meter=h.meter, area=h.area, carrier=h.carrier, scope="", energy=0.0,
                                   energy_unit=h.energy_unit, co2e_kg=0.0, points=0, factor_ids=[],
                                   factor_versions=[], held_energy=h.energy, held_energy_unit=h.energy_unit,
                                   held_co2e_kg=h.co2e_kg, held_records=h.records))
    meters.sort(key=lambda m: m.meter)
    total = sum(t.co2e_kg for t in totals)
    offsets = Ledger(db).offsets_kg(site, bounds.start, bounds.end) if area is None and meter is None else 0.0
    scope, target = ("meter", meter) if meter else (("area", area) if area else ("site", None))
    at = min(now, bounds.end - timedelta(microseconds=1))
    known = [m for m in meters if m.expected_points]
    kinds = {s.instrument.id: s.instrument.kind for s in active}
    out = BalanceOut(
        site=site, period=PeriodOut(name=bounds.name, start=bounds.start, end=bounds.end), area=area, meter=meter,
        co2e_kg=total,
        market_based=MarketBased(
            co2e_kg=market_total, net_co2e_kg=market_total - offsets, factor_ids=sorted(i for i in market_ids if i),
            complete=market_complete,
            covered_kwh=covered, residual_kwh=residual,
            instruments=[InstrumentUse(id=int(i), kind=kinds.get(i, ""), used_kwh=kwh,
                                       used_before_kwh=allocation.before_kwh.get(i, 0.0))
                         for i, kwh in sorted(uses.items(), key=lambda kv: int(kv[0]))]),
        offsets_kg=offsets, net_co2e_kg=total - offsets, rate_kg_per_h=rate_kg_per_h,
        areas=[AreaBalance(area=a, co2e_kg=v, energy_kgce=area_kgce[a]) for a, v in sorted(areas.items())],
        scopes=[ScopeBalance(scope=s, co2e_kg=v) for s, v in sorted(scopes.items())],
        carriers=[CarrierBalance(carrier=c, energy_unit=u, energy=v[0], co2e_kg=v[1], estimated_energy=v[2],
                                 estimated_co2e_kg=v[3], held_energy=v[4], held_co2e_kg=v[5], energy_kgce=v[6],
                                 kgce_coefficient_ids=sorted({i for i, _ in carrier_coal[(c, u)]}),
                                 kgce_versions=sorted({ver for _, ver in carrier_coal[(c, u)]}),
                                 factor_energy=v[7], factor_energy_unit=factor_units.get((c, u), u))
                  for (c, u), v in sorted(carriers.items())],
        meters=meters,
        factor_ids=sorted({f for t in totals for f in t.factor_ids}),
        factor_versions=sorted({f for t in totals for f in t.factor_versions}),
        allowance=allowance_status(db, store, history, settings, site, at, now, scope, target),
        # capped as each meter's is: a sample stamped just after a minute's start can count one interval early
        completeness=min(1.0, sum(m.points for m in known) / sum(m.expected_points or 0 for m in known))
        if known else None,
        estimated_co2e_kg=sum(t.estimated_co2e_kg for t in totals),
        held_co2e_kg=sum(h.co2e_kg for h in holds.values()), held_records=sum(h.records for h in holds.values()),
        energy_kgce=sum(v[6] for v in carriers.values()), kgce_method=book.method.value, kgce_refused=refused,
        intensity=period_intensity(settings, store, site, bounds, energy, area, meter),
    )
    from api.activity_balance import with_manual  # the hook's module builds on this one's models

    # manual entries first: the uncertain share is of every emission the balance counts
    return with_uncertainty(db, store, settings.plant.site.timezone, now,
                            with_manual(out, db, store, site, bounds, area, meter))


def period_intensity(settings: Settings, store: StoreReader, site: str, bounds: AccountingPeriod,
                     energy: dict[tuple[datetime | None, str], tuple[float, float]], area: str | None,
                     meter: str | None) -> list[IntensityOut]:
    """Intensity of the boundaries with declared production over the period (none without production counters)."""
    groups = production_groups(settings.plant, area, meter)
    if not groups:
        return []
    return intensities(settings.plant, groups, energy, store.variable_totals(site, bounds.start, bounds.end))
