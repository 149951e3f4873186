"""The InfluxDB store's series, export and generation flows and factor usage, each in a few InfluxQL statements
whatever the number of buckets: `GROUP BY time(step)` cuts the buckets in the database, with `tz('<site zone>')`
for days so they start at the site's local midnight (InfluxDB 1.x shifts each day by the zone's offset on that day,
so DST days have 23 or 25 hours); shorter steps are cut on UTC multiples, as the SQLite store's rollups are.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from calc.generation import Direction, direction_of
from ingest.points import VariableInfo, ts_to_us, us_to_dt
from ingest.store.base import EnergyFlow, FactorUse, MeterTotal, SeriesPoint, VariableTotal
from ingest.store.buckets import DAY_S, STEPS_S, bucket_start
from ingest.store.influx_lines import ql
from ingest.store.variables import Acc, figure

Series = Callable[[str], list[dict[str, Any]]]  # InfluxQL in, the `series` of every result out
HOUR_US = 3_600_000_000


def _where(site: str, start: datetime, end: datetime) -> str:
    return (f"WHERE site = {ql(site)} AND time >= {ts_to_us(start)}u AND time < {ts_to_us(end)}u "
            f"AND energy_unit =~ /./")


def series(run: Series, source: str, site: str, start: datetime, end: datetime, step: str,
           tz: str) -> list[SeriesPoint]:
    """Per meter and bucket sums (see StoreReader.series): one statement for the sums, one for the units."""
    step_s = STEPS_S[step]
    where = _where(site, start, end)
    zone = f" tz({ql(tz)})" if step_s == DAY_S else ""
    sums = run(f"SELECT SUM(energy), SUM(co2e_kg), COUNT(energy), SUM(est_energy), SUM(est_co2e_kg) FROM {source} "
               f"{where} GROUP BY time({step_s}s), meter, area, carrier, scope fill(none){zone}")
    units = {s["tags"]["meter"]: s["values"][0][1] or "" for s in run(
        f"SELECT LAST(energy_unit) FROM {source} {where} GROUP BY meter")}
    acc: dict[tuple[datetime, str], list[Any]] = {}
    for s in sums:
        tags = s["tags"]
        meter = tags["meter"]
        for ts, energy, co2e, n, est_energy, est_co2e in s["values"]:
            key = (bucket_start(us_to_dt(int(ts)), step_s, tz), meter)
            a = acc.setdefault(key, [tags.get("area", ""), tags.get("carrier", ""), set(), 0.0, 0.0, 0, 0.0, 0.0])
            a[2].add(tags.get("scope", ""))
            a[3] += energy or 0.0
            a[4] += co2e or 0.0
            a[5] += int(n or 0)
            a[6] += est_energy or 0.0
            a[7] += est_co2e or 0.0
    return [SeriesPoint(b, m, a[0], a[1], ",".join(sorted(a[2] - {""})), float(a[3]), units.get(m, ""),
                        float(a[4]), int(a[5]), float(a[6]), float(a[7])) for (b, m), a in sorted(acc.items())]


def factor_usage(run: Series, source: str, site: str, start: datetime, end: datetime) -> list[FactorUse]:
    """Factors used in [start, end) by hour (see StoreReader.factor_usage). Factor id and version are fields, which
    InfluxQL cannot group by: one statement finds each meter's hours with a single (id, version), which are
    nearly all of them; the few hours where the factor changed are read point by point."""
    where = _where(site, start, end) + " AND factor_id =~ /./"
    hours = run(f"SELECT COUNT(DISTINCT(factor_id)), COUNT(DISTINCT(factor_version)), FIRST(factor_id), "
                f"FIRST(factor_version), COUNT(energy) FROM {source} {where} GROUP BY time(1h), meter fill(none)")
    use: dict[tuple[str, str], list[int]] = {}  # first hour, last hour (us), points

    def add(fid: str, ver: str, hour_us: int, n: int) -> None:
        u = use.setdefault((fid, ver), [hour_us, hour_us, 0])
        u[0], u[1], u[2] = min(u[0], hour_us), max(u[1], hour_us), u[2] + n

    mixed: list[tuple[str, int]] = []
    for s in hours:
        for ts, ids, vers, fid, ver, n in s["values"]:
            if ids == 1 and vers == 1:
                add(str(fid), str(ver or ""), int(ts), int(n))
            else:
                mixed.append((s["tags"]["meter"], int(ts)))
    for meter, hour_us in mixed:
        lo, hi = max(hour_us, ts_to_us(start)), min(hour_us + HOUR_US, ts_to_us(end))
        for s in run(f"SELECT factor_id, factor_version, energy FROM {source} WHERE site = {ql(site)} "
                     f"AND meter = {ql(meter)} AND time >= {lo}u AND time < {hi}u AND energy_unit =~ /./ "
                     f"AND factor_id =~ /./"):
            for _, fid, ver, energy in s["values"]:
                if energy is not None:
                    add(str(fid), str(ver or ""), hour_us, 1)
    return [FactorUse(fid, ver, us_to_dt(u[0]), us_to_dt(u[1]), u[2])
            for (fid, ver), u in sorted(use.items(), key=lambda kv: (kv[1][0], kv[0]))]


def variables(run: Series, source: str, site: str, start: datetime, end: datetime, step: str | None,
              tz: str) -> list[VariableTotal]:
    """Production counters' and drivers' figures (StoreReader.variable_totals, or variable_series with `step`):
    sums of the fields their points carry, one statement."""
    where = (f"WHERE site = {ql(site)} AND time >= {ts_to_us(start)}u AND time < {ts_to_us(end)}u "
             f"AND \"variable\" =~ /./")
    by = "meter, area, line, \"variable\", measure, quantity, var_unit"
    step_s = STEPS_S[step] if step is not None else None
    if step_s is not None:
        zone = f" tz({ql(tz)})" if step_s == DAY_S else ""
        by = f"time({step_s}s), {by} fill(none){zone}"
    rows = run(f"SELECT SUM(amount), SUM(held), SUM(weighted), SUM(weight_s), COUNT(amount) FROM {source} {where} "
               f"GROUP BY {by}")
    acc: dict[tuple[datetime | None, str], tuple[VariableInfo, Acc]] = {}
    for s in rows:
        tags = s["tags"]
        info = VariableInfo(site, tags.get("area", ""), tags.get("line", ""), tags.get("variable", ""),
                            tags.get("quantity", ""), tags.get("var_unit", ""), tags.get("measure", ""))
        meter = tags["meter"]
        for ts, amount, held, weighted, weight_s, n in s["values"]:
            if not n:
                continue  # another point of the variable's device (a rate gauge), not the variable's quantity
            bucket = bucket_start(us_to_dt(int(ts)), step_s, tz) if step_s is not None else None
            _, a = acc.setdefault((bucket, meter), (info, Acc()))
            a.add(float(amount or 0.0), float(held or 0.0), float(weighted or 0.0), float(weight_s or 0.0), int(n))
    ordered = sorted(acc.items(), key=lambda kv: (kv[0][0] or start, kv[0][1]))
    return [figure(meter, info, a, bucket) for (bucket, meter), (info, a) in ordered]



def flows(run: Series, source: str, imports: Sequence[MeterTotal] | Sequence[SeriesPoint], site: str,
          start: datetime, end: datetime, step: str | None, tz: str) -> list[EnergyFlow]:
    """StoreReader.energy_flows (or energy_flow_series with `step`): import from `imports` (totals or series),
    export and generation summed from the `flow_energy` field of export and generation points."""
    where = (f"WHERE site = {ql(site)} AND time >= {ts_to_us(start)}u AND time < {ts_to_us(end)}u "
             f"AND flow_unit =~ /./")
    step_s = STEPS_S[step] if step is not None else None
    by = "meter, area, carrier, quantity"
    if step_s is not None:
        by = f"time({step_s}s), {by} fill(none)" + (f" tz({ql(tz)})" if step_s == DAY_S else "")
    rows = run(f"SELECT SUM(flow_energy) FROM {source} {where} GROUP BY {by}")
    units = {s["tags"]["meter"]: s["values"][0][1] or "" for s in run(
        f"SELECT LAST(flow_unit) FROM {source} {where} GROUP BY meter")} if rows else {}
    acc: dict[tuple[datetime | None, str], EnergyFlow] = {}
    for t in imports:
        key = (t.start if isinstance(t, SeriesPoint) else None, t.meter)
        acc[key] = EnergyFlow(t.meter, site, t.area, t.carrier, t.energy_unit, t.energy, 0.0, 0.0, key[0])
    for s in rows:
        tags = s["tags"]
        meter, direction = tags["meter"], direction_of(tags.get("quantity", ""))
        for ts, energy in s["values"]:
            bucket = bucket_start(us_to_dt(int(ts)), step_s, tz) if step_s is not None else None
            f = acc.get((bucket, meter)) or EnergyFlow(meter, site, tags.get("area", ""), tags.get("carrier", ""),
                                                       units.get(meter, ""), 0.0, 0.0, 0.0, bucket)
            if direction is Direction.GENERATION:
                f = replace(f, generation_energy=f.generation_energy + float(energy or 0.0))
            else:
                f = replace(f, export_energy=f.export_energy + float(energy or 0.0))
            acc[(bucket, meter)] = f
    return sorted(acc.values(), key=lambda f: (f.start or start, f.meter))
