"""Manual activity entries in the API database (deliveries, bills, refrigerant top-ups, process emissions, heat
statements): added or voided, never edited (a trigger refuses UPDATE and DELETE), each with its evidence; the
entries that count (not voided) overlapping a time range are read here for balances, history and reports."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any, Final

from calc.activity import ActivityResult, Counted
from records.base import Repository, first, insert

_COLUMNS = ("site, kind, area, entry, result, span_start, span_end, counted, evidence, evidence_sha256, "
            "evidence_name, note, created_at, created_by")
INSERT: Final = f"INSERT INTO activity ({_COLUMNS}) VALUES ({', '.join('?' * 14)})"
_DOC: Final = ("SELECT a.*, v.at AS voided_at, v.by AS voided_by, v.reason AS void_reason FROM activity a "
               "LEFT JOIN activity_voids v ON v.entry_id = a.id")
# (site, limit, offset): a page of the site's entries, voided ones too, oldest first
PAGE: Final = f"{_DOC} WHERE a.site = ? ORDER BY a.id LIMIT ? OFFSET ?"
# (site, id): one entry, voided or not
ONE: Final = f"{_DOC} WHERE a.site = ? AND a.id = ?"
# (site, end, start): unvoided entries of the site overlapping [start, end)
OVERLAPPING: Final = (f"{_DOC} WHERE a.site = ? AND a.span_start < ? AND a.span_end > ? AND v.entry_id IS NULL "
                      "ORDER BY a.id")
IS_VOIDED: Final = "SELECT 1 FROM activity_voids WHERE entry_id = ?"
INSERT_VOID: Final = "INSERT INTO activity_voids (entry_id, at, by, reason) VALUES (?, ?, ?, ?)"
EXISTS: Final = "SELECT id FROM activity WHERE site = ? AND id = ?"


def _doc(row: sqlite3.Row) -> dict[str, Any]:
    doc = {k: row[k] for k in row.keys()}  # noqa: SIM118 (sqlite3.Row has no items())
    doc["voided"] = row["voided_at"] is not None
    return doc


class ActivityLog(Repository):
    """Reads of the activity entries (over the API's connection or SCADA's read-only one) and, inside the
    caller's transaction, the add and the void."""

    def entries(self, site: str, limit: int, offset: int) -> list[dict[str, Any]]:
        return [_doc(r) for r in self.db.query(PAGE, (site, limit, offset))]

    def entry(self, site: str, entry_id: int) -> dict[str, Any] | None:
        rows = self.db.query(ONE, (site, entry_id))
        return _doc(rows[0]) if rows else None

    def overlapping(self, site: str, start: str, end: str) -> list[dict[str, Any]]:
        """Unvoided entries of the site whose span overlaps [start, end) (ISO 8601 UTC), oldest first."""
        return [_doc(r) for r in self.db.query(OVERLAPPING, (site, end, start))]

    def counted(self, site: str, start: datetime, end: datetime) -> list[Counted]:
        """The entries that count (unvoided, not reconciliations) overlapping [start, end), with their results."""
        return [Counted(d["area"], datetime.fromisoformat(d["span_start"]), datetime.fromisoformat(d["span_end"]),
                        ActivityResult.model_validate_json(d["result"]))
                for d in self.overlapping(site, start.isoformat(), end.isoformat()) if d["counted"]]

    @staticmethod
    def add(conn: sqlite3.Connection, values: tuple[Any, ...]) -> int:
        """(site, kind, area, entry, result, span_start, span_end, counted, evidence, evidence_sha256,
        evidence_name, note, created_at, created_by) -> the new id."""
        return insert(conn, INSERT, values)

    @staticmethod
    def exists(conn: sqlite3.Connection, site: str, entry_id: int) -> bool:
        return first(conn, EXISTS, (site, entry_id)) is not None

    @staticmethod
    def is_voided(conn: sqlite3.Connection, entry_id: int) -> bool:
        return first(conn, IS_VOIDED, (entry_id,)) is not None

    @staticmethod
    def void(conn: sqlite3.Connection, entry_id: int, at: str, by: str, reason: str) -> None:
        conn.execute(INSERT_VOID, (entry_id, at, by, reason))
