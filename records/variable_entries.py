"""Manual production and driver entries in the API database (migration 3): added or voided, never edited; each
send of an entry's message to the broker is logged. The overlap checks that keep a quarter hour counted once."""

from __future__ import annotations

import sqlite3
from typing import Any, Final

from records.base import Repository, insert

ENTITY: Final = "variable_entry"   # its voids are rows of `voids` (entity, id), as the ledger's are

# Times are ISO 8601 UTC text of one form (datetime.isoformat of an aware UTC time), so they compare as text.
VARIABLE_ENTRIES_V3: Final = """
CREATE TABLE IF NOT EXISTS variable_entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT, site TEXT NOT NULL, variable TEXT NOT NULL, start_ts TEXT NOT NULL,
    end_ts TEXT NOT NULL, value REAL NOT NULL, unit TEXT NOT NULL, amount REAL NOT NULL, amount_unit TEXT NOT NULL,
    slot INTEGER NOT NULL, note TEXT, created_at TEXT NOT NULL, created_by TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS variable_entries_time ON variable_entries (site, variable, start_ts);
CREATE TABLE IF NOT EXISTS variable_entry_sends (
    id INTEGER PRIMARY KEY AUTOINCREMENT, entry_id INTEGER NOT NULL, seq INTEGER NOT NULL, at TEXT NOT NULL,
    error TEXT
);
CREATE INDEX IF NOT EXISTS variable_entry_sends_entry ON variable_entry_sends (entry_id, id);
"""

_COLUMNS: Final = (f"e.*, v.at AS voided_at, v.by AS voided_by, v.reason AS void_reason, "
                   f"(SELECT s.at FROM variable_entry_sends s WHERE s.entry_id = e.id ORDER BY s.id DESC LIMIT 1) "
                   f"AS sent_at, (SELECT s.error FROM variable_entry_sends s WHERE s.entry_id = e.id "
                   f"ORDER BY s.id DESC LIMIT 1) AS send_error FROM variable_entries e LEFT JOIN voids v "
                   f"ON v.entity = '{ENTITY}' AND v.entity_id = e.id")

# (site, variable, variable, limit, offset): the site's entries (of one variable, or all when it is NULL), newest first
LIST: Final = (f"SELECT {_COLUMNS} WHERE e.site = ? AND (? IS NULL OR e.variable = ?) ORDER BY e.id DESC "
               "LIMIT ? OFFSET ?")

# (site, id)
ONE: Final = f"SELECT {_COLUMNS} WHERE e.site = ? AND e.id = ?"

# (site, variable, end, start): every entry of the variable, voided or not, whose [start, end) meets [start, end)
OVERLAPPING: Final = (f"SELECT {_COLUMNS} WHERE e.site = ? AND e.variable = ? AND e.start_ts < ? AND e.end_ts > ? "
                      "ORDER BY e.id")

INSERT: Final = ("INSERT INTO variable_entries (site, variable, start_ts, end_ts, value, unit, amount, amount_unit, "
                 "slot, note, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
INSERT_VOID: Final = f"INSERT INTO voids (entity, entity_id, at, by, reason) VALUES ('{ENTITY}', ?, ?, ?, ?)"
INSERT_SEND: Final = "INSERT INTO variable_entry_sends (entry_id, seq, at, error) VALUES (?, ?, ?, ?)"


def doc(row: sqlite3.Row) -> dict[str, Any]:
    """A row as a plain dict (with `voided` and `sent`)."""
    d = {k: row[k] for k in row.keys()}  # noqa: SIM118 (sqlite3.Row has no items())
    d["voided"] = d["voided_at"] is not None
    d["sent"] = d["sent_at"] is not None and d["send_error"] is None
    return d


class VariableEntries(Repository):
    """Reading the entries; the write methods take the connection of the caller's transaction (ApiDb.tx)."""

    def page(self, site: str, variable: str | None, limit: int, offset: int) -> list[dict[str, Any]]:
        return [doc(r) for r in self.db.query(LIST, (site, variable, variable, limit, offset))]

    def get(self, site: str, entry_id: int) -> dict[str, Any] | None:
        rows = self.db.query(ONE, (site, entry_id))
        return doc(rows[0]) if rows else None

    def overlapping(self, site: str, variable: str, start: str, end: str) -> list[dict[str, Any]]:
        return [doc(r) for r in self.db.query(OVERLAPPING, (site, variable, end, start))]

    @staticmethod
    def overlapping_in(conn: sqlite3.Connection, site: str, variable: str, start: str, end: str,
                       ) -> list[dict[str, Any]]:
        """As `overlapping`, inside the caller's transaction (the check and the insert cannot be split)."""
        return [doc(r) for r in conn.execute(OVERLAPPING, (site, variable, end, start)).fetchall()]

    @staticmethod
    def add(conn: sqlite3.Connection, values: tuple[Any, ...]) -> int:
        """(site, variable, start_ts, end_ts, value, unit, amount, amount_unit, slot, note, created_at,
        created_by) -> the new id."""
        return insert(conn, INSERT, values)

    @staticmethod
    def void(conn: sqlite3.Connection, entry_id: int, at: str, by: str, reason: str) -> None:
        conn.execute(INSERT_VOID, (entry_id, at, by, reason))

    @staticmethod
    def sent(conn: sqlite3.Connection, entry_id: int, seq: int, at: str, error: str | None) -> None:
        """Log one send of the entry's message (seq 2·id, or 2·id + 1 for its void): None, or why it failed."""
        conn.execute(INSERT_SEND, (entry_id, seq, at, error))
