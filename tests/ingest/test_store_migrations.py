"""The SQLite store's migrations are one ordered list ending at SCHEMA_VERSION, and every older file they bring up
ends with exactly the tables, columns, indexes and views a new file has (the figure-by-figure checks of each
release's file are in test_store_migration.py, version 0, and test_store_migration_v1.py, version 1)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from ingest.store.base import StoreError
from ingest.store.sqlite import SqliteStore
from ingest.store.sqlite_schema import MIGRATIONS, SCHEMA_VERSION
from tests.ingest.test_store_migration import version_0_file
from tests.ingest.test_store_migration_v1 import version_1_file


def layout(path: Path) -> dict[str, Any]:
    """Every table's columns (name, type, not null, default, key), and the names of indexes and views."""
    db = sqlite3.connect(path)
    objects = db.execute("SELECT type, name FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%' ORDER BY name").fetchall()
    out: dict[str, Any] = {"objects": objects, "version": db.execute("PRAGMA user_version").fetchone()[0]}
    for kind, name in objects:
        if kind == "table":
            out[name] = [tuple(r[1:]) for r in db.execute(f"PRAGMA table_info({name})")]
    db.close()
    return out


def test_migrations_are_ordered_and_end_at_the_schema_version() -> None:
    versions = [v for v, _ in MIGRATIONS]
    assert versions == sorted(set(versions)) and versions[-1] == SCHEMA_VERSION


@pytest.mark.parametrize("make", [version_0_file, version_1_file], ids=["v0", "v1"])
def test_an_upgraded_file_has_the_layout_of_a_new_one(tmp_path: Path, make: Any) -> None:
    path, _ = make(tmp_path)
    SqliteStore(path).close()
    SqliteStore(tmp_path / "new.sqlite").close()
    assert layout(path) == layout(tmp_path / "new.sqlite")
    assert layout(path)["version"] == SCHEMA_VERSION


def test_a_newer_file_is_refused_with_both_versions_named(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "new.sqlite", isolation_level=None)
    db.execute("CREATE TABLE points (x)")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 3}")
    db.close()
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 3} is newer than this carbonwatch knows "
                                         f"\\({SCHEMA_VERSION}\\)"):
        SqliteStore(tmp_path / "new.sqlite")
    assert layout(tmp_path / "new.sqlite")["objects"] == [("table", "points")]
