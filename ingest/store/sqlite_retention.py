"""Retention for the SQLite store: raw points, minute rollups and dead letters deleted in short transactions.

Quarter-hour and hour rollups (the figures) are never deleted. Raw points and minute rollups are counted
back from the newest stored reading (or now, if that is earlier), so a store that was idle for months, or
copied elsewhere, keeps its last days of detail instead of losing all of it at the next start; dead letters
are counted back from now. What was deleted is recorded with it, in `kept_from`: readers cut totals by it
(sqlite_schema.resolvable) and a late reading older than the raw points kept is dead-lettered, because a
replay of it could no longer be told from a new reading.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from ingest.store.base import CHUNK_ROWS, Pruned
from ingest.store.sqlite_schema import HOUR_US

DAY_US = 86_400_000_000
_RECORD = ("INSERT INTO kept_from (tbl, from_us) VALUES (?, ?) "
           "ON CONFLICT (tbl) DO UPDATE SET from_us = MAX(from_us, excluded.from_us)")


@dataclass(frozen=True, slots=True)
class Retention:
    """How long each kind of detail is kept, in days; None keeps it forever."""

    raw_days: float | None = None
    minute_days: float | None = None
    deadletter_days: float | None = None


def kept_from(db: sqlite3.Connection) -> dict[str, int]:
    """Per table, the time before which retention deleted its rows."""
    return {str(t): int(us) for t, us in db.execute("SELECT tbl, from_us FROM kept_from")}


def _cutoff(reference_us: int, days: float) -> int:
    cutoff = reference_us - int(days * DAY_US)
    return cutoff - cutoff % HOUR_US  # whole hours: no rollup bucket is left half-deleted


class _OutOfTime(Exception):
    """The pass's time budget is spent (between two transactions)."""


class Pruner:
    """Runs one retention pass over a store's connection; `lock` serialises each short transaction with the
    store's other calls (so the lock is never held for the whole pass). With `budget_s`, the pass stops after
    the transaction that spends it and says it is not done: the next pass goes on from there (deleting is
    idempotent), so a store that never had retention is trimmed in steps, not in one long stall."""

    def __init__(self, db: sqlite3.Connection, lock: threading.Lock, retention: Retention,
                 chunk_rows: int = CHUNK_ROWS, budget_s: float | None = None) -> None:
        self.db, self.lock, self.retention, self.chunk_rows = db, lock, retention, chunk_rows
        self.deadline = time.monotonic() + budget_s if budget_s is not None else None
        self.deleted = {"points": 0, "rollup_minute": 0, "deadletter": 0, "var_rollup_minute": 0}

    def run(self, now_us: int) -> Pruned:
        try:
            self._run(now_us)
        except _OutOfTime:
            return self._pruned(False)
        return self._pruned(True)

    def _pruned(self, done: bool) -> Pruned:
        d = self.deleted
        return Pruned(d["points"], d["rollup_minute"] + d["var_rollup_minute"], d["deadletter"], done)

    def _run(self, now_us: int) -> None:
        r = self.retention
        with self.lock:
            newest = self.db.execute("SELECT MAX(ts_us) FROM latest").fetchone()[0]
        reference = min(now_us, int(newest)) if newest is not None else now_us
        if r.raw_days is not None:
            cutoff = _cutoff(reference, r.raw_days)
            for site, meter in self._rows("SELECT site, meter FROM meters UNION SELECT site, meter FROM variables"):
                self._chunks("points", "site = ? AND meter = ?", (site, meter), "ts_us", cutoff, record=True)
        if r.minute_days is not None:
            cutoff = _cutoff(reference, r.minute_days)
            for site in self._sites("rollup_minute"):
                self._chunks("rollup_minute", "site = ?", (site,), "bucket_us", cutoff, record=True)
            for site in self._sites("var_rollup_minute"):  # production and drivers: the same retention
                self._chunks("var_rollup_minute", "site = ?", (site,), "bucket_us", cutoff)
        if r.deadletter_days is not None:
            self._chunks("deadletter", "1", (), "received_us", now_us - int(r.deadletter_days * DAY_US))

    def _rows(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[str, ...]]:
        with self.lock:
            return [tuple(r) for r in self.db.execute(sql, params)]

    def _sites(self, table: str) -> list[str]:
        """Distinct sites of a table keyed by site first, one index seek each."""
        sites: list[str] = []
        while True:
            where = "WHERE site > ?" if sites else ""
            with self.lock:
                row = self.db.execute(f"SELECT MIN(site) FROM {table} {where}", tuple(sites[-1:])).fetchone()
            if row[0] is None:
                return sites
            sites.append(str(row[0]))

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise

    def _chunks(self, table: str, where: str, params: tuple[object, ...], column: str, cutoff_us: int,
                record: bool = False) -> None:
        """DELETE rows with column < cutoff, oldest first, about `chunk_rows` a transaction; with `record`,
        each transaction that deletes also writes the cutoff down in kept_from (which never moves back), so
        a reader sees the rows gone only together with the record. Nothing deleted, nothing recorded: an
        empty or young store takes older readings (a backfill) as any other."""
        select = (f"SELECT {column} FROM {table} WHERE {where} AND {column} < ? ORDER BY {column} "
                  f"LIMIT 1 OFFSET {int(self.chunk_rows)}")
        delete = f"DELETE FROM {table} WHERE {where} AND {column} {{}} ?"
        while True:
            if self.deadline is not None and any(self.deleted.values()) and time.monotonic() >= self.deadline:
                raise _OutOfTime  # between two transactions, once this pass deleted something (so it moves on)
            with self.lock, self._transaction():
                row = self.db.execute(select, (*params, cutoff_us)).fetchone()
                bound = int(row[0]) if row is not None else cutoff_us
                changes = self.db.execute(delete.format("<"), (*params, bound)).rowcount
                if changes == 0 and row is not None:  # more than a chunk at one time: take them together
                    changes = self.db.execute(delete.format("<="), (*params, bound)).rowcount
                if changes and record:
                    self.db.execute(_RECORD, (table, cutoff_us))
            self.deleted[table] += changes
            if row is None:
                return
