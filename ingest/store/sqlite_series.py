"""The SQLite store's series and factor usage, read from its minute, quarter-hour and hour rollups (never the raw
points: a year of 1d buckets costs ~9k hour rows a meter)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from ingest.points import ts_to_us, us_to_dt
from ingest.store.base import FactorUse, SeriesPoint
from ingest.store.buckets import STEPS_S, bucket_start, rollup_for

Query = Callable[[str, Sequence[Any]], list[Any]]


def series(query: Query, site: str, start: datetime, end: datetime, step: str, tz: str) -> list[SeriesPoint]:
    """Per meter and bucket sums (see StoreReader.series)."""
    step_s = STEPS_S[step]
    table = rollup_for(step_s, tz, start, end)
    rows = query(f"SELECT r.bucket_us, r.meter, m.area, m.carrier, f.scope, f.energy_unit, r.energy, r.co2e_kg, "
                 f"r.points, r.est_energy, r.est_co2e_kg FROM {table} r JOIN meters m "
                 f"ON m.site = r.site AND m.meter = r.meter LEFT JOIN factor_refs f ON f.ref = r.factor_ref "
                 f"WHERE r.site = ? AND r.bucket_us >= ? AND r.bucket_us < ?", (site, ts_to_us(start), ts_to_us(end)))
    acc: dict[tuple[datetime, str], list[Any]] = {}
    starts: dict[int, datetime] = {}  # rollup bucket -> series bucket (each rollup bucket comes once per meter)
    for bucket_us, meter, area, carrier, scope, unit, energy, co2e, n, est_energy, est_co2e in rows:
        if bucket_us not in starts:
            starts[bucket_us] = bucket_start(us_to_dt(int(bucket_us)), step_s, tz)
        key = (starts[bucket_us], str(meter))
        a = acc.setdefault(key, [area, carrier, scope or "", unit or "", 0.0, 0.0, 0, 0.0, 0.0])
        a[4] = float(a[4]) + float(energy or 0.0)
        a[5] = float(a[5]) + float(co2e or 0.0)
        a[6] = int(a[6]) + int(n or 0)
        a[7] = float(a[7]) + float(est_energy or 0.0)
        a[8] = float(a[8]) + float(est_co2e or 0.0)
    return [SeriesPoint(b, m, str(a[0]), str(a[1]), str(a[2]), float(a[4]), str(a[3]), float(a[5]), int(a[6]),
                        float(a[7]), float(a[8])) for (b, m), a in sorted(acc.items())]


def factor_usage(query: Query, site: str, start: datetime, end: datetime) -> list[FactorUse]:
    """Factors used in [start, end), from the hour rollups (see StoreReader.factor_usage)."""
    rows = query("SELECT f.factor_id, f.factor_version, MIN(r.bucket_us), MAX(r.bucket_us), SUM(r.points) "
                 "FROM rollup_hour r JOIN factor_refs f ON f.ref = r.factor_ref WHERE r.site = ? "
                 "AND r.bucket_us >= ? AND r.bucket_us < ? AND f.factor_id != '' "
                 "GROUP BY f.factor_id, f.factor_version ORDER BY MIN(r.bucket_us)",
                 (site, ts_to_us(start), ts_to_us(end)))
    return [FactorUse(str(r[0]), str(r[1]), us_to_dt(int(r[2])), us_to_dt(int(r[3])), int(r[4])) for r in rows]
