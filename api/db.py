"""The API's own SQLite database (documented information, clause 7.5) and its hash-chained, append-only audit log.

Rules, alerts, allowances, offsets, contractual instruments (certificates, PPAs), factor-set uploads and key
revocations live here; every change is written in the same transaction as its audit row, so the log and the data
cannot disagree. The file carries its schema version (PRAGMA user_version); MIGRATIONS bring an older file to
SCHEMA_VERSION in one transaction at open, and a file of a newer version is refused (SchemaError).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ingest.store.sqlite_migrations import Step, migrate, sql_step

GENESIS = "0" * 64

SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY, ts TEXT NOT NULL, site TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
    entity TEXT NOT NULL, entity_id TEXT NOT NULL, body TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TABLE IF NOT EXISTS rules (
    id TEXT NOT NULL, version INTEGER NOT NULL, site TEXT NOT NULL, spec TEXT NOT NULL, enabled INTEGER NOT NULL,
    created_at TEXT NOT NULL, created_by TEXT NOT NULL, PRIMARY KEY (id, version)
);
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, site TEXT NOT NULL, rule_id TEXT NOT NULL, rule_version INTEGER NOT NULL,
    target TEXT NOT NULL, severity TEXT NOT NULL, state TEXT NOT NULL, value REAL NOT NULL, unit TEXT NOT NULL,
    fired_at TEXT NOT NULL, acknowledged_at TEXT, acknowledged_by TEXT, ack_comment TEXT,
    resolved_at TEXT, resolved_value REAL
);
CREATE INDEX IF NOT EXISTS alerts_site ON alerts (site, id);
CREATE TABLE IF NOT EXISTS alert_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, alert_id INTEGER NOT NULL, ts TEXT NOT NULL, transition TEXT NOT NULL,
    actor TEXT NOT NULL, comment TEXT, value REAL
);
CREATE TABLE IF NOT EXISTS allowances (
    id INTEGER PRIMARY KEY AUTOINCREMENT, site TEXT NOT NULL, scope TEXT NOT NULL, target TEXT,
    period_start TEXT NOT NULL, period_end TEXT NOT NULL, amount_kg REAL NOT NULL, amount REAL NOT NULL,
    amount_unit TEXT NOT NULL, note TEXT, created_at TEXT NOT NULL, created_by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS offsets (
    id INTEGER PRIMARY KEY AUTOINCREMENT, site TEXT NOT NULL, kind TEXT NOT NULL, standard TEXT, project TEXT,
    vintage INTEGER, serial TEXT, quantity_kg REAL NOT NULL, quantity REAL NOT NULL, quantity_unit TEXT NOT NULL,
    applies_on TEXT NOT NULL, evidence TEXT NOT NULL, note TEXT, created_at TEXT NOT NULL, created_by TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS offsets_serial ON offsets (serial);
CREATE TABLE IF NOT EXISTS instruments (
    id INTEGER PRIMARY KEY AUTOINCREMENT, site TEXT NOT NULL, kind TEXT NOT NULL, serial_prefix TEXT,
    serial_first INTEGER, serial_last INTEGER, serial_digits INTEGER, contract_id TEXT, quantity_mwh REAL NOT NULL,
    valid_from TEXT NOT NULL, valid_to TEXT NOT NULL, scope TEXT NOT NULL, target TEXT, region TEXT NOT NULL,
    evidence TEXT NOT NULL, note TEXT, created_at TEXT NOT NULL, created_by TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS instruments_serial ON instruments (serial_prefix, serial_first);
CREATE INDEX IF NOT EXISTS instruments_contract ON instruments (contract_id);
CREATE TABLE IF NOT EXISTS voids (
    entity TEXT NOT NULL, entity_id INTEGER NOT NULL, at TEXT NOT NULL, by TEXT NOT NULL, reason TEXT NOT NULL,
    PRIMARY KEY (entity, entity_id)
);
CREATE TABLE IF NOT EXISTS factor_sets (
    name TEXT NOT NULL, version TEXT NOT NULL, document TEXT NOT NULL, created_at TEXT NOT NULL,
    created_by TEXT NOT NULL, PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS key_revocations (
    sha256 TEXT PRIMARY KEY, name TEXT NOT NULL, at TEXT NOT NULL, by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT, alert_id INTEGER NOT NULL, transition TEXT NOT NULL, url TEXT NOT NULL,
    attempt INTEGER NOT NULL, status INTEGER, error TEXT, at TEXT NOT NULL
);
"""


# Ordered: (the version a step brings a file to, the step). A file of version v gets every step above v, in this
# order, in one transaction (ingest.store.sqlite_migrations.migrate). Version 1 is the schema as first released
# (files from before versioning are version 0 with these tables already there: every statement is IF NOT EXISTS,
# so for them it only records the version). A change appends a step (ALTER TABLE ... / CREATE ...), never edits one.
MIGRATIONS: tuple[tuple[int, Step], ...] = ((1, sql_step(SCHEMA_V1)),)
SCHEMA_VERSION = MIGRATIONS[-1][0]


def now_iso(clock: Callable[[], datetime] | None = None) -> str:
    return (clock or (lambda: datetime.now(UTC)))().astimezone(UTC).isoformat()


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def row_hash(prev_hash: str, seq: int, ts: str, site: str, actor: str, action: str, entity: str, entity_id: str,
             body: str) -> str:
    """SHA-256 over the previous row's hash and this row's content: changing any row breaks every later link."""
    content = _canonical([prev_hash, seq, ts, site, actor, action, entity, entity_id, body])
    return hashlib.sha256(content.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ChainReport:
    ok: bool
    rows: int
    first_bad_seq: int | None
    reason: str | None
    head: str


class ApiDb:
    """One SQLite file; calls are serialised by a lock (the API's write volume is tiny)."""

    def __init__(self, path: Path, clock: Callable[[], datetime] | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.lock = threading.RLock()
        self.conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30.0)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA busy_timeout=30000")
        try:
            migrate(self.conn, MIGRATIONS, f"API database {self.path}")
        except BaseException:
            self.conn.close()
            raise

    def now(self) -> str:
        return now_iso(self.clock)

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE ... COMMIT, rolled back on any error)."""
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self.lock:
            return self.conn.execute(sql, params).fetchall()

    def audit(self, conn: sqlite3.Connection, site: str, actor: str, action: str, entity: str, entity_id: str,
              body: Any) -> int:
        """Append one audit row inside the caller's transaction; returns its sequence number."""
        last = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        seq = (last["seq"] + 1) if last else 1
        prev = last["hash"] if last else GENESIS
        ts = self.now()
        text = _canonical(body)
        digest = row_hash(prev, seq, ts, site, actor, action, entity, entity_id, text)
        conn.execute("INSERT INTO audit (seq, ts, site, actor, action, entity, entity_id, body, prev_hash, hash) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     (seq, ts, site, actor, action, entity, entity_id, text, prev, digest))
        return seq

    def verify_chain(self) -> ChainReport:
        """Recompute every link; the first row whose content or link does not match is reported."""
        rows = self.query("SELECT * FROM audit ORDER BY seq")
        prev = GENESIS
        expected_seq = 1
        for r in rows:
            if r["seq"] != expected_seq:
                return ChainReport(False, len(rows), r["seq"], f"row {expected_seq} is missing", prev)
            if r["prev_hash"] != prev:
                return ChainReport(False, len(rows), r["seq"], "link to the previous row does not match", prev)
            digest = row_hash(prev, r["seq"], r["ts"], r["site"], r["actor"], r["action"], r["entity"],
                              r["entity_id"], r["body"])
            if digest != r["hash"]:
                return ChainReport(False, len(rows), r["seq"], "content does not match its hash", prev)
            prev = r["hash"]
            expected_seq += 1
        return ChainReport(True, len(rows), None, None, prev)

    def voided(self, entity: str) -> dict[int, sqlite3.Row]:
        return {r["entity_id"]: r for r in self.query("SELECT * FROM voids WHERE entity = ?", (entity,))}

    def close(self) -> None:
        with self.lock:
            self.conn.close()
