"""A baseline's data from the store, per period of its resolution: the target's energy and CO2e of one carrier
(store.series) and each driver (store.variable_series: a counter's total, a temperature's degree-days from its
hourly means, an area's, line's or site's production through ingest.store.variables.combine)."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from api.errors import Invalid
from calc.baseline import Resolution, degree_days
from calc.carriers import BY_NAME
from calc.plant import Plant
from ingest.store.base import SeriesError, StoreReader
from ingest.store.variables import combine
from records.baselines import BaselineSpec, DriverSpec

FloatArray = npt.NDArray[np.float64]
MAX_PERIODS = 20_000          # a bit over two years of hours
DEGREE_DAY_UNIT = "K * d"
STEP = {Resolution.HOURLY: "1h", Resolution.DAILY: "1d", Resolution.MONTHLY: "1d"}


@dataclass(frozen=True, slots=True)
class Inputs:
    """Per period i, [edges[i], edges[i+1]): energy (`energy_unit`), kg CO2e, stored points, hours, the fraction
    of it that has elapsed (1 for a past period; less for the one that holds `until`), drivers."""

    edges: tuple[datetime, ...]
    energy: FloatArray
    co2e_kg: FloatArray
    points: npt.NDArray[np.int64]
    hours: FloatArray
    elapsed: FloatArray
    energy_unit: str
    carrier: str
    drivers: dict[str, FloatArray]
    driver_units: dict[str, str]


def period_edges(resolution: Resolution, start: datetime, end: datetime, tz: str) -> tuple[datetime, ...]:
    """Edges of the periods of `resolution` that tile [start, end): whole UTC hours, local days or local months
    (the site's time zone); a bound that is not on a period's edge is refused (Invalid)."""
    try:
        return _edges(resolution, start, end, tz)
    except Invalid:
        raise
    except (OverflowError, ValueError) as exc:   # bounds at the ends of the calendar
        raise Invalid(("query", "from"), f"period [{start.isoformat()}, {end.isoformat()}): {exc}") from exc


def _edges(resolution: Resolution, start: datetime, end: datetime, tz: str) -> tuple[datetime, ...]:
    zone = ZoneInfo(tz)
    edges: list[datetime] = []
    if resolution is Resolution.HOURLY:
        for where, t in (("from", start), ("to", end)):
            if t.timestamp() % 3600:
                raise Invalid(("query", where), f"{t.isoformat()} is not on a whole hour (hourly resolution)")
        first = int(start.timestamp()) // 3600
        count = (int(end.timestamp()) - int(start.timestamp())) // 3600
        if count > MAX_PERIODS:
            raise Invalid(("query", "to"), f"{count} hours is more than {MAX_PERIODS} periods; shorten the range")
        return tuple(datetime.fromtimestamp((first + k) * 3600, UTC) for k in range(count + 1))
    for where, t in (("from", start), ("to", end)):
        local = t.astimezone(zone)
        if (local.hour, local.minute, local.second, local.microsecond) != (0, 0, 0, 0) or (
                resolution is Resolution.MONTHLY and local.day != 1):
            what = "the first of a month" if resolution is Resolution.MONTHLY else "midnight"
            raise Invalid(("query", where), f"{t.isoformat()} is not {what} in {tz} ({resolution.value} resolution)")
    day = start.astimezone(zone).date()
    last = end.astimezone(zone).date()
    while day < last:
        edges.append(datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC))
        if len(edges) > MAX_PERIODS:
            raise Invalid(("query", "to"), f"more than {MAX_PERIODS} periods; shorten the range")
        if resolution is Resolution.MONTHLY:
            day = day.replace(year=day.year + (day.month == 12), month=day.month % 12 + 1, day=1)
        else:
            day += timedelta(days=1)
    edges.append(end.astimezone(UTC))
    return tuple(edges)


def members(plant: Plant, spec: BaselineSpec) -> tuple[list[str], str]:
    """The target's meters of the baseline's carrier, and that carrier (the only one when the spec names none)."""
    in_scope = [m for m in plant.meters if spec.scope == "site" or (spec.scope == "area" and m.area == spec.target)
                or (spec.scope == "line" and m.line == spec.target) or (spec.scope == "meter" and m.id == spec.target)]
    if not in_scope:
        raise Invalid(("body", "target"), f"no {spec.scope} {spec.target!r} with meters in this plant")
    carriers = sorted({m.carrier.value for m in in_scope})
    carrier = spec.carrier
    if carrier is None:
        if len(carriers) > 1:
            raise Invalid(("body", "carrier"), f"the {spec.scope} has meters of {carriers}: name one carrier")
        carrier = carriers[0]
    if carrier not in carriers:
        raise Invalid(("body", "carrier"), f"the {spec.scope} has no {carrier!r} meter (it has {carriers})")
    return [m.id for m in in_scope if m.carrier.value == carrier], carrier


def _index(edges_s: list[float], t: datetime) -> int:
    """The period that holds `t`, or -1 when none does."""
    i = bisect_right(edges_s, t.timestamp()) - 1
    return i if 0 <= i < len(edges_s) - 1 else -1


def read_inputs(store: StoreReader, plant: Plant, site: str, spec: BaselineSpec, resolution: Resolution,
                start: datetime, end: datetime, until: datetime | None = None) -> Inputs:
    """Energy, CO2e and drivers of `spec` per period of `resolution` over [start, end), from the store; periods
    that start at or after `until` (now) are left out: they have no actual yet."""
    tz = plant.site.timezone
    edges = period_edges(resolution, start, end, tz)
    if until is not None and until < edges[-1]:
        begun = sum(1 for e in edges[:-1] if e < until)   # periods that have started by `until`
        edges = edges[:begun + 1]
    edges_s = [e.timestamp() for e in edges]
    n = len(edges) - 1
    meters, carrier = members(plant, spec)
    wanted = set(meters)
    energy, co2e = np.zeros(n), np.zeros(n)
    points = np.zeros(n, dtype=np.int64)
    units: set[str] = set()
    try:
        for row in store.series(site, edges[0], edges[-1], STEP[resolution], tz):
            i = _index(edges_s, row.start)
            if row.meter in wanted and i >= 0:
                energy[i] += row.energy
                co2e[i] += row.co2e_kg
                points[i] += row.points
                units.add(row.energy_unit)
        drivers, driver_units = _drivers(store, plant, site, spec.drivers, resolution, edges, edges_s)
    except SeriesError as exc:
        raise Invalid(("query", "to"), str(exc)) from exc
    if len(units) > 1:
        raise Invalid(("body", "carrier"), f"the meters' energy is stored in several units {sorted(units)}")
    unit = units.pop() if units else BY_NAME[carrier].default_unit
    hours = np.diff(np.array(edges_s)) / 3600.0
    elapsed = np.ones(n)
    if until is not None and n and until < edges[-1]:
        elapsed[-1] = (until - edges[-2]).total_seconds() / 3600.0 / hours[-1]
    return Inputs(edges, energy, co2e, points, hours, elapsed, unit, carrier, drivers, driver_units)


def _drivers(store: StoreReader, plant: Plant, site: str, specs: tuple[DriverSpec, ...], resolution: Resolution,
             edges: tuple[datetime, ...], edges_s: list[float]) -> tuple[dict[str, FloatArray], dict[str, str]]:
    n = len(edges) - 1
    values: dict[str, FloatArray] = {}
    units: dict[str, str] = {}
    tz = plant.site.timezone
    # one read of the store: hourly when a driver needs hourly means (degree-days), else at the periods' step
    hourly_needed = any(d.transform != "total" for d in specs)
    step = "1h" if hourly_needed else STEP[resolution]
    rows = store.variable_series(site, edges[0], edges[-1], step, tz) if specs else []
    for d in specs:
        column = np.zeros(n)
        if d.production_of is not None:
            group = site if d.production_of == "site" else d.target
            combined = [r for r in combine([r for r in rows if r.kind == "production"], d.production_of)
                        if r.variable == group]
            kinds = {(r.quantity, r.unit) for r in combined}
            if not any(v.kind == "production" and (d.production_of == "site" or
                                                   getattr(v, d.production_of) == d.target) for v in plant.variables):
                raise Invalid(("body", "drivers"), f"{d.name}: no production counter in {d.production_of} "
                              f"{group!r}")
            if len(kinds) > 1:
                raise Invalid(("body", "drivers"), f"{d.name}: the {d.production_of}'s production is counted in "
                              f"several quantities or units {sorted(kinds)}: name one variable")
            unit = next(iter(kinds))[1] if kinds else next(
                v.unit for v in plant.variables if v.kind == "production")
            for r in combined:
                if r.start is not None and (i := _index(edges_s, r.start)) >= 0:
                    column[i] += r.total or 0.0
        else:
            var = plant.variables_by_id.get(d.variable or "")
            if var is None:
                raise Invalid(("body", "drivers"), f"{d.name}: no variable {d.variable!r} in this plant")
            if d.transform == "total":
                if var.measure != "counter":
                    raise Invalid(("body", "drivers"), f"{d.name}: {var.id!r} is a gauge; a gauge enters as "
                                  "degree-days (transform heating_degree_days or cooling_degree_days)")
                for r in rows:
                    if r.variable == var.id and r.start is not None and (i := _index(edges_s, r.start)) >= 0:
                        column[i] += r.total or 0.0
                unit = var.unit
            else:
                base = d.base_c if d.base_c is not None else var.degree_day_base_c
                if base is None:
                    raise Invalid(("body", "drivers"), f"{d.name}: {var.id!r} has no degree_day_base_c; give base_c")
                if var.measure != "gauge":
                    raise Invalid(("body", "drivers"), f"{d.name}: degree-days need a temperature gauge")
                mine = [r for r in rows if r.variable == var.id and r.mean is not None and r.start is not None]
                kind = "heating" if d.transform == "heating_degree_days" else "cooling"
                dd = degree_days([r.mean or 0.0 for r in mine], base_c=base, kind=kind, sample_hours=1.0,
                                 unit=var.unit)
                for r, value in zip(mine, dd, strict=True):
                    if r.start is not None and (i := _index(edges_s, r.start)) >= 0:
                        column[i] += float(value)
                unit = DEGREE_DAY_UNIT
        values[d.name] = column
        units[d.name] = unit
    return values, units
