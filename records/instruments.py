"""Contractual instruments (certificate ranges, PPAs) in the API database: the clash checks that keep a serial or
a contract counted once across all sites, the insert, and the site's instruments that count (not voided).
Listing and voiding go through records.ledger (entity "instrument"), like allowances and offsets."""

from __future__ import annotations

import sqlite3
from typing import Any, Final

from records.base import Repository, insert
from records.base import first as first_row
from records.ledger import not_voided

# (site,): the site's instruments that count, soonest-expiring first
ACTIVE: Final = f"SELECT * FROM instruments WHERE site = ? AND {not_voided('instrument')} ORDER BY valid_to, id"

# (prefix, last, first): the first certificate range, on any site, that overlaps [first, last] of this prefix
GEC_OVERLAP: Final = ("SELECT * FROM instruments WHERE kind = 'gec' AND serial_prefix = ? AND serial_first <= ? "
                      f"AND serial_last >= ? AND {not_voided('instrument')} ORDER BY id LIMIT 1")

# (contract_id,): the PPA, on any site, that already counts this contract
PPA_WITH_CONTRACT: Final = (f"SELECT * FROM instruments WHERE kind = 'ppa' AND contract_id = ? "
                            f"AND {not_voided('instrument')} ORDER BY id LIMIT 1")

INSERT: Final = ("INSERT INTO instruments (site, kind, serial_prefix, serial_first, serial_last, serial_digits, "
                 "contract_id, quantity_mwh, valid_from, valid_to, scope, target, region, evidence, note, created_at, "
                 "created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")


class Instruments(Repository):
    def active(self, site: str) -> list[sqlite3.Row]:
        """The site's unvoided instruments, soonest-expiring first (so nothing lapses while a later one is used)."""
        return self.db.query(ACTIVE, (site,))

    @staticmethod
    def gec_overlap(conn: sqlite3.Connection, prefix: str, first: int, last: int) -> sqlite3.Row | None:
        """The first unvoided certificate range, on any site, that overlaps [first, last] of this prefix."""
        return first_row(conn, GEC_OVERLAP, (prefix, last, first))

    @staticmethod
    def ppa_with_contract(conn: sqlite3.Connection, contract_id: str | None) -> sqlite3.Row | None:
        """The unvoided PPA, on any site, that already counts this contract."""
        return first_row(conn, PPA_WITH_CONTRACT, (contract_id,))

    @staticmethod
    def add(conn: sqlite3.Connection, values: tuple[Any, ...]) -> int:
        """(site, kind, serial_prefix, serial_first, serial_last, serial_digits, contract_id, quantity_mwh,
        valid_from, valid_to, scope, target, region, evidence, note, created_at, created_by) -> the new id."""
        return insert(conn, INSERT, values)
