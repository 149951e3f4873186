"""A SQLite store's per-meter totals over a period: the coarsest rollups that fit whole (hour, quarter hour,
minute) and raw points only for the ragged edges, floored to what retention kept.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ingest.points import ts_to_us
from ingest.store.base import MeterTotal
from ingest.store.sqlite_schema import plan, resolvable
from ingest.store.sqlite_series import Query


def totals(query: Query, kept: dict[str, int], site: str, start: datetime, end: datetime,
           ) -> list[MeterTotal]:
    """Per-meter sums over start <= ts < end: hour rollups for whole hours, quarter-hour and minute rollups
    for the rest, raw points only for the ragged edges (a year costs ~9k hour rows a meter, not 30 M
    points). Where retention deleted the detail, a bound is floored to what is kept (see
    sqlite_schema.resolvable): to the minute once raw points are gone, to the quarter hour once minute
    rollups are; every time zone's days, months and years start on a quarter hour, so their totals stay
    exact for as long as the file exists."""
    raw_from, minute_from = kept.get("points"), kept.get("rollup_minute")
    s_us = resolvable(ts_to_us(start), raw_from, minute_from)
    e_us = resolvable(ts_to_us(end), raw_from, minute_from)
    if e_us <= s_us:
        return []
    acc: dict[str, dict[str, Any]] = {}
    meters = [r[0] for r in query("SELECT meter FROM meters WHERE site = ?", (site,))]
    for table, lo, hi in plan(s_us, e_us):
        if table == "points":
            if not meters:
                continue
            marks = ", ".join("?" for _ in meters)
            rows = query(f"SELECT meter, factor_ref, SUM(energy), SUM(co2e_kg), COUNT(*), "
                               f"TOTAL(iif(instr(flags, 'estimated'), energy, 0)), "
                               f"TOTAL(iif(instr(flags, 'estimated'), co2e_kg, 0)) FROM points "
                               f"WHERE site = ? AND meter IN ({marks}) AND ts_us >= ? AND ts_us < ? "
                               f"AND energy IS NOT NULL GROUP BY meter, factor_ref", (site, *meters, lo, hi))
        else:
            rows = query(f"SELECT meter, factor_ref, SUM(energy), SUM(co2e_kg), SUM(points), "
                               f"SUM(est_energy), SUM(est_co2e_kg) FROM {table} "
                               f"WHERE site = ? AND bucket_us >= ? AND bucket_us < ? GROUP BY meter, factor_ref",
                               (site, lo, hi))
        for meter, ref, energy, co2e, n, est_energy, est_co2e in rows:
            t = acc.setdefault(meter, {"energy": 0.0, "co2e": 0.0, "points": 0, "refs": set(), "est": 0.0,
                                       "est_co2e": 0.0})
            t["energy"] += energy or 0.0
            t["co2e"] += co2e or 0.0
            t["points"] += n
            t["est"] += est_energy or 0.0
            t["est_co2e"] += est_co2e or 0.0
            t["refs"].add(ref or 0)
    if not acc:
        return []
    info = {r[0]: r[1:] for r in query("SELECT meter, area, carrier FROM meters WHERE site = ?", (site,))}
    refs = {r[0]: r[1:] for r in query("SELECT ref, scope, factor_id, factor_version, energy_unit FROM factor_refs",
                                       ())}
    out = []
    for meter, t in sorted(acc.items()):
        area, carrier = info.get(meter, ("", ""))
        used = [refs[r] for r in t["refs"] if r in refs]
        out.append(MeterTotal(meter=meter, site=site, area=area, carrier=carrier,
                              scope=",".join(sorted({u[0] for u in used})), energy=t["energy"],
                              energy_unit=used[0][3] if used else "", co2e_kg=t["co2e"], points=t["points"],
                              factor_ids=tuple(sorted({u[1] for u in used})),
                              factor_versions=tuple(sorted({u[2] for u in used})),
                              estimated_energy=t["est"], estimated_co2e_kg=t["est_co2e"]))
    return out
