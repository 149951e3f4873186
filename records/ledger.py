"""Allowances, offsets and voids in the API database, and the one condition that selects the ledger entries that
count (not voided): the API's balance and SCADA's figures both read them here, so both count the same entries.

Entries are added or voided, never edited; a void is a row of `voids` (entity, id) and the entry stays readable,
marked. The parameters each query takes are listed beside it, times as ISO 8601.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from records.base import Repository, first, insert

Voidable = Literal["allowance", "offset", "instrument"]

TABLES: Final[dict[Voidable, str]] = {"allowance": "allowances", "offset": "offsets", "instrument": "instruments"}


def not_voided(entity: Voidable, column: str = "id") -> str:
    """A WHERE condition: the row's `column` is not the id of a voided `entity`."""
    if entity not in TABLES:   # never a caller's string inside SQL
        raise ValueError(f"not a ledger entity: {entity!r}")
    return f"{column} NOT IN (SELECT entity_id FROM voids WHERE entity = '{entity}')"


# (site, start, end): kg CO2e of the site's offsets that apply in [start, end)
OFFSETS_KG: Final = ("SELECT SUM(quantity_kg) FROM offsets WHERE site = ? AND applies_on >= ? AND applies_on < ? "
                     f"AND {not_voided('offset')}")

# (site, start, end): kg CO2e of the site's CCER credits that apply in [start, end)
CCER_KG: Final = ("SELECT SUM(quantity_kg) FROM offsets WHERE site = ? AND kind = 'credit' AND "
                  "UPPER(standard) = 'CCER' AND applies_on >= ? AND applies_on < ? "
                  f"AND {not_voided('offset')}")

# (site, scope, target, at, at): the newest allowance of the boundary whose period contains `at`
ALLOWANCE_AT: Final = ("SELECT * FROM allowances WHERE site = ? AND scope = ? AND target IS ? AND period_start <= ? "
                       f"AND period_end > ? AND {not_voided('allowance')} ORDER BY id DESC LIMIT 1")

# (site,): the site's allowances that count, oldest first
ALLOWANCES: Final = f"SELECT * FROM allowances WHERE site = ? AND {not_voided('allowance')} ORDER BY id"

# (serial,): the offset that already counts this serial, on any site
OFFSET_WITH_SERIAL: Final = f"SELECT id, site FROM offsets WHERE serial = ? AND {not_voided('offset')}"

# (entity, entity_id): a row when that entry is voided
IS_VOIDED: Final = "SELECT 1 FROM voids WHERE entity = ? AND entity_id = ?"

# (entity,): every void of that entity
VOIDS: Final = "SELECT * FROM voids WHERE entity = ?"

# (entity, entity_id, at, by, reason)
INSERT_VOID: Final = "INSERT INTO voids (entity, entity_id, at, by, reason) VALUES (?, ?, ?, ?, ?)"

INSERT_ALLOWANCE: Final = ("INSERT INTO allowances (site, scope, target, period_start, period_end, amount_kg, amount, "
                           "amount_unit, note, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")

INSERT_OFFSET: Final = ("INSERT INTO offsets (site, kind, standard, project, vintage, serial, quantity_kg, quantity, "
                        "quantity_unit, applies_on, evidence, note, created_at, created_by) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")


def entries_sql(table: str) -> str:
    """(site, limit, offset): a page of the site's entries, voided ones too, oldest first."""
    return f"SELECT * FROM {table} WHERE site = ? ORDER BY id LIMIT ? OFFSET ?"


def entry_sql(table: str) -> str:
    """(site, id): one entry of the site, voided or not."""
    return f"SELECT * FROM {table} WHERE site = ? AND id = ?"


@dataclass(frozen=True, slots=True)
class Allowance:
    id: int
    scope: str                 # site | area | meter
    target: str | None
    start: datetime
    end: datetime
    amount_kg: float


def _allowance(r: sqlite3.Row) -> Allowance:
    return Allowance(int(r["id"]), str(r["scope"]), r["target"], datetime.fromisoformat(r["period_start"]),
                     datetime.fromisoformat(r["period_end"]), float(r["amount_kg"]))


def row_doc(row: sqlite3.Row, voids: dict[int, sqlite3.Row]) -> dict[str, Any]:
    """An entry's columns with its void marks (voided, voided_at, voided_by, void_reason)."""
    doc = {k: row[k] for k in row.keys()}  # noqa: SIM118 (sqlite3.Row has no items())
    v = voids.get(row["id"])
    doc.update(voided=v is not None, voided_at=v["at"] if v else None, voided_by=v["by"] if v else None,
               void_reason=v["reason"] if v else None)
    return doc


class Ledger(Repository):
    """The ledger's reads (over the API's connection or SCADA's read-only one) and, inside the caller's
    transaction, its writes."""

    # ---- what counts ------------------------------------------------------------------------------------

    def offsets_kg(self, site: str, start: datetime, end: datetime) -> float:
        """Unvoided offsets of the site that apply in [start, end), kg CO2e."""
        return self._sum(OFFSETS_KG, site, start, end)

    def ccer_kg(self, site: str, start: datetime, end: datetime) -> float:
        """Unvoided CCER credits of the site that apply in [start, end), kg CO2e."""
        return self._sum(CCER_KG, site, start, end)

    def _sum(self, sql: str, site: str, start: datetime, end: datetime) -> float:
        rows = self.db.query(sql, (site, start.isoformat(), end.isoformat()))
        return float(rows[0][0] or 0.0) if rows else 0.0

    def allowance_at(self, site: str, scope: str, target: str | None, at: datetime) -> Allowance | None:
        """The newest unvoided allowance of the boundary whose period contains `at`."""
        rows = self.db.query(ALLOWANCE_AT, (site, scope, target, at.isoformat(), at.isoformat()))
        return _allowance(rows[0]) if rows else None

    def allowances(self, site: str) -> list[Allowance]:
        """The site's unvoided allowances, oldest first."""
        return [_allowance(r) for r in self.db.query(ALLOWANCES, (site,))]

    # ---- entries as stored, with their void marks --------------------------------------------------------

    def voids(self, entity: Voidable) -> dict[int, sqlite3.Row]:
        return {r["entity_id"]: r for r in self.db.query(VOIDS, (entity,))}

    def rows(self, entity: Voidable, site: str, limit: int, offset: int) -> list[sqlite3.Row]:
        return self.db.query(entries_sql(TABLES[entity]), (site, limit, offset))

    def row(self, entity: Voidable, site: str, entry_id: int) -> sqlite3.Row | None:
        rows = self.db.query(entry_sql(TABLES[entity]), (site, entry_id))
        return rows[0] if rows else None

    def entries(self, entity: Voidable, site: str, limit: int, offset: int) -> list[dict[str, Any]]:
        """A page of the site's entries, voided ones too (marked), oldest first."""
        voids = self.voids(entity)
        return [row_doc(r, voids) for r in self.rows(entity, site, limit, offset)]

    def entry(self, entity: Voidable, site: str, entry_id: int) -> dict[str, Any] | None:
        row = self.row(entity, site, entry_id)
        return row_doc(row, self.voids(entity)) if row is not None else None

    # ---- writes, in the caller's transaction --------------------------------------------------------------

    @staticmethod
    def exists(conn: sqlite3.Connection, entity: Voidable, site: str, entry_id: int) -> bool:
        return first(conn, entry_sql(TABLES[entity]), (site, entry_id)) is not None

    @staticmethod
    def is_voided(conn: sqlite3.Connection, entity: Voidable, entry_id: int) -> bool:
        return first(conn, IS_VOIDED, (entity, entry_id)) is not None

    @staticmethod
    def void(conn: sqlite3.Connection, entity: Voidable, entry_id: int, at: str, by: str, reason: str) -> None:
        conn.execute(INSERT_VOID, (entity, entry_id, at, by, reason))

    @staticmethod
    def offset_with_serial(conn: sqlite3.Connection, serial: str) -> sqlite3.Row | None:
        """The unvoided offset, on any site, that already counts this serial."""
        return first(conn, OFFSET_WITH_SERIAL, (serial,))

    @staticmethod
    def add_allowance(conn: sqlite3.Connection, values: tuple[Any, ...]) -> int:
        """(site, scope, target, period_start, period_end, amount_kg, amount, amount_unit, note, created_at,
        created_by) -> the new id."""
        return insert(conn, INSERT_ALLOWANCE, values)

    @staticmethod
    def add_offset(conn: sqlite3.Connection, values: tuple[Any, ...]) -> int:
        """(site, kind, standard, project, vintage, serial, quantity_kg, quantity, quantity_unit, applies_on,
        evidence, note, created_at, created_by) -> the new id."""
        return insert(conn, INSERT_OFFSET, values)
