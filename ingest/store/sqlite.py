"""The embedded SQLite store: WAL, one transaction per batch, idempotent points, minute/quarter/hour rollups.

Ingest writes through one connection; readers (the API, in another process) open their own and read
while it writes; several ingest processes (one per site) may write one file. A point's key is (site,
meter, ts, quantity): the same meter id on two sites is two meters. The same key with the same content
is a duplicate stored once; with different content, a conflict, dead-lettered, never overwritten.
Rollups are added to from the new points of each batch, so they equal the sum of the points (until
retention deletes raw points; the quarter-hour and hour rollups stay for good).

Errors: `StoreError` when the store is not working (locked, disk full, I/O error: retry later),
`StoreDataError` when the batch cannot be stored for what it holds (an integer SQLite cannot bind, a
value it cannot represent); in both cases the transaction is rolled back, nothing is half-written.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from operator import itemgetter
from pathlib import Path
from typing import Any

from ingest.points import (
    CONTENT_NAMES,
    DELTA,
    ENERGY,
    FACTOR,
    METER,
    QUANTITY,
    TS,
    Batch,
    DeadLetter,
    MeterInfo,
    Point,
    ts_to_us,
    us_to_dt,
)
from ingest.store import sqlite_flows, sqlite_held, sqlite_series, sqlite_totals, sqlite_variables
from ingest.store.base import (
    CHUNK_ROWS,
    DeadLetterRecord,
    EnergyFlow,
    FactorUse,
    HeldError,
    HeldRecord,
    HeldStatus,
    HeldTotal,
    LatestValue,
    MeterSummary,
    MeterTotal,
    Pruned,
    SeriesPoint,
    StoreDataError,
    StoreError,
    VariableTotal,
    WriteResult,
)
from ingest.store.conflicts import (
    Seen,
    classify,
    content_of,
    dead_point,
    older_than_kept,
    point_conflict,
    site_of_topic,
)
from ingest.store.sqlite_migrations import SchemaError
from ingest.store.sqlite_retention import Pruner, Retention, kept_from
from ingest.store.sqlite_rows import (
    INSERT_POINT,
    coarser,
    execute_rows,
    insert_points,
    minute_sums,
    minute_sums_of,
)
from ingest.store.sqlite_schema import HOUR_US, QUARTER_US, prepare

_ROLLUP = """INSERT INTO {table} (site, meter, bucket_us, factor_ref, energy, co2e_kg, points, est_energy,
    est_co2e_kg) VALUES"""
_ROLLUP_TAIL = """ON CONFLICT (site, bucket_us, meter, factor_ref) DO UPDATE SET
    energy = energy + excluded.energy, co2e_kg = co2e_kg + excluded.co2e_kg, points = points + excluded.points,
    est_energy = est_energy + excluded.est_energy, est_co2e_kg = est_co2e_kg + excluded.est_co2e_kg"""
_LATEST = """
INSERT OR REPLACE INTO latest (site, meter, quantity, ts_us, value, unit, quality, flags)
SELECT site, meter, quantity, ts_us, value, unit, quality, flags FROM points
WHERE site = ? AND meter = ? AND quantity = ? ORDER BY ts_us DESC LIMIT 1
"""
_METER = """
INSERT INTO meters (site, meter, area, carrier, samples) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (site, meter) DO UPDATE SET area = excluded.area, carrier = excluded.carrier,
    samples = samples + excluded.samples
"""
_DEAD = ("INSERT INTO deadletter (received_us, site, topic, meter, seq, idx, reason, payload) "
         "VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
# sqlite3 errors about the values of a batch (the same batch fails again); every other one is the store's
_DATA_ERRORS = (sqlite3.IntegrityError, sqlite3.DataError, sqlite3.InterfaceError, sqlite3.ProgrammingError)


class SqliteStore:
    """Writer and reader of one SQLite file (use one instance per process; it serialises its own calls)."""

    def __init__(self, path: Path, synchronous: str = "FULL", retention: Retention | None = None) -> None:
        self.path = Path(path)
        self.retention = retention or Retention()
        self._lock = threading.Lock()
        self._known_refs: set[int] = set()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            self._db.execute("PRAGMA busy_timeout=30000")
            prepare(self._db)
        except (sqlite3.Error, OSError, SchemaError) as exc:
            raise StoreError(f"sqlite store {self.path}: {exc}") from exc

    # ---- write side -------------------------------------------------------------------------------------

    def write(self, batch: Batch) -> WriteResult:
        """Store a batch in one transaction: new points, rollups, latest values, dead letters and conflicts.
        Raises only StoreError (retry later) or StoreDataError (the batch's content); either way, nothing
        of the batch is stored."""
        with self._lock:
            try:
                result, refs = self._write(batch)
            except Exception as exc:
                with contextlib.suppress(sqlite3.Error):
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                raise self._error(exc) from exc
            self._known_refs |= refs  # only once committed: a rolled-back batch left no factor rows
            return result

    def _error(self, exc: Exception) -> StoreError | StoreDataError:
        if isinstance(exc, StoreError | StoreDataError):
            return exc
        where = f"sqlite store {self.path}"
        if isinstance(exc, sqlite3.ProgrammingError) and "closed" in str(exc):
            return StoreError(f"{where}: {exc}")
        if isinstance(exc, _DATA_ERRORS):
            return StoreDataError(f"{where} cannot store this batch: {type(exc).__name__}: {exc}")
        if isinstance(exc, sqlite3.Error | OSError | MemoryError):
            return StoreError(f"{where}: {type(exc).__name__}: {exc}")
        # OverflowError (an integer of 2^63 or more), a point of a meter the batch does not describe, a value
        # of the wrong type: the batch's own content, and the same batch would fail again
        return StoreDataError(f"{where} cannot store this batch: {type(exc).__name__}: {exc}")

    def _write(self, batch: Batch) -> tuple[WriteResult, set[int]]:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        points = self._within_retention(batch) if batch.points else batch.points
        site_of = batch.site_of()
        new: Sequence[Point] = points
        duplicates = 0
        conflicts: list[DeadLetter] = []
        if points:
            db.execute("SAVEPOINT fast")
            if insert_points(db, points, site_of) == len(points):
                db.execute("RELEASE fast")
            else:  # some keys exist already: redo point by point to tell duplicates from conflicts
                db.execute("ROLLBACK TO fast")
                db.execute("RELEASE fast")
                new, duplicates, conflicts = self._write_slow(batch, site_of)
        refs = self._derived(new, batch, site_of) if new else set()
        held = held_dups = 0
        if batch.held:
            held, held_dups, held_conflicts = sqlite_held.write_held(db, batch, int(time.time() * 1_000_000))
            conflicts += held_conflicts
        dead = [*batch.dead, *conflicts]
        if dead:
            db.executemany(_DEAD, [(d.received_us, site_of_topic(d.topic), d.topic, d.meter, d.seq, d.index, d.reason,
                                    d.payload) for d in dead])
        db.execute("COMMIT")
        new_keys = None if new is points else frozenset((p[METER], p[TS], p[QUANTITY]) for p in new)
        return WriteResult(stored=len(new), duplicates=duplicates + held_dups, conflicts=len(conflicts),
                           dead_lettered=len(dead), new_keys=new_keys, held=held), refs

    def _within_retention(self, batch: Batch) -> list[Point]:
        """Points older than the raw points retention kept: a replay of one could not be told from a new
        reading (its twin is deleted) and would be counted twice, so they are not counted: a counted delta is
        held (an engineer decides), anything else is dead-lettered."""
        row = self._db.execute("SELECT from_us FROM kept_from WHERE tbl = 'points'").fetchone()
        if row is None or min(p[TS] for p in batch.points) >= row[0]:
            return batch.points
        cutoff = int(row[0])
        now_us = int(time.time() * 1_000_000)
        keep = []
        for p in batch.points:
            if p[TS] >= cutoff:
                keep.append(p)
                continue
            reason = older_than_kept(p[TS], cutoff)
            if p[DELTA] is not None and p[ENERGY] is not None:
                factor = batch.factors.get(p[FACTOR]) if p[FACTOR] is not None else None
                batch.held.append(sqlite_held.held_of(p, factor.energy_unit if factor else "", reason, now_us))
                continue
            batch.dead.append(dead_point(now_us, p, batch, reason))
        batch.points = keep
        batch.counted = None  # the columns described the points before; the slow sums go by the rows
        return keep

    def _write_slow(self, batch: Batch, site_of: dict[str, str]) -> tuple[list[Point], int, list[DeadLetter]]:
        select = (f"SELECT {', '.join(CONTENT_NAMES)} FROM points "
                  f"WHERE site = ? AND meter = ? AND ts_us = ? AND quantity = ?")
        new: list[Point] = []
        duplicates = 0
        conflicts: list[DeadLetter] = []
        now_us = int(time.time() * 1_000_000)
        for p in batch.points:
            site = site_of[p[METER]]
            row = self._db.execute(select, (site, p[METER], p[TS], p[QUANTITY])).fetchone()
            if row is None:
                self._db.execute(INSERT_POINT, (site, *p))
                new.append(p)
                continue
            if classify(row, content_of(p)) is Seen.DUPLICATE:
                duplicates += 1
            else:
                conflicts.append(dead_point(now_us, p, batch, point_conflict(p, row)))
        return new, duplicates, conflicts

    def _derived(self, new: Sequence[Point], batch: Batch, site_of: dict[str, str]) -> set[int]:
        """Meters, factor references, rollups and latest values, from the new points (same transaction);
        returns the factor references it added."""
        db = self._db
        if batch.variables:  # production counters and drivers: their own declarations and rollups
            variables = [p for p in new if p[METER] in batch.variables]
            if variables:
                sqlite_variables.derive(db, variables, batch)
                db.executemany(_LATEST, [(site_of[m], m, q) for m, q in set(map(itemgetter(METER, QUANTITY),
                                                                                 variables))])
                new = [p for p in new if p[METER] not in batch.variables]
                if not new:
                    return set()
        if batch.flows:  # export and generation energy, by direction (never CO2e)
            sqlite_flows.derive(db, new, batch, site_of)
        counts = Counter(map(itemgetter(METER), new))  # map/itemgetter: the loop stays in C
        db.executemany(_METER, [(site_of[m], m, batch.meters[m].area, batch.meters[m].carrier, n)
                                for m, n in counts.items()])
        minute = minute_sums(batch) if new is batch.points and batch.counted is not None else minute_sums_of(new)
        refs = {r[2] for r in minute} - self._known_refs
        if refs:
            db.executemany("INSERT OR IGNORE INTO factor_refs (ref, scope, factor_id, factor_version, energy_unit) "
                           "VALUES (?, ?, ?, ?, ?)", [(r, *batch.factors[r]) for r in refs if r in batch.factors])
        for table, rows in (("rollup_minute", minute), ("rollup_quarter", coarser(minute, QUARTER_US)),
                            ("rollup_hour", coarser(minute, HOUR_US))):
            execute_rows(db, _ROLLUP.format(table=table), [(site_of[r[0]], *r) for r in rows], _ROLLUP_TAIL)
        db.executemany(_LATEST, [(site_of[m], m, q) for m, q in set(map(itemgetter(METER, QUANTITY), new))])
        return refs

    def apply_retention(self, now: datetime, chunk_rows: int = CHUNK_ROWS, budget_s: float | None = None) -> Pruned:
        """Delete raw points, minute rollups and dead letters older than their retention, a few thousand rows
        a transaction (quarter-hour and hour rollups stay); with `budget_s`, stop once that much time is spent
        and return `done=False` (call again soon). Raises only StoreError: a full disk or an I/O error here
        must never stop ingest, which logs it and tries again later. Measured: ~3 us a row, 12 ms the longest
        transaction (synchronous=FULL)."""
        try:
            return Pruner(self._db, self._lock, self.retention, chunk_rows, budget_s).run(ts_to_us(now))
        except Exception as exc:  # housekeeping never stops ingest: every failure is the store's, mapped
            with self._lock, contextlib.suppress(sqlite3.Error):
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
            raise StoreError(f"sqlite store {self.path}: retention: {type(exc).__name__}: {exc}") from exc

    # ---- read side (StoreReader) ------------------------------------------------------------------------

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"sqlite store {self.path}: {exc}") from exc

    def meter_summaries(self, site: str) -> list[MeterSummary]:
        rows = self._query("SELECT m.meter, m.site, m.area, m.carrier, l.ts_us, l.quality, m.samples FROM meters m "
                           "LEFT JOIN (SELECT meter, MAX(ts_us) AS ts_us, quality FROM latest WHERE site = ? "
                           "GROUP BY meter) l USING (meter) WHERE m.site = ? ORDER BY m.meter", (site, site))
        return [MeterSummary(meter=r[0], site=r[1], area=r[2], carrier=r[3],
                             last_ts=us_to_dt(r[4]) if r[4] is not None else None, last_quality=r[5], samples=r[6])
                for r in rows]

    def latest_values(self, site: str) -> list[LatestValue]:
        rows = self._query("SELECT l.meter, l.site, l.quantity, l.ts_us, l.value, l.unit, l.quality, l.flags "
                           "FROM latest l JOIN meters m ON m.site = l.site AND m.meter = l.meter "
                           "WHERE l.site = ? ORDER BY l.meter, l.quantity", (site,))
        return [LatestValue(meter=r[0], site=r[1], quantity=r[2], ts=us_to_dt(r[3]), value=r[4], unit=r[5],
                            quality=r[6], flags=tuple(f for f in r[7].split(",") if f)) for r in rows]

    def dead_letters(self, site: str, limit: int = 100) -> list[DeadLetterRecord]:
        rows = self._query("SELECT id, received_us, topic, meter, seq, idx, reason, payload FROM deadletter "
                           "WHERE site = ? ORDER BY id DESC LIMIT ?", (site, limit))
        return [DeadLetterRecord(id=r[0], received=us_to_dt(r[1]), topic=r[2], meter=r[3], seq=r[4], index=r[5],
                                 reason=r[6], payload=bytes(r[7])) for r in rows]

    def totals(self, site: str, start: datetime, end: datetime) -> list[MeterTotal]:
        """Per-meter sums over start <= ts < end, from the coarsest rollups that fit (sqlite_totals)."""
        with self._lock:
            try:
                kept = kept_from(self._db)
            except sqlite3.Error as exc:
                raise StoreError(f"sqlite store {self.path}: {exc}") from exc
        return sqlite_totals.totals(self._query, kept, site, start, end)

    def series(self, site: str, start: datetime, end: datetime, step: str, tz: str) -> list[SeriesPoint]:
        """Per meter and bucket sums, from the rollups (sqlite_series)."""
        return sqlite_series.series(self._query, site, start, end, step, tz)

    def factor_usage(self, site: str, start: datetime, end: datetime) -> list[FactorUse]:
        return sqlite_series.factor_usage(self._query, site, start, end)

    def energy_flows(self, site: str, start: datetime, end: datetime) -> list[EnergyFlow]:
        """Per meter: import (its totals), export and generation (sqlite_flows)."""
        return sqlite_flows.flows(self._query, self.totals(site, start, end), site, start, end)

    def energy_flow_series(self, site: str, start: datetime, end: datetime, step: str,
                           tz: str) -> list[EnergyFlow]:
        return sqlite_flows.flows(self._query, self.series(site, start, end, step, tz), site, start, end, step, tz)

    # ---- production counters and driver variables -----------------------------------------------------------

    def variable_totals(self, site: str, start: datetime, end: datetime) -> list[VariableTotal]:
        """Per variable: counters summed, gauges time-weighted (sqlite_variables), like energy totals from the
        rollups with raw points for the ragged edges."""
        with self._lock:
            try:
                kept = kept_from(self._db)
            except sqlite3.Error as exc:
                raise StoreError(f"sqlite store {self.path}: {exc}") from exc
        return sqlite_variables.totals(self._query, kept, site, start, end)

    def variable_series(self, site: str, start: datetime, end: datetime, step: str,
                        tz: str) -> list[VariableTotal]:
        return sqlite_variables.series(self._query, site, start, end, step, tz)

    # ---- held energy (HeldReader) -------------------------------------------------------------------------

    def held(self, site: str, status: HeldStatus | None = None, meter: str | None = None,
             limit: int = 1000) -> list[HeldRecord]:
        """Held records of a site, newest first (by the sample's time)."""
        sql, params = sqlite_held.held_query(status, meter)
        return [sqlite_held.record(r) for r in self._query(sql, (site, *params, limit))]

    def held_record(self, site: str, held_id: int) -> HeldRecord | None:
        sql, params = sqlite_held.held_query(None, None, held_id)
        rows = self._query(sql, (site, *params, 1))
        return sqlite_held.record(rows[0]) if rows else None

    def held_totals(self, site: str, start: datetime | None = None, end: datetime | None = None) -> list[HeldTotal]:
        """Open held energy per meter (records with start <= ts < end when given)."""
        sql, params = sqlite_held.totals_query(start, end)
        return sqlite_held.totals(self._query(sql, (site, *params)), site)

    def decide_held(self, site: str, held_id: int, status: HeldStatus, actor: str, note: str | None = None,
                    counted_ts: datetime | None = None, co2e_kg: float | None = None,
                    factor_id: str | None = None, factor_version: str | None = None) -> HeldRecord:
        """Release (a counted point flag "released" at `counted_ts` or the record's time, entering the rollups)
        or reject an open held record, in one transaction. Raises HeldError (nothing changed) or StoreError."""
        with self._lock:
            db = self._db
            try:
                db.execute("BEGIN IMMEDIATE")
                point, factors = sqlite_held.decide(db, site, held_id, status, actor, note, counted_ts, co2e_kg,
                                                    factor_id, factor_version, int(time.time() * 1_000_000))
                if point is not None:
                    area, carrier = db.execute("SELECT area, carrier FROM held WHERE id = ?", (held_id,)).fetchone()
                    batch = Batch(points=[point], meters={point[METER]: MeterInfo(site, area, carrier)},
                                  factors=factors)
                    db.execute(INSERT_POINT, (site, *point))
                    self._known_refs -= set(factors)  # make sure its factor row is there
                    self._derived([point], batch, {point[METER]: site})
                decided = sqlite_held.get(db, site, held_id)
                db.execute("COMMIT")
            except Exception as exc:
                with contextlib.suppress(sqlite3.Error):
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                if isinstance(exc, HeldError):
                    raise
                raise self._error(exc) from exc
            return decided

    def point_count(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM points")[0][0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
