"""The SQLite store's export and generation energy (calc.generation): minute and hour sums per meter and direction
from new points (`flow_minute`, `flow_hour`, never pruned: one row per meter, direction and minute at most), the
backfill of export points stored before schema 4, and totals and series read from them.

Figures are cut at whole minutes (a point counts in the minute that holds its time); hours serve the middle of
a long period.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from calc.carriers import BY_NAME
from calc.generation import FLOW_SUFFIXES, Direction, direction_of
from calc.units import UnitError, conversion_factor
from ingest.points import METER, QUANTITY, TS, Batch, Point, ts_to_us, us_to_dt
from ingest.store.base import EnergyFlow, MeterTotal, SeriesPoint
from ingest.store.buckets import STEPS_S, bucket_start, rollup_for
from ingest.store.sqlite_rows import execute_rows
from ingest.store.sqlite_schema import FLOW_TABLES, HOUR_US, MINUTE_US

Query = Callable[[str, Sequence[Any]], list[Any]]
_ROLLUP = "INSERT INTO {table} (site, meter, bucket_us, direction, energy, energy_unit, points) VALUES"
_ROLLUP_TAIL = """ON CONFLICT (site, bucket_us, meter, direction) DO UPDATE SET energy = energy + excluded.energy,
    points = points + excluded.points"""

Sums = dict[tuple[str, str, int, str, str], list[float]]  # (site, meter, minute, direction, unit) -> [energy, n]


def _add(sums: Sums, site: str, meter: str, ts_us: int, quantity: str, energy: float, unit: str) -> None:
    acc = sums.setdefault((site, meter, ts_us - ts_us % MINUTE_US, direction_of(quantity).value, unit), [0.0, 0])
    acc[0] += energy
    acc[1] += 1


def _write(db: sqlite3.Connection, minute: Sums) -> None:
    hour: Sums = {}
    for (site, meter, bucket, direction, unit), (energy, n) in minute.items():
        acc = hour.setdefault((site, meter, bucket - bucket % HOUR_US, direction, unit), [0.0, 0])
        acc[0] += energy
        acc[1] += n
    for table, sums in (("flow_minute", minute), ("flow_hour", hour)):
        execute_rows(db, _ROLLUP.format(table=table),
                     [(site, meter, bucket, direction, energy, unit, int(n))
                      for (site, meter, bucket, direction, unit), (energy, n) in sums.items()], _ROLLUP_TAIL)


def derive(db: sqlite3.Connection, new: Sequence[Point], batch: Batch, site_of: dict[str, str]) -> None:
    """The flow sums of the new points that carry export or generation energy (same transaction as the points)."""
    minute: Sums = {}
    for p in new:
        flow = batch.flows.get((p[METER], p[TS], p[QUANTITY]))
        if flow is not None:
            _add(minute, site_of[p[METER]], p[METER], p[TS], p[QUANTITY], flow[0], flow[1])
    if minute:
        _write(db, minute)


def backfill(db: sqlite3.Connection) -> None:
    """Schema 3 to 4: export points stored before (plain points with a delta, no energy) summed into the flow
    tables, in the meter's energy unit (its factor's, else its carrier's); a unit that does not convert is left
    out, as ingest would have dead-lettered it."""
    for statement in FLOW_TABLES:
        db.execute(statement)
    units = {(str(s), str(m)): str(u) for s, m, u in db.execute(
        "SELECT r.site, r.meter, MIN(f.energy_unit) FROM rollup_hour r JOIN factor_refs f ON f.ref = r.factor_ref "
        "GROUP BY r.site, r.meter")}
    carriers = {(str(s), str(m)): str(c) for s, m, c in db.execute("SELECT site, meter, carrier FROM meters")}
    like = " OR ".join(f"quantity LIKE '%{suffix}'" for suffix in FLOW_SUFFIXES)
    minute: Sums = {}
    for site, meter, ts_us, quantity, unit, delta, flags in db.execute(
            f"SELECT site, meter, ts_us, quantity, unit, delta, flags FROM points "
            f"WHERE delta IS NOT NULL AND ({like})"):
        if "held" in str(flags).split(","):
            continue
        key = (str(site), str(meter))
        carrier = BY_NAME.get(carriers.get(key, ""))
        to_unit = units.get(key) or (carrier.default_unit if carrier is not None else None)
        if to_unit is None:
            continue  # a variable's point, or a meter the store never declared
        try:
            scale = conversion_factor(str(unit), to_unit)
        except UnitError:
            continue
        _add(minute, key[0], key[1], int(ts_us), str(quantity), float(delta) * scale, to_unit)
    if minute:
        _write(db, minute)


_SELECT = ("SELECT meter, bucket_us, direction, energy, energy_unit, points FROM {table} WHERE site = ? "
           "AND bucket_us >= ? AND bucket_us < ?")


def _rows(query: Query, site: str, s_us: int, e_us: int) -> list[Any]:
    """(meter, bucket_us, direction, energy, unit, points) of [s, e): hours in the middle, minutes at the edges."""
    sql = _SELECT
    lo, hi = -(-s_us // HOUR_US) * HOUR_US, e_us - e_us % HOUR_US
    if lo >= hi:
        return query(sql.format(table="flow_minute"), (site, s_us, e_us))
    return [*query(sql.format(table="flow_minute"), (site, s_us, lo)),
            *query(sql.format(table="flow_hour"), (site, lo, hi)),
            *query(sql.format(table="flow_minute"), (site, hi, e_us))]


def flows(query: Query, imports: Sequence[MeterTotal] | Sequence[SeriesPoint], site: str, start: datetime,
          end: datetime, step: str | None = None, tz: str = "UTC") -> list[EnergyFlow]:
    """Per meter (and bucket of `step`): import from the store's totals or series (`imports`), export and generation
    from the flow tables. Sorted by (start, meter)."""
    s_us, e_us = ts_to_us(start), ts_to_us(end)
    step_s = STEPS_S[step] if step is not None else None
    if step_s is not None and rollup_for(step_s, tz, start, end) != "rollup_hour":
        rows = query(_SELECT.format(table="flow_minute"), (site, s_us, e_us))  # buckets finer than hours
    else:
        rows = _rows(query, site, s_us, e_us)
    acc: dict[tuple[datetime | None, str], _Acc] = {}
    for t in imports:
        a = acc.setdefault((t.start if isinstance(t, SeriesPoint) else None, t.meter), _Acc())
        a.energy["import"] += t.energy
        a.unit, a.area, a.carrier = t.energy_unit, t.area, t.carrier
    if rows:
        meta = {str(m): (str(area), str(c)) for m, area, c in query(
            "SELECT meter, area, carrier FROM meters WHERE site = ?", (site,))}
        for meter, bucket_us, direction, energy, unit, _points in rows:
            bucket = bucket_start(us_to_dt(int(bucket_us)), step_s, tz) if step_s is not None else None
            a = acc.setdefault((bucket, str(meter)), _Acc())
            a.energy[Direction(direction).value] += float(energy)
            a.unit = a.unit or str(unit)
            if not a.area:
                a.area, a.carrier = meta.get(str(meter), ("", ""))
    out = [EnergyFlow(meter=m, site=site, area=a.area, carrier=a.carrier, energy_unit=a.unit,
                      import_energy=a.energy["import"], export_energy=a.energy["export"],
                      generation_energy=a.energy["generation"], start=b) for (b, m), a in acc.items()]
    return sorted(out, key=lambda f: (f.start or start, f.meter))


class _Acc:
    __slots__ = ("area", "carrier", "energy", "unit")

    def __init__(self) -> None:
        self.energy = {"import": 0.0, "export": 0.0, "generation": 0.0}
        self.unit = self.area = self.carrier = ""
