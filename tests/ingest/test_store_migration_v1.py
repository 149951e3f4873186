"""Files of schema version 1 (before held energy and estimated sums) open, migrate once in place, in one
transaction, and every figure survives; the migrated file then takes held records and estimated points.

The version-1 layout is frozen here as it was shipped (main, commit f64105b); the file is filled from a current
store's rows, so each figure before and after can be compared one to one.
"""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from ingest.points import FLAGS, Batch
from ingest.store.base import HeldStatus, StoreError
from ingest.store.sqlite import SqliteStore
from ingest.store.sqlite_schema import SCHEMA_VERSION
from tests.ingest.helpers import SITE, T0, counter_batch
from tests.ingest.test_held_store import held_batch
from tests.ingest.test_store_migration import figures, fill

V1_SCHEMA = """
CREATE TABLE IF NOT EXISTS points (
    site TEXT NOT NULL, meter TEXT NOT NULL, ts_us INTEGER NOT NULL, quantity TEXT NOT NULL,
    value REAL NOT NULL, unit TEXT NOT NULL, delta REAL, interval_s REAL,
    energy REAL, co2e_kg REAL, quality TEXT NOT NULL, flags TEXT NOT NULL,
    factor_ref INTEGER, seq INTEGER NOT NULL, agent TEXT,
    PRIMARY KEY (site, meter, ts_us, quantity)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meters (
    site TEXT NOT NULL, meter TEXT NOT NULL, area TEXT NOT NULL, carrier TEXT NOT NULL, samples INTEGER NOT NULL,
    PRIMARY KEY (site, meter)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS factor_refs (
    ref INTEGER PRIMARY KEY, scope TEXT NOT NULL, factor_id TEXT NOT NULL, factor_version TEXT NOT NULL,
    energy_unit TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rollup_minute (
    site TEXT NOT NULL, meter TEXT NOT NULL, bucket_us INTEGER NOT NULL, factor_ref INTEGER NOT NULL,
    energy REAL NOT NULL, co2e_kg REAL NOT NULL, points INTEGER NOT NULL,
    PRIMARY KEY (site, bucket_us, meter, factor_ref)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollup_quarter (
    site TEXT NOT NULL, meter TEXT NOT NULL, bucket_us INTEGER NOT NULL, factor_ref INTEGER NOT NULL,
    energy REAL NOT NULL, co2e_kg REAL NOT NULL, points INTEGER NOT NULL,
    PRIMARY KEY (site, bucket_us, meter, factor_ref)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollup_hour (
    site TEXT NOT NULL, meter TEXT NOT NULL, bucket_us INTEGER NOT NULL, factor_ref INTEGER NOT NULL,
    energy REAL NOT NULL, co2e_kg REAL NOT NULL, points INTEGER NOT NULL,
    PRIMARY KEY (site, bucket_us, meter, factor_ref)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS latest (
    site TEXT NOT NULL, meter TEXT NOT NULL, quantity TEXT NOT NULL, ts_us INTEGER NOT NULL,
    value REAL NOT NULL, unit TEXT NOT NULL, quality TEXT NOT NULL, flags TEXT NOT NULL,
    PRIMARY KEY (site, meter, quantity)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS deadletter (
    id INTEGER PRIMARY KEY AUTOINCREMENT, received_us INTEGER NOT NULL, site TEXT NOT NULL, topic TEXT NOT NULL,
    meter TEXT, seq INTEGER, idx INTEGER, reason TEXT NOT NULL, payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS deadletter_site ON deadletter (site, id);
CREATE INDEX IF NOT EXISTS deadletter_received ON deadletter (received_us);
CREATE TABLE IF NOT EXISTS kept_from (tbl TEXT PRIMARY KEY, from_us INTEGER NOT NULL);
CREATE VIEW IF NOT EXISTS points_full AS
    SELECT p.meter, p.ts_us, strftime('%Y-%m-%dT%H:%M:%fZ', p.ts_us / 1e6, 'unixepoch') AS ts, p.quantity,
           p.site, m.area, m.carrier, f.scope, p.value, p.unit, p.delta, p.interval_s, p.energy,
           f.energy_unit, p.co2e_kg, p.quality, p.flags, f.factor_id, f.factor_version, p.seq, p.agent
    FROM points p JOIN meters m ON m.site = p.site AND m.meter = p.meter
    LEFT JOIN factor_refs f ON f.ref = p.factor_ref;

"""
ROLLUP_COLUMNS = "site, meter, bucket_us, factor_ref, energy, co2e_kg, points"
V1_COPY = (
    "INSERT INTO points SELECT * FROM cur.points",
    "INSERT INTO meters SELECT * FROM cur.meters",
    "INSERT INTO factor_refs SELECT * FROM cur.factor_refs",
    *(f"INSERT INTO {t} SELECT {ROLLUP_COLUMNS} FROM cur.{t}" for t in ("rollup_minute", "rollup_quarter",
                                                                          "rollup_hour")),
    "INSERT INTO latest SELECT * FROM cur.latest",
    "INSERT INTO deadletter SELECT * FROM cur.deadletter",
    "INSERT INTO kept_from SELECT * FROM cur.kept_from",
)


def version_1_file(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """A version-1 file holding what a current store holds (no held or estimated energy), and its figures."""
    current = SqliteStore(tmp_path / "current.sqlite")
    fill(current)
    want = figures(current)
    current.close()
    path = tmp_path / "v1.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(V1_SCHEMA)
    db.execute("PRAGMA user_version = 1")
    db.execute(f"ATTACH DATABASE '{tmp_path / 'current.sqlite'}' AS cur")
    for statement in V1_COPY:
        db.execute(statement)
    db.execute("DETACH DATABASE cur")
    db.close()
    return path, want


def test_a_version_1_file_is_migrated_in_place_and_every_figure_survives(tmp_path: Path) -> None:
    path, want = version_1_file(tmp_path)
    store = SqliteStore(path)
    assert store._query("PRAGMA user_version") == [(SCHEMA_VERSION,)] == [(4,)]  # 4: flow sums
    got = figures(store)
    assert got["totals"][0] and got["latest"] and got["dead"]
    for key in want:
        assert got[key] == want[key], key
    for table in ("rollup_minute", "rollup_quarter", "rollup_hour"):
        assert store._query(f"SELECT SUM(est_energy), SUM(est_co2e_kg) FROM {table}") == [(0.0, 0.0)]
    # it takes held records and estimated points from now on
    assert store.write(held_batch(minute=60 * 30)).held == 1
    assert store.held(SITE)[0].status is HeldStatus.OPEN
    batch = counter_batch("m1", T0 + timedelta(days=3), 10, 60, kwh=2.0, seq=50)
    marked: list[list[Any]] = [list(p) for p in batch.points]
    for p in marked:
        p[FLAGS] = "gap,estimated"
    assert store.write(Batch(points=[*marked], meters=batch.meters, factors=batch.factors)).stored == 10
    (t,) = store.totals(SITE, T0 + timedelta(days=3), T0 + timedelta(days=4))
    assert (t.energy, t.estimated_energy) == (20.0, 20.0)
    store.close()
    reopened = SqliteStore(path)  # current now: opened as is
    assert figures(reopened)["totals"] == want["totals"]
    reopened.close()


def test_a_migration_that_fails_leaves_the_version_1_file_as_it_was(tmp_path: Path) -> None:
    path, want = version_1_file(tmp_path)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE VIEW held AS SELECT 1")  # the held table cannot be created, after the rollups changed
    db.close()
    with pytest.raises(StoreError, match="views may not be indexed"):
        SqliteStore(path)
    db = sqlite3.connect(path, isolation_level=None)
    assert db.execute("PRAGMA user_version").fetchone() == (1,)
    assert "est_energy" not in {r[1] for r in db.execute("PRAGMA table_info(rollup_minute)")}
    db.execute("DROP VIEW held")
    db.close()
    store = SqliteStore(path)
    assert figures(store)["totals"] == want["totals"]
    store.close()
