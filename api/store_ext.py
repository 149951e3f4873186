"""Read methods the API needs beyond `StoreReader` (aggregated series, factor usage over time), as a Protocol
of the API's own, with two implementations: the SQLite store's rollup tables read directly (fast; checked
against the store's schema at start, else not used), and a generic one that asks any `StoreReader` for
`totals` bucket by bucket (bounded number of buckets).

To be replaced by the store's own methods when ingest offers them (asked for in the API report).
"""

from __future__ import annotations

import sqlite3
import threading
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from ingest.store.base import StoreReader

STEPS_S = {"1m": 60, "15m": 900, "1h": 3600, "1d": 86400}
MAX_GENERIC_BUCKETS = 400


class HistoryError(ValueError):
    """A series request the store cannot answer (too many buckets for the generic path)."""


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    start: datetime           # bucket start, UTC (1d buckets start at local midnight)
    meter: str
    area: str
    carrier: str
    scope: str
    energy: float
    energy_unit: str
    co2e_kg: float
    points: int
    estimated_energy: float = 0.0     # of `energy` and `co2e_kg`, what is estimated (flag "estimated")
    estimated_co2e_kg: float = 0.0


@dataclass(frozen=True, slots=True)
class FactorUse:
    factor_id: str
    factor_version: str
    first: datetime
    last: datetime            # start of the last hour bucket that used it
    points: int


class HistoryReader(Protocol):
    def series(self, site: str, start: datetime, end: datetime, step: str, tz: str) -> list[SeriesPoint]: ...

    def factor_usage(self, site: str, start: datetime, end: datetime) -> list[FactorUse]: ...


def _us(ts: datetime) -> int:
    return int(ts.timestamp() * 1_000_000) if ts.utcoffset() is not None else int(
        ts.replace(tzinfo=UTC).timestamp() * 1_000_000)


def _dt(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, UTC)


def bucket_start(ts: datetime, step_s: int, tz: str) -> datetime:
    """Start (UTC) of the bucket of `step_s` that holds `ts`; day buckets start at local midnight in `tz`."""
    return _bucket(ts, step_s, tz)


def _bucket(ts: datetime, step_s: int, tz: str) -> datetime:
    if step_s == 86400:
        local = ts.astimezone(ZoneInfo(tz))
        return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)
    epoch = int(ts.timestamp())
    return datetime.fromtimestamp(epoch - epoch % step_s, UTC)


def _rollup_for(step_s: int, tz: str, start: datetime, end: datetime) -> str:
    """The coarsest rollup whose buckets fit the step's: hours, unless the step or the time zone's days are cut
    at quarter hours (e.g. Asia/Kolkata, +05:30); minutes for 1m steps (kept for the store's minute-rollup
    retention only: older 1m series are empty, 15m ones come from quarter hours, which stay)."""
    if step_s < 900:
        return "rollup_minute"
    zone = ZoneInfo(tz)
    offsets = {zone.utcoffset(t.replace(tzinfo=None)) for t in (start, end)} if step_s == 86400 else set()
    if step_s % 3600 or any(o is not None and o.total_seconds() % 3600 for o in offsets):
        return "rollup_quarter"
    return "rollup_hour"


class SqliteHistory:
    """Series from the SQLite store's minute, quarter-hour and hour rollups (its own read-only connection)."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False, timeout=30.0)
        self.lock = threading.Lock()

    def _rows(self, sql: str, params: tuple[object, ...]) -> list[Any]:
        with self.lock:
            return self.conn.execute(sql, params).fetchall()

    def series(self, site: str, start: datetime, end: datetime, step: str, tz: str) -> list[SeriesPoint]:
        step_s = STEPS_S[step]
        table = _rollup_for(step_s, tz, start, end)
        rows = self._rows(f"SELECT r.bucket_us, r.meter, m.area, m.carrier, f.scope, f.energy_unit, r.energy, "
                          f"r.co2e_kg, r.points, r.est_energy, r.est_co2e_kg FROM {table} r JOIN meters m "
                          f"ON m.site = r.site AND m.meter = r.meter LEFT JOIN factor_refs f ON f.ref = r.factor_ref "
                          f"WHERE r.site = ? AND r.bucket_us >= ? AND r.bucket_us < ?", (site, _us(start), _us(end)))
        acc: dict[tuple[datetime, str], list[Any]] = {}
        for bucket_us, meter, area, carrier, scope, unit, energy, co2e, n, est_energy, est_co2e in rows:
            key = (_bucket(_dt(int(bucket_us)), step_s, tz), str(meter))
            a = acc.setdefault(key, [area, carrier, scope or "", unit or "", 0.0, 0.0, 0, 0.0, 0.0])
            a[4] = float(a[4]) + float(energy or 0.0)
            a[5] = float(a[5]) + float(co2e or 0.0)
            a[6] = int(a[6]) + int(n or 0)
            a[7] = float(a[7]) + float(est_energy or 0.0)
            a[8] = float(a[8]) + float(est_co2e or 0.0)
        return [SeriesPoint(b, m, str(a[0]), str(a[1]), str(a[2]), float(a[4]), str(a[3]), float(a[5]),
                            int(a[6]), float(a[7]), float(a[8])) for (b, m), a in sorted(acc.items())]

    def factor_usage(self, site: str, start: datetime, end: datetime) -> list[FactorUse]:
        rows = self._rows("SELECT f.factor_id, f.factor_version, MIN(r.bucket_us), MAX(r.bucket_us), SUM(r.points) "
                          "FROM rollup_hour r JOIN factor_refs f ON f.ref = r.factor_ref WHERE r.site = ? "
                          "AND r.bucket_us >= ? AND r.bucket_us < ? AND f.factor_id != '' "
                          "GROUP BY f.factor_id, f.factor_version ORDER BY MIN(r.bucket_us)",
                          (site, _us(start), _us(end)))
        return [FactorUse(str(r[0]), str(r[1]), _dt(int(r[2])), _dt(int(r[3])), int(r[4]))
                for r in rows]


class GenericHistory:
    """Series through `StoreReader.totals`, one call per bucket (for stores without rollup access)."""

    def __init__(self, store: StoreReader) -> None:
        self.store = store

    def _buckets(self, start: datetime, end: datetime, step_s: int, tz: str) -> list[tuple[datetime, datetime]]:
        out = []
        cur = _bucket(start, step_s, tz)
        while cur < end:
            nxt = (_bucket(cur + timedelta(hours=26), step_s, tz) if step_s == 86400
                   else cur + timedelta(seconds=step_s))
            out.append((max(cur, start), min(nxt, end)))
            cur = nxt
            if len(out) > MAX_GENERIC_BUCKETS:
                raise HistoryError(f"more than {MAX_GENERIC_BUCKETS} buckets: use a coarser step or a shorter range")
        return out

    def series(self, site: str, start: datetime, end: datetime, step: str, tz: str) -> list[SeriesPoint]:
        out = []
        for lo, hi in self._buckets(start, end, STEPS_S[step], tz):
            for t in self.store.totals(site, lo, hi):
                out.append(SeriesPoint(_bucket(lo, STEPS_S[step], tz), t.meter, t.area, t.carrier, t.scope,
                                       t.energy, t.energy_unit, t.co2e_kg, t.points, t.estimated_energy,
                                       t.estimated_co2e_kg))
        return out

    def factor_usage(self, site: str, start: datetime, end: datetime) -> list[FactorUse]:
        seen: dict[tuple[str, str], list[tuple[datetime, int]]] = defaultdict(list)
        for lo, hi in self._buckets(start, end, 86400, "UTC"):
            for t in self.store.totals(site, lo, hi):
                for fid in t.factor_ids:
                    for ver in t.factor_versions:
                        seen[(fid, ver)].append((lo, t.points))
        out = []
        for (fid, ver), uses in seen.items():
            days = [u[0] for u in uses]
            out.append(FactorUse(fid, ver, min(days), max(days), sum(u[1] for u in uses)))
        return sorted(out, key=lambda f: f.first)


def history_reader(store: StoreReader) -> HistoryReader:
    """The fastest reader that works for this store."""
    path = getattr(store, "path", None)
    if isinstance(path, Path) and path.exists():
        try:
            reader = SqliteHistory(path)
            # the schema this reader knows (rollups keyed by site, meter and factor_ref, with quarter hours and
            # estimated sums: store schema 2); else the generic path
            reader._rows("SELECT r.meter, m.area, f.scope, r.est_energy, r.est_co2e_kg FROM rollup_quarter r "
                         "JOIN meters m ON m.site = r.site AND m.meter = r.meter "
                         "LEFT JOIN factor_refs f ON f.ref = r.factor_ref LIMIT 1", ())
            return reader
        except sqlite3.Error:
            pass
    return GenericHistory(store)
