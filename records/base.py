"""What every repository of the API database shares: the Reader it reads through, the Repository base, the two
helpers its write methods use inside the caller's transaction, and the layer's errors."""

from __future__ import annotations

import sqlite3
from typing import Any, Protocol

Params = tuple[Any, ...]


class RecordsError(Exception):
    """The root of the records layer's own errors."""


class RecordsUnreadable(RecordsError):
    """The API database exists but cannot be read (locked for too long, corrupt, another schema)."""


class Reader(Protocol):
    """What every repository reads through: one query, its rows (ApiDb and ReadOnlyDb both answer it)."""

    def query(self, sql: str, params: Params = ()) -> list[sqlite3.Row]: ...


class Repository:
    """A repository of the API database: reads through `db` (ApiDb or ReadOnlyDb); writes, where it has them, are
    static methods that take the connection of the caller's transaction (ApiDb.tx)."""

    def __init__(self, db: Reader) -> None:
        self.db = db


def first(conn: sqlite3.Connection, sql: str, params: Params = ()) -> sqlite3.Row | None:
    """The first row of a query inside the caller's transaction, or None."""
    row: sqlite3.Row | None = conn.execute(sql, params).fetchone()
    return row


def insert(conn: sqlite3.Connection, sql: str, params: Params) -> int:
    """Run an INSERT inside the caller's transaction; the new row's id."""
    return int(conn.execute(sql, params).lastrowid or 0)
