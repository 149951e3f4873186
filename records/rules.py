"""Rules in the API database: versioned, never overwritten (a change is a new version; a delete is a version with
`enabled` 0). The rule's spec is stored as its JSON."""

from __future__ import annotations

import sqlite3
from typing import Final

from records.base import Repository, first

# (site,): the newest version of each of the site's rules, by id
CURRENT: Final = ("SELECT r.* FROM rules r JOIN (SELECT id, MAX(version) v FROM rules WHERE site = ? "
                  "GROUP BY id) last ON r.id = last.id AND r.version = last.v ORDER BY r.id")

# (site, id): every version of one rule, oldest first
VERSIONS: Final = "SELECT * FROM rules WHERE site = ? AND id = ? ORDER BY version"

# (id,): the site that owns the id and its newest version (both NULL when the id is free)
LATEST: Final = "SELECT site, MAX(version) v FROM rules WHERE id = ?"

INSERT: Final = ("INSERT INTO rules (id, version, site, spec, enabled, created_at, created_by) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?)")


class Rules(Repository):
    def current(self, site: str) -> list[sqlite3.Row]:
        return self.db.query(CURRENT, (site,))

    def versions(self, site: str, rule_id: str) -> list[sqlite3.Row]:
        return self.db.query(VERSIONS, (site, rule_id))

    @staticmethod
    def latest(conn: sqlite3.Connection, rule_id: str) -> tuple[str | None, int | None]:
        """(owning site, newest version) of the id, inside the caller's transaction; (None, None) when free."""
        row = first(conn, LATEST, (rule_id,))
        return (row["site"], row["v"]) if row is not None else (None, None)

    @staticmethod
    def add(conn: sqlite3.Connection, rule_id: str, version: int, site: str, spec_json: str, enabled: bool,
            at: str, by: str) -> None:
        conn.execute(INSERT, (rule_id, version, site, spec_json, int(enabled), at, by))
