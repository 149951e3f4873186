"""The API database upgrades in place: a file made by the release before schema versions (its schema frozen here
as it was at commit 308f2c1) opens with every row of every table kept, its audit chain intact, and the version
recorded; a step added to MIGRATIONS later runs once, in the same transaction; a failing step or a newer file
leaves the file as it was."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from ingest.store.sqlite_migrations import SchemaError, migrate, sql_step
from records.audit import GENESIS, AuditLog, row_hash
from records.db import ApiDb
from records.schema import MIGRATIONS, SCHEMA_VERSION

# api/db.py (now records/schema.py) SCHEMA as of commit 308f2c1 (no version in the file: user_version 0)
RELEASED_SCHEMA = """
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

ROWS: dict[str, list[tuple[Any, ...]]] = {
    "rules": [("r1", 1, "s1", '{"kind": "threshold"}', 1, "2026-03-01T00:00:00+00:00", "eng")],
    "alerts": [(1, "s1", "r1", 1, "m1", "warning", "open", 12.5, "kg/h", "2026-03-01T01:00:00+00:00", None, None,
                None, None, None)],
    "alert_events": [(1, 1, "2026-03-01T01:00:00+00:00", "fired", "engine", None, 12.5)],
    "allowances": [(1, "s1", "site", None, "2026-01-01", "2027-01-01", 1000.0, 1.0, "t", "cap", "2026-01-02", "a")],
    "offsets": [(1, "s1", "retirement", "VCS", "p", 2024, "VCS-1-2", 500.0, 0.5, "t", "2026-03-01", "cert.pdf",
                 None, "2026-03-01", "a")],
    "instruments": [(1, "s1", "gec", "GEC", 1, 100, 6, None, 100.0, "2026-01-01", "2027-01-01", "scope2", None, "CN",
                     "reg.pdf", None, "2026-01-05", "a")],
    "voids": [("offset", 1, "2026-03-02", "a", "entered twice")],
    "factor_sets": [("default", "2026.1", "{}", "2026-01-01", "a")],
    "key_revocations": [("ab" * 32, "old key", "2026-02-01", "a")],
    "webhook_deliveries": [(1, 1, "fired", "https://example.org/hook", 1, 200, None, "2026-03-01T01:00:01+00:00")],
}


def released_file(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """A file as the released API wrote it: every table holds a row, and the audit log a chain of three."""
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(RELEASED_SCHEMA)
    for table, rows in ROWS.items():
        for row in rows:
            db.execute(f"INSERT INTO {table} VALUES ({', '.join('?' for _ in row)})", row)
    prev = GENESIS
    for seq in (1, 2, 3):
        body = f'{{"n":{seq}}}'
        digest = row_hash(prev, seq, f"2026-03-0{seq}T00:00:00+00:00", "s1", "a", "add", "rule", "r1", body)
        db.execute("INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (seq, f"2026-03-0{seq}T00:00:00+00:00", "s1", "a", "add", "rule", "r1", body, prev, digest))
        prev = digest
    assert db.execute("PRAGMA user_version").fetchone() == (0,)
    db.close()
    return contents(path)


def contents(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    db = sqlite3.connect(path)
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE "
                                       "'sqlite_%' ORDER BY name")]
    out = {t: db.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in tables}
    db.close()
    return out


def version(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("PRAGMA user_version").fetchone()[0])
    finally:
        db.close()


def test_a_released_file_is_upgraded_without_losing_a_row(tmp_path: Path) -> None:
    path = tmp_path / "api.sqlite"
    before = released_file(path)
    assert all(before[t] for t in ROWS) and len(before["audit"]) == 3
    db = ApiDb(path)
    assert db.query("PRAGMA user_version")[0][0] == SCHEMA_VERSION
    report = AuditLog(db).verify()
    assert report.ok and report.rows == 3
    with db.tx() as conn:  # it goes on from there: the chain grows from the released file's head
        db.audit(conn, "s1", "a", "void", "offset", "1", {"why": "test"})
    assert AuditLog(db).verify().ok
    db.close()
    after = contents(path)
    assert after["audit"][:3] == before["audit"] and len(after["audit"]) == 4
    assert {t: rows for t, rows in after.items() if t != "audit" and t in before} == {
        t: rows for t, rows in before.items() if t != "audit"}
    assert all(not rows for t, rows in after.items() if t not in before)  # tables of later migrations: empty
    conn = sqlite3.connect(path)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):  # its triggers are still there
        conn.execute("DELETE FROM audit")
    conn.close()
    again = ApiDb(path)  # current now: opened as is
    assert again.query("PRAGMA user_version")[0][0] == SCHEMA_VERSION
    again.close()


def test_a_new_file_gets_the_current_version(tmp_path: Path) -> None:
    ApiDb(tmp_path / "api.sqlite").close()
    assert version(tmp_path / "api.sqlite") == SCHEMA_VERSION == MIGRATIONS[-1][0]


def test_a_later_step_runs_once_and_keeps_every_row(tmp_path: Path) -> None:
    """How the next schema change goes in: a step appended to MIGRATIONS (here a column with a default)."""
    path = tmp_path / "api.sqlite"
    before = released_file(path)
    later = (*MIGRATIONS, (SCHEMA_VERSION + 1, sql_step("ALTER TABLE rules ADD COLUMN note TEXT NOT NULL DEFAULT '';\n"
                                                       "CREATE INDEX rules_site ON rules (site);")))
    conn = sqlite3.connect(path, isolation_level=None)
    assert migrate(conn, later, "test") == 0
    assert migrate(conn, later, "test") == SCHEMA_VERSION + 1  # current: nothing runs again
    conn.close()
    after = contents(path)
    assert after["rules"] == [(*r, "") for r in before["rules"]]
    assert {t: rows for t, rows in after.items() if t != "rules" and t in before} == {
        t: rows for t, rows in before.items() if t != "rules"}
    assert all(not rows for t, rows in after.items() if t not in before)  # tables of later migrations: empty
    assert version(path) == SCHEMA_VERSION + 1


def test_a_failing_step_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "api.sqlite"
    before = released_file(path)
    broken = (*MIGRATIONS, (SCHEMA_VERSION + 1, sql_step("ALTER TABLE rules ADD COLUMN note TEXT;\n"
                                                         "ALTER TABLE no_such_table ADD COLUMN x TEXT;")))
    conn = sqlite3.connect(path, isolation_level=None)
    with pytest.raises(sqlite3.OperationalError, match="no_such_table"):
        migrate(conn, broken, "test")
    conn.close()
    assert contents(path) == before and version(path) == 0


def test_a_newer_file_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "api.sqlite"
    before = released_file(path)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(SchemaError, match=f"version {SCHEMA_VERSION + 1} is newer than this carbonwatch knows"):
        ApiDb(path)
    assert contents(path) == before and version(path) == SCHEMA_VERSION + 1
