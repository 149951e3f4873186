"""The embedded SQLite store: WAL, one transaction per batch, idempotent points, minute and hour rollups.

Ingest writes through one connection; readers (the API, in another process) open their own and read
while it writes. A point's key is (meter, ts, quantity): the same key with the same content is a
duplicate stored once; the same key with different content is a conflict, dead-lettered, never
overwritten.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from ingest.convert import CONTENT_IDX, POINT_COLUMNS, DeadLetter, Point, ts_to_us, us_to_dt, us_to_iso
from ingest.store.base import (
    DeadLetterRecord,
    LatestValue,
    MeterSummary,
    MeterTotal,
    StoreError,
    WriteResult,
)

MINUTE_US = 60_000_000
HOUR_US = 3_600_000_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS points (
    meter TEXT NOT NULL, ts_us INTEGER NOT NULL, quantity TEXT NOT NULL,
    site TEXT NOT NULL, area TEXT NOT NULL, carrier TEXT NOT NULL, scope TEXT NOT NULL, kind TEXT NOT NULL,
    value REAL NOT NULL, unit TEXT NOT NULL, delta REAL, interval_s REAL,
    energy REAL, energy_unit TEXT, co2e_kg REAL, quality TEXT NOT NULL, flags TEXT NOT NULL,
    factor_id TEXT, factor_version TEXT, seq INTEGER NOT NULL, agent TEXT,
    PRIMARY KEY (meter, ts_us, quantity)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollup_minute (
    site TEXT NOT NULL, meter TEXT NOT NULL, bucket_us INTEGER NOT NULL, factor_version TEXT NOT NULL,
    factor_id TEXT NOT NULL, area TEXT NOT NULL, carrier TEXT NOT NULL, scope TEXT NOT NULL,
    energy_unit TEXT NOT NULL, energy REAL NOT NULL, co2e_kg REAL NOT NULL, points INTEGER NOT NULL,
    PRIMARY KEY (site, bucket_us, meter, factor_version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollup_hour (
    site TEXT NOT NULL, meter TEXT NOT NULL, bucket_us INTEGER NOT NULL, factor_version TEXT NOT NULL,
    factor_id TEXT NOT NULL, area TEXT NOT NULL, carrier TEXT NOT NULL, scope TEXT NOT NULL,
    energy_unit TEXT NOT NULL, energy REAL NOT NULL, co2e_kg REAL NOT NULL, points INTEGER NOT NULL,
    PRIMARY KEY (site, bucket_us, meter, factor_version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS latest (
    meter TEXT NOT NULL, quantity TEXT NOT NULL, site TEXT NOT NULL, ts_us INTEGER NOT NULL,
    value REAL NOT NULL, unit TEXT NOT NULL, quality TEXT NOT NULL, flags TEXT NOT NULL,
    PRIMARY KEY (meter, quantity)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meter_stats (
    meter TEXT PRIMARY KEY, site TEXT NOT NULL, area TEXT NOT NULL, carrier TEXT NOT NULL,
    samples INTEGER NOT NULL, last_ts_us INTEGER NOT NULL, last_quality TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS deadletter (
    id INTEGER PRIMARY KEY AUTOINCREMENT, received_us INTEGER NOT NULL, site TEXT NOT NULL, topic TEXT NOT NULL,
    meter TEXT, seq INTEGER, idx INTEGER, reason TEXT NOT NULL, payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS deadletter_site ON deadletter (site, id);
"""

_INSERT_POINT = (f"INSERT OR IGNORE INTO points ({', '.join(POINT_COLUMNS)}) "
                 f"VALUES ({', '.join('?' for _ in POINT_COLUMNS)})")
_ROLLUP_UPSERT = """
INSERT INTO {table} (site, meter, bucket_us, factor_version, factor_id, area, carrier, scope, energy_unit, energy,
                     co2e_kg, points)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (site, bucket_us, meter, factor_version) DO UPDATE SET
    energy = energy + excluded.energy, co2e_kg = co2e_kg + excluded.co2e_kg, points = points + excluded.points
"""
_LATEST_UPSERT = """
INSERT INTO latest (meter, quantity, site, ts_us, value, unit, quality, flags) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (meter, quantity) DO UPDATE SET ts_us = excluded.ts_us, value = excluded.value, unit = excluded.unit,
    quality = excluded.quality, flags = excluded.flags
WHERE excluded.ts_us >= latest.ts_us
"""
_STATS_UPSERT = """
INSERT INTO meter_stats (meter, site, area, carrier, samples, last_ts_us, last_quality) VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (meter) DO UPDATE SET samples = samples + excluded.samples,
    last_quality = CASE WHEN excluded.last_ts_us >= last_ts_us THEN excluded.last_quality ELSE last_quality END,
    last_ts_us = MAX(last_ts_us, excluded.last_ts_us)
"""
_DEAD_INSERT = ("INSERT INTO deadletter (received_us, site, topic, meter, seq, idx, reason, payload) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)")


def _site_of(topic: str) -> str:
    parts = topic.split("/")
    return parts[2] if len(parts) > 2 and "/".join(parts[:2]) == "carbonwatch/v1" else ""


def _dead_rows(dead: Iterable[DeadLetter]) -> list[tuple[Any, ...]]:
    return [(d.received_us, _site_of(d.topic), d.topic, d.meter, d.seq, d.index, d.reason, d.payload) for d in dead]


def _point_json(p: Point) -> bytes:
    doc = dict(zip(POINT_COLUMNS, p, strict=True))
    doc["ts"] = us_to_iso(doc.pop("ts_us"))
    return json.dumps(doc).encode()


class SqliteStore:
    """Writer and reader of one SQLite file (use one instance per process; it serialises its own calls)."""

    def __init__(self, path: Path, synchronous: str = "FULL", retention_days: float | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.retention_days = retention_days
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            self._db.execute("PRAGMA busy_timeout=30000")
            self._db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"sqlite store {self.path}: {exc}") from exc

    # ---- write side -------------------------------------------------------------------------------------

    def write(self, points: Sequence[Point], dead: Sequence[DeadLetter] = ()) -> WriteResult:
        """Store a batch in one transaction: new points, rollups, latest values, dead letters and conflicts."""
        with self._lock:
            try:
                return self._write(points, dead)
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise StoreError(f"sqlite store {self.path}: {exc}") from exc

    def _write(self, points: Sequence[Point], dead: Sequence[DeadLetter]) -> WriteResult:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        new: Sequence[Point] = points
        duplicates = 0
        conflicts: list[DeadLetter] = []
        if points:
            db.execute("SAVEPOINT fast")
            inserted = db.executemany(_INSERT_POINT, points).rowcount
            if inserted == len(points):
                db.execute("RELEASE fast")
            else:  # some keys exist already: redo point by point to tell duplicates from conflicts
                db.execute("ROLLBACK TO fast")
                db.execute("RELEASE fast")
                new, duplicates, conflicts = self._write_slow(points)
        if new:
            self._rollups(new)
        dead_rows = _dead_rows([*dead, *conflicts])
        if dead_rows:
            db.executemany(_DEAD_INSERT, dead_rows)
        db.execute("COMMIT")
        new_keys = None if new is points else frozenset((p[0], p[1], p[2]) for p in new)
        return WriteResult(stored=len(new), duplicates=duplicates, conflicts=len(conflicts),
                           dead_lettered=len(dead_rows), new_keys=new_keys)

    def _write_slow(self, points: Sequence[Point]) -> tuple[list[Point], int, list[DeadLetter]]:
        cols = ", ".join(POINT_COLUMNS[i] for i in CONTENT_IDX)
        select = f"SELECT {cols} FROM points WHERE meter = ? AND ts_us = ? AND quantity = ?"
        new: list[Point] = []
        duplicates = 0
        conflicts: list[DeadLetter] = []
        now_us = int(time.time() * 1_000_000)
        for p in points:
            key = p[0:3]
            row = self._db.execute(select, key).fetchone()
            if row is None:
                self._db.execute(_INSERT_POINT, p)
                new.append(p)
                continue
            content = tuple(p[i] for i in CONTENT_IDX)
            if tuple(row) == content:
                duplicates += 1
                continue
            stored = dict(zip((POINT_COLUMNS[i] for i in CONTENT_IDX), row, strict=True))
            got = dict(zip((POINT_COLUMNS[i] for i in CONTENT_IDX), content, strict=True))
            diff = {k: (stored[k], got[k]) for k in stored if stored[k] != got[k]}
            reason = (f"conflict: meter {p[0]!r} {p[2]} at {us_to_iso(p[1])} is already stored with other "
                      f"content; kept the stored point; differs in " +
                      ", ".join(f"{k}: stored {a!r}, got {b!r}" for k, (a, b) in diff.items()))
            topic = f"carbonwatch/v1/{p[3]}/{p[4]}/{p[0]}/reading"
            conflicts.append(DeadLetter(now_us, topic, _point_json(p), reason, p[0], p[19], None))
        return new, duplicates, conflicts

    def _rollups(self, points: Sequence[Point]) -> None:
        minute: dict[tuple[Any, ...], list[float]] = defaultdict(lambda: [0.0, 0.0, 0])
        hour: dict[tuple[Any, ...], list[float]] = defaultdict(lambda: [0.0, 0.0, 0])
        latest: dict[tuple[str, str], Point] = {}
        stats: dict[str, list[Any]] = {}
        for p in points:
            meter, ts_us, quantity, site, area, carrier, scope = p[0:7]
            energy = p[12]
            if energy is not None:
                tail = (p[18] or "", p[17] or "", area, carrier, scope, p[13])
                acc = minute[(site, meter, ts_us - ts_us % MINUTE_US, *tail)]
                acc[0] += energy
                acc[1] += p[14] or 0.0
                acc[2] += 1
                acc = hour[(site, meter, ts_us - ts_us % HOUR_US, *tail)]
                acc[0] += energy
                acc[1] += p[14] or 0.0
                acc[2] += 1
            prev = latest.get((meter, quantity))
            if prev is None or ts_us >= prev[1]:
                latest[(meter, quantity)] = p
            st = stats.get(meter)
            if st is None:
                stats[meter] = [meter, site, area, carrier, 1, ts_us, p[15]]
            else:
                st[4] += 1
                if ts_us >= st[5]:
                    st[5], st[6] = ts_us, p[15]
        db = self._db
        for table, acc_map in (("rollup_minute", minute), ("rollup_hour", hour)):
            if acc_map:
                db.executemany(_ROLLUP_UPSERT.format(table=table),
                               [(*k, *v) for k, v in acc_map.items()])
        db.executemany(_LATEST_UPSERT, [(p[0], p[2], p[3], p[1], p[8], p[9], p[15], p[16]) for p in latest.values()])
        db.executemany(_STATS_UPSERT, [tuple(v) for v in stats.values()])

    def dead_letter(self, dead: Sequence[DeadLetter]) -> int:
        return self.write((), dead).dead_lettered

    def apply_retention(self, now: datetime) -> int:
        """Delete raw points older than the retention period (rollups stay); returns how many."""
        if self.retention_days is None:
            return 0
        cutoff = ts_to_us(now) - int(self.retention_days * 86_400 * 1_000_000)
        with self._lock:
            meters = [r[0] for r in self._db.execute("SELECT meter FROM meter_stats")]
            deleted = 0
            self._db.execute("BEGIN IMMEDIATE")
            for meter in meters:
                deleted += self._db.execute("DELETE FROM points WHERE meter = ? AND ts_us < ?",
                                            (meter, cutoff)).rowcount
            self._db.execute("COMMIT")
            return deleted

    # ---- read side (StoreReader) ------------------------------------------------------------------------

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"sqlite store {self.path}: {exc}") from exc

    def meter_summaries(self, site: str) -> list[MeterSummary]:
        rows = self._query("SELECT meter, site, area, carrier, last_ts_us, last_quality, samples FROM meter_stats "
                           "WHERE site = ? ORDER BY meter", (site,))
        return [MeterSummary(meter=r[0], site=r[1], area=r[2], carrier=r[3], last_ts=us_to_dt(r[4]),
                             last_quality=r[5], samples=r[6]) for r in rows]

    def latest_values(self, site: str) -> list[LatestValue]:
        rows = self._query("SELECT meter, site, quantity, ts_us, value, unit, quality, flags FROM latest "
                           "WHERE site = ? ORDER BY meter, quantity", (site,))
        return [LatestValue(meter=r[0], site=r[1], quantity=r[2], ts=us_to_dt(r[3]), value=r[4], unit=r[5],
                            quality=r[6], flags=tuple(f for f in r[7].split(",") if f)) for r in rows]

    def dead_letters(self, site: str, limit: int = 100) -> list[DeadLetterRecord]:
        rows = self._query("SELECT id, received_us, topic, meter, seq, idx, reason, payload FROM deadletter "
                           "WHERE site = ? ORDER BY id DESC LIMIT ?", (site, limit))
        return [DeadLetterRecord(id=r[0], received=us_to_dt(r[1]), topic=r[2], meter=r[3], seq=r[4], index=r[5],
                                 reason=r[6], payload=bytes(r[7])) for r in rows]

    def totals(self, site: str, start: datetime, end: datetime) -> list[MeterTotal]:
        """Per-meter sums over start <= ts < end: hour rollups for whole hours, minute rollups for whole
        minutes, raw points for the rest (so a year costs ~9k hour rows, not 30 M points)."""
        s_us, e_us = ts_to_us(start), ts_to_us(end)
        acc: dict[str, dict[str, Any]] = {}
        if e_us <= s_us:
            return []
        for table, lo, hi in _plan(s_us, e_us):
            if table == "points":
                meters = [r[0] for r in self._query("SELECT meter FROM meter_stats WHERE site = ?", (site,))]
                if not meters:
                    continue
                marks = ", ".join("?" for _ in meters)
                sql = (f"SELECT meter, area, carrier, scope, energy_unit, factor_id, factor_version, SUM(energy), "
                       f"SUM(co2e_kg), COUNT(*) FROM points WHERE meter IN ({marks}) AND ts_us >= ? AND ts_us < ? "
                       f"AND site = ? AND energy IS NOT NULL GROUP BY meter, factor_version")
                rows = self._query(sql, (*meters, lo, hi, site))
            else:
                rows = self._query(f"SELECT meter, area, carrier, scope, energy_unit, factor_id, factor_version, "
                                   f"SUM(energy), SUM(co2e_kg), SUM(points) FROM {table} WHERE site = ? "
                                   f"AND bucket_us >= ? AND bucket_us < ? GROUP BY meter, factor_version",
                                   (site, lo, hi))
            for meter, area, carrier, scope, unit, fid, fver, energy, co2e, n in rows:
                t = acc.setdefault(meter, {"area": area, "carrier": carrier, "scope": scope, "unit": unit,
                                           "energy": 0.0, "co2e": 0.0, "points": 0, "fids": set(), "fvers": set()})
                t["energy"] += energy or 0.0
                t["co2e"] += co2e or 0.0
                t["points"] += n
                if fid:
                    t["fids"].add(fid)
                if fver:
                    t["fvers"].add(fver)
        return [MeterTotal(meter=m, site=site, area=t["area"], carrier=t["carrier"], scope=t["scope"],
                           energy=t["energy"], energy_unit=t["unit"], co2e_kg=t["co2e"], points=t["points"],
                           factor_ids=tuple(sorted(t["fids"])), factor_versions=tuple(sorted(t["fvers"])))
                for m, t in sorted(acc.items())]

    def point_count(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM points")[0][0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _ceil(us: int, step: int) -> int:
    return -(-us // step) * step


def _plan(s_us: int, e_us: int) -> list[tuple[str, int, int]]:
    """Split [s, e) into raw, minute and hour slices, coarsest in the middle."""
    s_min, e_min = _ceil(s_us, MINUTE_US), e_us - e_us % MINUTE_US
    if s_min >= e_min:
        return [("points", s_us, e_us)]
    plan = [("points", s_us, s_min), ("points", e_min, e_us)]
    s_hr, e_hr = _ceil(s_min, HOUR_US), e_min - e_min % HOUR_US
    if s_hr >= e_hr:
        plan.append(("rollup_minute", s_min, e_min))
    else:
        plan += [("rollup_minute", s_min, s_hr), ("rollup_minute", e_hr, e_min), ("rollup_hour", s_hr, e_hr)]
    return [p for p in plan if p[1] < p[2]]
