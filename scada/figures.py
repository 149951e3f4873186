"""The figures SCADA serves for each boundary (site, area, meter), computed the way the API's /v1/balance does:
today's and this month's CO2e from the store's totals and manual activity entries, net of the site's offsets, the
allowance remaining, the alert state, the live CO2e rate of calc.rate from the same store reads as the API's (any
carrier), today's and this month's energy in kgce (calc.plant_coal, as the API's) and today's intensity per unit
of product (site and areas with production counters). `compute` is pure; `collect` does the reading.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import IntEnum, StrEnum
from typing import Literal

from calc.balance import intensity
from calc.periods import resolve
from calc.plant import Plant
from calc.plant_coal import CoalBook
from calc.rate import TotalLike, meter_rates
from calc.schema import Quality  # of a figure: GOOD; UNCERTAIN when stale (no new data for stale_after_s) or

#                                   the last value kept after a read error; BAD when not known (no data, no allowance)
from ingest.store.base import MeterTotal, StoreReader, VariableTotal
from ingest.store.variables import combine
from scada.ledger import Allowance, ApiRecords, OpenAlert

FIGURES = ("CO2eRate", "TodayCO2e", "MonthCO2e", "TodayNetBalance", "MonthNetBalance", "AllowanceRemaining",
           "TodayKgce", "MonthKgce", "TodayIntensity", "TodayKgceIntensity")
UNITS = {"CO2eRate": "kg/h", "TodayCO2e": "kg", "MonthCO2e": "kg", "TodayNetBalance": "kg",
         "MonthNetBalance": "kg", "AllowanceRemaining": "kg", "TodayKgce": "kgce", "MonthKgce": "kgce",
         "TodayIntensity": "kg/unit", "TodayKgceIntensity": "kgce/unit"}


class BoundaryKind(StrEnum):
    """What a boundary is: the site, an area or a meter."""

    SITE = "site"
    AREA = "area"
    METER = "meter"


class AlertState(IntEnum):
    """Worst open alert of a boundary (also the Modbus register value)."""

    NONE = 0
    ACKNOWLEDGED = 1
    FIRING = 2


@dataclass(frozen=True, slots=True)
class Boundary:
    kind: BoundaryKind
    id: str
    area: str | None = None      # the area of a meter

    @property
    def key(self) -> str:
        return f"{self.kind.value}:{self.id}"


def boundaries(plant: Plant) -> list[Boundary]:
    """Site first, then areas in order of first appearance, then meters in plant-file order (a stable order)."""
    areas = list(dict.fromkeys(m.area for m in plant.meters))
    return ([Boundary(BoundaryKind.SITE, plant.site.id)] + [Boundary(BoundaryKind.AREA, a) for a in areas]
            + [Boundary(BoundaryKind.METER, m.id, m.area) for m in plant.meters])


@dataclass(frozen=True, slots=True)
class Figure:
    value: float | None
    ts: datetime | None
    quality: Quality


@dataclass(frozen=True, slots=True)
class Figures:
    """What one boundary shows; `figures` is keyed by the names in FIGURES."""

    boundary: Boundary
    figures: Mapping[str, Figure]
    alert_state: AlertState
    active_alerts: int
    alerts_ts: datetime | None


@dataclass(frozen=True)
class Snapshot:
    at: datetime
    today_start: datetime
    month_start: datetime
    items: Mapping[str, Figures] = field(default_factory=dict)   # by boundary key
    version: int = 0


@dataclass(frozen=True, slots=True)
class MeterLive:
    """What the derived stream told about a meter: the time of its latest stored point."""

    last_ts: datetime | None


def period_bounds(tz: str, now: datetime) -> tuple[datetime, datetime, datetime, datetime]:
    """[today start, today end) and [month start, month end) in UTC, cut in the site's time zone, exactly as the
    API's periods (calc.periods.resolve)."""
    today, month = resolve("today", None, None, tz, now), resolve("month", None, None, tz, now)
    return today.start, today.end, month.start, month.end


def _in(b: Boundary, meter: str, area: str) -> bool:
    return (b.kind is BoundaryKind.SITE or (b.kind is BoundaryKind.AREA and area == b.id)
            or (b.kind is BoundaryKind.METER and meter == b.id))


def _scope(b: Boundary) -> tuple[str, str | None]:
    return (b.kind.value, None) if b.kind is BoundaryKind.SITE else (b.kind.value, b.id)


@dataclass(frozen=True, slots=True)
class Inputs:
    """Everything `compute` needs, read at one moment."""

    now: datetime
    today: list[MeterTotal]
    month: list[MeterTotal]
    offsets_today_kg: float
    offsets_month_kg: float
    allowances: Mapping[str, tuple[Allowance, float]]    # boundary key -> (allowance, used kg up to now)
    alerts: list[OpenAlert]
    live: Mapping[str, MeterLive]
    stored_last_ts: Mapping[str, datetime | None]        # meter -> latest stored sample time
    rates: Mapping[str, float] = field(default_factory=dict)   # meter -> live kg CO2e/h (calc.rate)
    kgce_today: Mapping[str, float] = field(default_factory=dict)   # meter -> kgce of today's energy
    kgce_month: Mapping[str, float] = field(default_factory=dict)
    production_today: list[VariableTotal] = field(default_factory=list)   # store.variable_totals of today
    # manual activity entries' shares (calc.activity.manual_totals, as the API's balance): in the site's and their
    # area's CO2e, not in a meter's, nor (as in the API) in intensity
    manual_today: list[MeterTotal] = field(default_factory=list)
    manual_month: list[MeterTotal] = field(default_factory=list)


def _production(plant: Plant, b: Boundary, rows: list[VariableTotal]) -> tuple[float, str] | None:
    """Today's production of a site or area with a production counter: the first declared counter's (quantity,
    unit) group, summed with ingest.store.variables.combine; None for meters and boundaries without one."""
    declared = [v for v in plant.variables if v.kind == "production"
                and (b.kind is BoundaryKind.SITE or (b.kind is BoundaryKind.AREA and v.area == b.id))]
    if b.kind is BoundaryKind.METER or not declared:
        return None
    first = declared[0]
    level: Literal["site", "area"] = "site" if b.kind is BoundaryKind.SITE else "area"
    made = 0.0
    for r in combine([r for r in rows if r.kind == "production"], level):
        if r.variable == b.id and (r.quantity, r.unit) == (first.quantity, first.unit):
            made += r.total or 0.0
    return made, first.unit


def compute(plant: Plant, inputs: Inputs, stale_after_s: float, version: int = 0) -> Snapshot:
    """Figures of every boundary from one consistent set of inputs."""
    now = inputs.now
    t0, _, m0, _ = period_bounds(plant.site.timezone, now)
    items: dict[str, Figures] = {}
    stale = timedelta(seconds=stale_after_s)
    for b in boundaries(plant):
        members = [m for m in plant.meters if _in(b, m.id, m.area)]
        ids = {m.id for m in members}
        seen = [ts for m in members for ts in (_last_ts(inputs, m.id),) if ts is not None]
        last = max(seen) if seen else None
        metered_today = sum(t.co2e_kg for t in inputs.today if _in(b, t.meter, t.area))
        today = metered_today + sum(t.co2e_kg for t in inputs.manual_today if _in(b, t.meter, t.area))
        month = sum(t.co2e_kg for t in (*inputs.month, *inputs.manual_month) if _in(b, t.meter, t.area))
        site = b.kind is BoundaryKind.SITE
        off_today = inputs.offsets_today_kg if site else 0.0
        off_month = inputs.offsets_month_kg if site else 0.0
        totals_q = Quality.GOOD
        rated = [m.id for m in members if m.id in inputs.rates]
        rate_ts = max((ts for m in rated for ts in (_last_ts(inputs, m),) if ts is not None), default=None)
        if rated:
            rate = Figure(sum(inputs.rates[m] for m in rated), rate_ts,
                          Quality.GOOD if rate_ts is not None and now - rate_ts <= stale else Quality.UNCERTAIN)
        else:
            rate = Figure(None, None, Quality.BAD)
        kgce_today = sum(v for m, v in inputs.kgce_today.items() if m in ids)
        kgce_month = sum(v for m, v in inputs.kgce_month.items() if m in ids)
        kgce_q = {name: _coal_quality(rows, counted, ids) for name, rows, counted in (
            ("TodayKgce", inputs.today, inputs.kgce_today), ("MonthKgce", inputs.month, inputs.kgce_month))}
        produced = _production(plant, b, inputs.production_today)
        per_unit = (intensity(metered_today, produced[0], produced[1]).value,
                    intensity(kgce_today, produced[0], produced[1]).value) if produced and produced[0] > 0 else None
        held = inputs.allowances.get(b.key)
        allowance = (Figure(held[0].amount_kg - held[1], last, Quality.GOOD) if held is not None
                     else Figure(None, None, Quality.BAD))
        mine = [a for a in inputs.alerts if (a.scope, a.target if a.scope != "site" else None) == _scope(b)]
        state = (AlertState.FIRING if any(a.state == "firing" for a in mine) else
                 AlertState.ACKNOWLEDGED if mine else AlertState.NONE)
        fired = [datetime.fromisoformat(a.fired_at) for a in mine]
        items[b.key] = Figures(b, {
            "CO2eRate": rate,
            "TodayCO2e": Figure(today, last, totals_q),
            "MonthCO2e": Figure(month, last, totals_q),
            "TodayNetBalance": Figure(today - off_today, last, totals_q),
            "MonthNetBalance": Figure(month - off_month, last, totals_q),
            "AllowanceRemaining": allowance,
            "TodayKgce": Figure(kgce_today if kgce_q["TodayKgce"] is not Quality.BAD else None, last,
                                kgce_q["TodayKgce"]),
            "MonthKgce": Figure(kgce_month if kgce_q["MonthKgce"] is not Quality.BAD else None, last,
                                kgce_q["MonthKgce"]),
            # no production today (or none declared): NaN, quality bad
            "TodayIntensity": Figure(per_unit[0], last, totals_q) if per_unit else Figure(None, None, Quality.BAD),
            "TodayKgceIntensity": (Figure(per_unit[1], last, totals_q) if per_unit
                                   else Figure(None, None, Quality.BAD)),
        }, state, len(mine), max(fired) if fired else None)
    return Snapshot(now, t0, m0, items, version)


def _coal_quality(rows: list[MeterTotal], counted: Mapping[str, float], ids: set[str]) -> Quality:
    """Good when every member meter with energy has its kgce; Uncertain when some lack it (no coefficient, see the
    API's kgce_refused), Bad when none has it."""
    with_energy = {t.meter for t in rows if t.meter in ids and t.energy}
    missing = with_energy - set(counted)
    if not missing:
        return Quality.GOOD
    return Quality.BAD if missing == with_energy else Quality.UNCERTAIN


def _last_ts(inputs: Inputs, meter: str) -> datetime | None:
    live = inputs.live.get(meter)
    stored = inputs.stored_last_ts.get(meter)
    candidates = [ts for ts in (live.last_ts if live else None, stored) if ts is not None]
    return max(candidates) if candidates else None


def collect(plant: Plant, store: StoreReader, ledger: ApiRecords, now: datetime, live: Mapping[str, MeterLive],
            book: CoalBook | None = None, fallback: Iterable[TotalLike] = ()) -> Inputs:
    """Read the store and the API database as the API does for GET /v1/balance?period=today|month. `book` gives
    kgce (none: no kgce figures); `fallback` each meter's current factor for the rate before energy is stored."""
    site = plant.site.id
    t0, t1, m0, m1 = period_bounds(plant.site.timezone, now)
    today = store.totals(site, t0, t1)
    month = store.totals(site, m0, m1)
    allowances: dict[str, tuple[Allowance, float]] = {}
    for b in boundaries(plant):
        scope, target = _scope(b)
        held = ledger.allowance(site, scope, target, now)
        if held is None:
            continue
        upto = min(now, held.end)
        used = (sum(t.co2e_kg for t in store.totals(site, held.start, upto) if _in(b, t.meter, t.area))
                if upto > held.start else 0.0)
        allowances[b.key] = (held, used)
    summaries = {s.meter: s.last_ts for s in store.meter_summaries(site)}
    rates = {m: r.rate_kg_per_h for m, r in meter_rates(store.latest_values(site), today, month,
                                                        fallback).items()}
    kgce_today: dict[str, float] = {}
    kgce_month: dict[str, float] = {}
    if book is not None:
        for rows, into in ((today, kgce_today), (month, kgce_month)):
            for t in rows:
                kg = book.kgce(t.meter, t.energy, t.energy_unit)
                if kg is not None:
                    into[t.meter] = into.get(t.meter, 0.0) + kg
    production = store.variable_totals(site, t0, t1) if any(v.kind == "production" for v in plant.variables) \
        else []
    return Inputs(now=now, today=today, month=month, offsets_today_kg=ledger.offsets_kg(site, t0, t1),
                  offsets_month_kg=ledger.offsets_kg(site, m0, m1), allowances=allowances,
                  alerts=ledger.open_alerts(site), live=dict(live), stored_last_ts=summaries,
                  rates=rates, kgce_today=kgce_today, kgce_month=kgce_month, production_today=production,
                  manual_today=_manual(ledger, site, t0, t1), manual_month=_manual(ledger, site, m0, m1))


def _manual(ledger: ApiRecords, site: str, start: datetime, end: datetime) -> list[MeterTotal]:
    return [MeterTotal(meter=f"manual:{r.carrier}", site=site, area=r.area, carrier=r.carrier, scope=r.scope,
                       energy=r.energy, energy_unit=r.energy_unit, co2e_kg=r.co2e_kg, points=r.entries,
                       factor_ids=tuple(r.factor_ids), factor_versions=tuple(r.factor_versions))
            for r in ledger.manual(site, start, end)]


def changed(old: Snapshot | None, new: Snapshot) -> Iterable[tuple[str, str]]:
    """(boundary key, figure name) pairs whose value or quality differ between two snapshots."""
    for key, figs in new.items.items():
        before = old.items.get(key) if old is not None else None
        for name, fig in figs.figures.items():
            prev = before.figures.get(name) if before is not None else None
            if prev is None or prev.value != fig.value or prev.quality != fig.quality:
                yield key, name
        if before is None or before.alert_state != figs.alert_state or before.active_alerts != figs.active_alerts:
            yield key, "AlertState"
