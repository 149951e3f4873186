"""API key revocations in the API database (the keys themselves live hashed in the keys file): a revoked key's
SHA-256, kept for good, so a revocation survives a restart."""

from __future__ import annotations

import sqlite3
from typing import Final

from records.base import Repository

REVOKED: Final = "SELECT sha256 FROM key_revocations"
INSERT: Final = "INSERT INTO key_revocations (sha256, name, at, by) VALUES (?, ?, ?, ?)"


class KeyRevocations(Repository):
    def revoked(self) -> set[str]:
        """The SHA-256 of every revoked key."""
        return {r["sha256"] for r in self.db.query(REVOKED)}

    @staticmethod
    def add(conn: sqlite3.Connection, sha256: str, name: str, at: str, by: str) -> None:
        conn.execute(INSERT, (sha256, name, at, by))
