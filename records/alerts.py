"""Alerts in the API database (firing → acknowledged → resolved) with their transition events; the open alerts
are read here by the API's rule runner (so a restart does not fire them again) and by SCADA (so both show the
same)."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any, Final

from records.base import RecordsError, Repository, first, insert

# (site,): the alerts not resolved yet, with the spec of the rule version that fired each
OPEN: Final = ("SELECT a.*, r.spec AS rule_spec FROM alerts a "
               "LEFT JOIN rules r ON r.id = a.rule_id AND r.version = a.rule_version "
               "WHERE a.site = ? AND a.state != 'resolved' ORDER BY a.id")
ONE: Final = "SELECT * FROM alerts WHERE site = ? AND id = ?"
BY_ID: Final = "SELECT * FROM alerts WHERE id = ?"
EVENTS: Final = "SELECT * FROM alert_events WHERE alert_id = ? ORDER BY id"
INSERT: Final = ("INSERT INTO alerts (site, rule_id, rule_version, target, severity, state, value, unit, fired_at) "
                 "VALUES (?, ?, ?, ?, ?, 'firing', ?, ?, ?)")
INSERT_EVENT: Final = ("INSERT INTO alert_events (alert_id, ts, transition, actor, comment, value) "
                       "VALUES (?, ?, ?, ?, ?, ?)")
RESOLVE: Final = "UPDATE alerts SET state = 'resolved', resolved_at = ?, resolved_value = ? WHERE id = ?"
ACKNOWLEDGE: Final = ("UPDATE alerts SET state = 'acknowledged', acknowledged_at = ?, acknowledged_by = ?, "
                      "ack_comment = ? WHERE id = ?")


def page_sql(state: str | None, before_id: int | None) -> str:
    """(site[, state][, before_id], limit): the site's alerts, newest first."""
    return ("SELECT * FROM alerts WHERE site = ?" + (" AND state = ?" if state else "")
            + (" AND id < ?" if before_id is not None else "") + " ORDER BY id DESC LIMIT ?")


@dataclass(frozen=True, slots=True)
class OpenAlert:
    id: int
    rule: str
    scope: str                 # site | area | meter (from the rule version that fired it)
    target: str
    severity: str
    state: str                 # firing | acknowledged
    fired_at: str


def _scope(spec: str | None) -> str:
    if not spec:
        return "site"
    try:
        return str(json.loads(spec).get("scope", "site"))
    except (ValueError, AttributeError):
        return "site"


class Alerts(Repository):
    def open(self, site: str) -> list[OpenAlert]:
        """Alerts not resolved yet, oldest first, with the scope of the rule version that fired each."""
        return [OpenAlert(int(r["id"]), str(r["rule_id"]), _scope(r["rule_spec"]), str(r["target"]),
                          str(r["severity"]), str(r["state"]), str(r["fired_at"]))
                for r in self.db.query(OPEN, (site,))]

    def page(self, site: str, state: str | None, limit: int, before_id: int | None) -> list[sqlite3.Row]:
        params: list[Any] = [site]
        if state:
            params.append(state)
        if before_id is not None:
            params.append(before_id)
        return self.db.query(page_sql(state, before_id), (*params, limit))

    def get(self, site: str, alert_id: int) -> sqlite3.Row | None:
        rows = self.db.query(ONE, (site, alert_id))
        return rows[0] if rows else None

    def events(self, alert_id: int) -> list[sqlite3.Row]:
        return self.db.query(EVENTS, (alert_id,))

    # ---- writes, in the caller's transaction --------------------------------------------------------------

    @staticmethod
    def get_in(conn: sqlite3.Connection, site: str, alert_id: int) -> sqlite3.Row | None:
        return first(conn, ONE, (site, alert_id))

    @staticmethod
    def by_id(conn: sqlite3.Connection, alert_id: int) -> sqlite3.Row:
        """An alert written in this transaction (so there)."""
        row = first(conn, BY_ID, (alert_id,))
        if row is None:
            raise RecordsError(f"alert {alert_id} is not in the API database")
        return row

    @staticmethod
    def add(conn: sqlite3.Connection, site: str, rule_id: str, rule_version: int, target: str, severity: str,
            value: float, unit: str, fired_at: str) -> int:
        """A firing alert -> its id."""
        return insert(conn, INSERT, (site, rule_id, rule_version, target, severity, value, unit, fired_at))

    @staticmethod
    def resolve(conn: sqlite3.Connection, alert_id: int, at: str, value: float | None) -> None:
        conn.execute(RESOLVE, (at, value, alert_id))

    @staticmethod
    def acknowledge(conn: sqlite3.Connection, alert_id: int, at: str, by: str, comment: str) -> None:
        conn.execute(ACKNOWLEDGE, (at, by, comment, alert_id))

    @staticmethod
    def add_event(conn: sqlite3.Connection, alert_id: int, at: str, transition: str, actor: str,
                  comment: str | None, value: float | None) -> None:
        conn.execute(INSERT_EVENT, (alert_id, at, transition, actor, comment, value))
