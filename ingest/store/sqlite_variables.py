"""The SQLite store's production counters and driver variables: their declarations (`variables`), their minute,
quarter-hour and hour rollups from new points, and totals and series read from those (raw points for the ragged
edges of a period, as energy totals are)."""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from operator import itemgetter
from typing import Any

from ingest.points import METER, TS, Batch, Point, VariableInfo, ts_to_us, us_to_dt
from ingest.store.base import VariableTotal
from ingest.store.buckets import STEPS_S, bucket_start, rollup_for
from ingest.store.sqlite_rows import execute_rows
from ingest.store.sqlite_schema import HOUR_US, MINUTE_US, QUARTER_US, VAR_ROLLUPS, plan, resolvable
from ingest.store.variables import Acc, amounts, figure

Query = Callable[[str, Sequence[Any]], list[Any]]
RAW_COLUMNS = "meter, ts_us, quantity, value, unit, delta, interval_s, NULL, NULL, quality, flags, NULL, seq, agent"

_VARIABLE = """
INSERT INTO variables (site, meter, area, line, kind, quantity, unit, measure, samples)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (site, meter) DO UPDATE SET area = excluded.area, line = excluded.line, kind = excluded.kind,
    quantity = excluded.quantity, unit = excluded.unit, measure = excluded.measure,
    samples = samples + excluded.samples
"""
_ROLLUP = "INSERT INTO {table} (site, meter, bucket_us, amount, held, weighted, weight_s, points) VALUES"
_ROLLUP_TAIL = """ON CONFLICT (site, bucket_us, meter) DO UPDATE SET amount = amount + excluded.amount,
    held = held + excluded.held, weighted = weighted + excluded.weighted, weight_s = weight_s + excluded.weight_s,
    points = points + excluded.points"""


def derive(db: sqlite3.Connection, new: Sequence[Point], batch: Batch) -> None:
    """The declarations and rollups of the variables whose points are `new` (same transaction as the points)."""
    counts = Counter(map(itemgetter(METER), new))
    db.executemany(_VARIABLE, [(batch.variables[v].site, v, *batch.variables[v][1:], n) for v, n in counts.items()])
    minute: dict[tuple[str, int], list[float]] = {}
    for p in new:
        info = batch.variables[p[METER]]
        add = amounts(p, info)
        if add is None:
            continue
        a = minute.setdefault((p[METER], p[TS] - p[TS] % MINUTE_US), [0.0, 0.0, 0.0, 0.0, 0])
        for i in range(4):
            a[i] += add[i]
        a[4] += 1
    for table, step in (("var_rollup_minute", MINUTE_US), ("var_rollup_quarter", QUARTER_US),
                        ("var_rollup_hour", HOUR_US)):
        acc: dict[tuple[str, int], list[float]] = {}
        for (v, bucket), sums in minute.items():
            b = acc.setdefault((v, bucket - bucket % step), [0.0, 0.0, 0.0, 0.0, 0])
            for i in range(5):
                b[i] += sums[i]
        execute_rows(db, _ROLLUP.format(table=table),
                     [(batch.variables[v].site, v, bucket, *s[:4], int(s[4])) for (v, bucket), s in acc.items()],
                     _ROLLUP_TAIL)


def declared(query: Query, site: str) -> dict[str, VariableInfo]:
    rows = query("SELECT meter, site, area, line, kind, quantity, unit, measure FROM variables WHERE site = ?",
                 (site,))
    return {str(r[0]): VariableInfo(*(str(c) for c in r[1:])) for r in rows}


def _raw(query: Query, site: str, infos: dict[str, VariableInfo], lo: int, hi: int) -> list[Point]:
    marks = ", ".join("?" for _ in infos)
    return query(f"SELECT {RAW_COLUMNS} FROM points WHERE site = ? AND meter IN ({marks}) AND ts_us >= ? "
                 f"AND ts_us < ?", (site, *infos, lo, hi))


def totals(query: Query, kept: dict[str, int], site: str, start: datetime, end: datetime) -> list[VariableTotal]:
    """Per variable over [start, end): rollups for whole minutes, quarters and hours, raw points for the rest;
    bounds floored where retention deleted the detail (sqlite_schema.resolvable), as energy totals are."""
    infos = declared(query, site)
    raw_from, minute_from = kept.get("points"), kept.get("rollup_minute")
    s_us = resolvable(ts_to_us(start), raw_from, minute_from)
    e_us = resolvable(ts_to_us(end), raw_from, minute_from)
    if e_us <= s_us or not infos:
        return []
    acc: dict[str, Acc] = {}
    for table, lo, hi in plan(s_us, e_us):
        if table == "points":
            for p in _raw(query, site, infos, lo, hi):
                add = amounts(p, infos[p[METER]])
                if add is not None:
                    acc.setdefault(p[METER], Acc()).add(*add, 1)
            continue
        for v, amount, held, weighted, weight_s, n in query(
                f"SELECT meter, SUM(amount), SUM(held), SUM(weighted), SUM(weight_s), SUM(points) "
                f"FROM {VAR_ROLLUPS[table]} WHERE site = ? AND bucket_us >= ? AND bucket_us < ? GROUP BY meter",
                (site, lo, hi)):
            acc.setdefault(v, Acc()).add(amount, held, weighted, weight_s, int(n))
    return [figure(v, infos[v], a) for v, a in sorted(acc.items()) if v in infos]


def series(query: Query, site: str, start: datetime, end: datetime, step: str, tz: str) -> list[VariableTotal]:
    """Per variable and bucket, from the rollups (whole rollup buckets, as energy series are)."""
    infos = declared(query, site)
    step_s = STEPS_S[step]
    table = VAR_ROLLUPS[rollup_for(step_s, tz, start, end)]
    rows = query(f"SELECT bucket_us, meter, amount, held, weighted, weight_s, points FROM {table} "
                 f"WHERE site = ? AND bucket_us >= ? AND bucket_us < ?", (site, ts_to_us(start), ts_to_us(end)))
    acc: dict[tuple[datetime, str], Acc] = {}
    starts: dict[int, datetime] = {}
    for bucket_us, v, amount, held, weighted, weight_s, n in rows:
        if v not in infos:
            continue
        if bucket_us not in starts:
            starts[bucket_us] = bucket_start(us_to_dt(int(bucket_us)), step_s, tz)
        acc.setdefault((starts[bucket_us], str(v)), Acc()).add(amount, held, weighted, weight_s, int(n))
    return [figure(v, infos[v], a, b) for (b, v), a in sorted(acc.items())]
