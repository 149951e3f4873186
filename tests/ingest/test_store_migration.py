"""Files written before the site was in every key (schema version 0) open, migrate once, in one transaction,
and every figure survives.

The version-0 layout is frozen here as it was shipped; the file is filled from a current store's rows, so
each figure before and after can be compared one to one.
"""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from calc import topics
from ingest.points import Batch, DeadLetter, ts_to_us
from ingest.store.base import StoreError
from ingest.store.sqlite import SqliteStore
from ingest.store.sqlite_schema import SCHEMA_VERSION
from tests.ingest.helpers import (
    SITE,
    STORE_CONVERTER,
    STORE_NOW_US,
    T0,
    counter_batch,
    message,
    power_sample,
)

# ingest/store/sqlite_schema.py as of commit 62a97a2 (user_version 0)
V0_SCHEMA = """
CREATE TABLE IF NOT EXISTS points (
    meter TEXT NOT NULL, ts_us INTEGER NOT NULL, quantity TEXT NOT NULL,
    value REAL NOT NULL, unit TEXT NOT NULL, delta REAL, interval_s REAL,
    energy REAL, co2e_kg REAL, quality TEXT NOT NULL, flags TEXT NOT NULL,
    factor_ref INTEGER, seq INTEGER NOT NULL, agent TEXT,
    PRIMARY KEY (meter, ts_us, quantity)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meters (
    meter TEXT PRIMARY KEY, site TEXT NOT NULL, area TEXT NOT NULL, carrier TEXT NOT NULL,
    samples INTEGER NOT NULL
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
CREATE TABLE IF NOT EXISTS rollup_hour (
    site TEXT NOT NULL, meter TEXT NOT NULL, bucket_us INTEGER NOT NULL, factor_ref INTEGER NOT NULL,
    energy REAL NOT NULL, co2e_kg REAL NOT NULL, points INTEGER NOT NULL,
    PRIMARY KEY (site, bucket_us, meter, factor_ref)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS latest (
    meter TEXT NOT NULL, quantity TEXT NOT NULL, ts_us INTEGER NOT NULL,
    value REAL NOT NULL, unit TEXT NOT NULL, quality TEXT NOT NULL, flags TEXT NOT NULL,
    PRIMARY KEY (meter, quantity)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS deadletter (
    id INTEGER PRIMARY KEY AUTOINCREMENT, received_us INTEGER NOT NULL, site TEXT NOT NULL, topic TEXT NOT NULL,
    meter TEXT, seq INTEGER, idx INTEGER, reason TEXT NOT NULL, payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS deadletter_site ON deadletter (site, id);
CREATE VIEW IF NOT EXISTS points_full AS
    SELECT p.meter, p.ts_us, strftime('%Y-%m-%dT%H:%M:%fZ', p.ts_us / 1e6, 'unixepoch') AS ts, p.quantity,
           m.site, m.area, m.carrier, f.scope, p.value, p.unit, p.delta, p.interval_s, p.energy,
           f.energy_unit, p.co2e_kg, p.quality, p.flags, f.factor_id, f.factor_version, p.seq, p.agent
    FROM points p JOIN meters m USING (meter) LEFT JOIN factor_refs f ON f.ref = p.factor_ref;
"""

V0_COPY = (
    "INSERT INTO points SELECT meter, ts_us, quantity, value, unit, delta, interval_s, energy, co2e_kg, quality, "
    "flags, factor_ref, seq, agent FROM cur.points",
    "INSERT INTO meters SELECT meter, site, area, carrier, samples FROM cur.meters",
    "INSERT INTO factor_refs SELECT * FROM cur.factor_refs",
    "INSERT INTO rollup_minute SELECT site, meter, bucket_us, factor_ref, energy, co2e_kg, points "
    "FROM cur.rollup_minute",
    "INSERT INTO rollup_hour SELECT site, meter, bucket_us, factor_ref, energy, co2e_kg, points FROM cur.rollup_hour",
    "INSERT INTO latest SELECT meter, quantity, ts_us, value, unit, quality, flags FROM cur.latest",
    "INSERT INTO deadletter SELECT * FROM cur.deadletter",
)
PERIODS = [(T0, T0 + timedelta(days=2)), (T0 + timedelta(minutes=7, seconds=13), T0 + timedelta(hours=5, minutes=31)),
           (T0 + timedelta(hours=1, minutes=30), T0 + timedelta(hours=2, minutes=45)),
           (T0 + timedelta(seconds=20), T0 + timedelta(seconds=50))]


def fill(store: SqliteStore) -> None:
    store.write(counter_batch("m1", T0, 600, 37, kwh=0.25))
    store.write(counter_batch("m2", T0 + timedelta(seconds=5), 900, 23, kwh=0.125, seq=3))
    store.write(counter_batch("m1", T0, 1, 37, kwh=9.0))  # a conflict, dead-lettered
    (out,), batch = STORE_CONVERTER.convert_to_batch([(topics.reading(SITE, "a2", "m2"), message("m2", 7, [
        power_sample(T0 + timedelta(hours=9), 4.5, quality="uncertain")]), STORE_NOW_US)])
    assert out.dead == []
    store.write(batch)
    store.write(Batch(dead=[DeadLetter(STORE_NOW_US, topics.reading(SITE, "a1", "m1"), b"\x00\xff\n{bad",
                                       "json: not a document", "m1", 4)]))


def figures(store: SqliteStore) -> dict[str, Any]:
    return {
        "totals": [store.totals(SITE, s, e) for s, e in PERIODS],
        "summaries": store.meter_summaries(SITE),
        "latest": store.latest_values(SITE),
        "dead": store.dead_letters(SITE),
        "points_full": store._query("SELECT * FROM points_full ORDER BY meter, ts_us, quantity"),
        "rollups": [store._query(f"SELECT * FROM {t} ORDER BY 1, 2, 3, 4") for t in
                    ("rollup_minute", "rollup_quarter", "rollup_hour")],
    }


def version_0_file(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """A version-0 file holding what a current store holds, and the current store's figures."""
    current = SqliteStore(tmp_path / "current.sqlite")
    fill(current)
    want = figures(current)
    current.close()
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(V0_SCHEMA)
    db.execute(f"ATTACH DATABASE '{tmp_path / 'current.sqlite'}' AS cur")
    for statement in V0_COPY:
        db.execute(statement)
    db.execute("DETACH DATABASE cur")
    assert db.execute("PRAGMA user_version").fetchone() == (0,)
    db.close()
    return path, want


def test_a_version_0_file_is_migrated_in_place_and_every_figure_survives(tmp_path: Path) -> None:
    path, want = version_0_file(tmp_path)
    store = SqliteStore(path)
    assert store._query("PRAGMA user_version") == [(SCHEMA_VERSION,)]
    got = figures(store)
    assert got["totals"][0] and got["latest"] and got["dead"][0].payload == b"\x00\xff\n{bad"
    for key in want:
        assert got[key] == want[key], key
    assert {r[0] for r in store._query("SELECT name FROM sqlite_schema")} >= {"points", "meters", "latest",
                                                                             "rollup_quarter", "kept_from"}
    assert not store._query("SELECT name FROM sqlite_schema WHERE name LIKE '%_v0'")
    # the store goes on from there: the same readings again are duplicates, new ones are added once
    again = store.write(counter_batch("m1", T0, 600, 37, kwh=0.25))
    assert (again.stored, again.duplicates) == (0, 600)
    assert store.write(counter_batch("m1", T0 + timedelta(days=1), 10, 60, seq=5)).stored == 10
    store.close()
    reopened = SqliteStore(path)  # already current: opened as is, not migrated again
    assert reopened.point_count() == 600 + 900 + 1 + 10
    assert figures(reopened)["totals"][1:] == want["totals"][1:]
    reopened.close()


def test_raw_points_version_0_retention_deleted_are_known_after_the_migration(tmp_path: Path) -> None:
    """Version 0 deleted raw points without a record (minute rollups stayed): the migration finds that out."""
    path, _ = version_0_file(tmp_path)
    cut = T0 + timedelta(hours=2)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("DELETE FROM points WHERE ts_us < ?", (ts_to_us(cut),))
    db.close()
    store = SqliteStore(path)
    assert store._query("SELECT tbl, from_us FROM kept_from") == [("points", ts_to_us(cut))]
    inside = T0 + timedelta(hours=1, minutes=30, seconds=20)  # a bound where raw points are gone: its minute
    got = {t.meter: t.points for t in store.totals(SITE, inside, T0 + timedelta(hours=3))}
    current = SqliteStore(tmp_path / "current.sqlite")
    assert got == {t.meter: t.points for t in current.totals(SITE, inside.replace(second=0), T0 + timedelta(hours=3))}
    assert got != {t.meter: t.points for t in current.totals(SITE, inside, T0 + timedelta(hours=3))}
    late = store.write(counter_batch("m2", T0, 1, 60, seq=99))  # its twin may be gone: not counted again, held
    assert (late.stored, late.held, late.dead_lettered) == (0, 1, 0)
    current.close()
    store.close()


def test_a_migration_that_fails_leaves_the_version_0_file_as_it_was(tmp_path: Path) -> None:
    path, _ = version_0_file(tmp_path)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE latest_v0 (x)")  # the third rename fails, after two have been done
    before = {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("points", "meters", "latest")}
    db.close()
    with pytest.raises(StoreError, match="latest_v0"):
        SqliteStore(path)
    db = sqlite3.connect(path, isolation_level=None)
    assert db.execute("PRAGMA user_version").fetchone() == (0,)
    assert {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in before} == before
    assert "site" not in {r[1] for r in db.execute("PRAGMA table_info(points)")}
    assert db.execute("SELECT COUNT(*) FROM points_full").fetchone()[0] == before["points"]
    db.close()


def test_a_file_from_a_newer_version_is_refused_untouched(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "new.sqlite", isolation_level=None)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StoreError, match="newer"):
        SqliteStore(tmp_path / "new.sqlite")
