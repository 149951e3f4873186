"""Factor-set uploads in the API database: each version's TOML document as uploaded, keyed by name and version
(the version is a content hash), never changed."""

from __future__ import annotations

import sqlite3
from typing import Final

from records.base import Repository, first

ALL: Final = "SELECT * FROM factor_sets ORDER BY created_at"
EXISTS: Final = "SELECT 1 FROM factor_sets WHERE name = ? AND version = ?"
INSERT: Final = "INSERT INTO factor_sets (name, version, document, created_at, created_by) VALUES (?, ?, ?, ?, ?)"


class FactorSets(Repository):
    def uploaded(self) -> list[sqlite3.Row]:
        """Every uploaded version, oldest first: name, version, document, created_at, created_by."""
        return self.db.query(ALL)

    @staticmethod
    def exists(conn: sqlite3.Connection, name: str, version: str) -> bool:
        return first(conn, EXISTS, (name, version)) is not None

    @staticmethod
    def add(conn: sqlite3.Connection, name: str, version: str, document: str, at: str, by: str) -> None:
        conn.execute(INSERT, (name, version, document, at, by))
