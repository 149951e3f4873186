"""The API database's schema: its tables as first released and the ordered migrations that bring an older file
to SCHEMA_VERSION (run by records.db.ApiDb when it opens the file)."""

from __future__ import annotations

from ingest.store.sqlite_migrations import Step, sql_step
from records.variable_entries import VARIABLE_ENTRIES_V3

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


# Energy baselines (ISO 50006), versioned like rules: a change (refit, retire) is a new version, never an update.
# `spec` is what was fitted (target, carrier, drivers, period, resolution: records.baselines.BaselineSpec as JSON),
# `model` the fitted calc.baseline.Baseline as JSON, `period_hours` the mean bucket length of the fit (h).
BASELINES_V2 = """
CREATE TABLE IF NOT EXISTS baselines (
    id TEXT NOT NULL, version INTEGER NOT NULL, site TEXT NOT NULL, spec TEXT NOT NULL, model TEXT NOT NULL,
    model_hash TEXT NOT NULL, period_hours REAL NOT NULL, active INTEGER NOT NULL, created_at TEXT NOT NULL,
    created_by TEXT NOT NULL, PRIMARY KEY (id, version)
);
"""


# One row per entry: `entry` is the calc.activity.Entry as JSON, `result` its calc.activity.ActivityResult as JSON
# (computed when it was added: the factor version that produced it stays with it), span_start/span_end the UTC
# instants it covers, `counted` 0 for a reconciliation (a bill for live meters: shown, never added).
ACTIVITY_V4 = """
CREATE TABLE IF NOT EXISTS activity (
    id INTEGER PRIMARY KEY AUTOINCREMENT, site TEXT NOT NULL, kind TEXT NOT NULL, area TEXT NOT NULL,
    entry TEXT NOT NULL, result TEXT NOT NULL, span_start TEXT NOT NULL, span_end TEXT NOT NULL,
    counted INTEGER NOT NULL, evidence TEXT NOT NULL, evidence_sha256 TEXT, evidence_name TEXT, note TEXT,
    created_at TEXT NOT NULL, created_by TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS activity_span ON activity (site, span_start, span_end);
CREATE TABLE IF NOT EXISTS activity_voids (
    entry_id INTEGER PRIMARY KEY, at TEXT NOT NULL, by TEXT NOT NULL, reason TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS activity_no_update BEFORE UPDATE ON activity
    BEGIN SELECT RAISE(ABORT, 'activity entries are added or voided, never edited'); END;
CREATE TRIGGER IF NOT EXISTS activity_no_delete BEFORE DELETE ON activity
    BEGIN SELECT RAISE(ABORT, 'activity entries are added or voided, never edited'); END;
"""

# Targets (6.6), reduction measures (6.6.2), nonconformities (10.2) and the meter register (7.1.4), versioned
# like baselines: a change is a new version (`active` 0 retires), never an update. `spec` is the record's JSON
# (records.targets.TargetDoc, records.measures.MeasureDoc, records.nonconformities.NonconformityDoc,
# records.meter_register.RegisterEntry); a calibration certificate's file is kept once per site by its SHA-256.
RECORDS_V6 = """
CREATE TABLE IF NOT EXISTS targets (
    id TEXT NOT NULL, version INTEGER NOT NULL, site TEXT NOT NULL, spec TEXT NOT NULL, active INTEGER NOT NULL,
    created_at TEXT NOT NULL, created_by TEXT NOT NULL, PRIMARY KEY (id, version)
);
CREATE TABLE IF NOT EXISTS measures (
    id TEXT NOT NULL, version INTEGER NOT NULL, site TEXT NOT NULL, spec TEXT NOT NULL, active INTEGER NOT NULL,
    created_at TEXT NOT NULL, created_by TEXT NOT NULL, PRIMARY KEY (id, version)
);
CREATE TABLE IF NOT EXISTS nonconformities (
    id TEXT NOT NULL, version INTEGER NOT NULL, site TEXT NOT NULL, spec TEXT NOT NULL, active INTEGER NOT NULL,
    created_at TEXT NOT NULL, created_by TEXT NOT NULL, PRIMARY KEY (id, version)
);
CREATE TABLE IF NOT EXISTS meter_register (
    site TEXT NOT NULL, meter TEXT NOT NULL, version INTEGER NOT NULL, spec TEXT NOT NULL, active INTEGER NOT NULL,
    calibrated INTEGER NOT NULL, created_at TEXT NOT NULL, created_by TEXT NOT NULL, PRIMARY KEY (site, meter, version)
);
CREATE TABLE IF NOT EXISTS meter_certificates (
    site TEXT NOT NULL, sha256 TEXT NOT NULL, meter TEXT NOT NULL, filename TEXT NOT NULL, content_type TEXT NOT NULL,
    size_bytes INTEGER NOT NULL, data BLOB NOT NULL, uploaded_at TEXT NOT NULL, uploaded_by TEXT NOT NULL,
    PRIMARY KEY (site, sha256)
);
"""


# Ordered: (the version a step brings a file to, the step). A file of version v gets every step above v, in this
# order, in one transaction (ingest.store.sqlite_migrations.migrate). Version 1 is the schema as first released
# (files from before versioning are version 0 with these tables already there: every statement is IF NOT EXISTS,
# so for them it only records the version). A change appends a step (ALTER TABLE ... / CREATE ...), never edits one.
MIGRATIONS: tuple[tuple[int, Step], ...] = ((1, sql_step(SCHEMA_V1)), (2, sql_step(BASELINES_V2)),
                                             (3, sql_step(VARIABLE_ENTRIES_V3)), (4, sql_step(ACTIVITY_V4)),
                                             (6, sql_step(RECORDS_V6)))
SCHEMA_VERSION = MIGRATIONS[-1][0]
