"""Rules (versioned, never overwritten) and alerts (firing → acknowledged → resolved) in the API database.

Each change and each alert transition is written with its audit row in one transaction.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from api.db import ApiDb
from api.errors import Conflict, NotFound
from calc.rules import RuleSpec


@dataclass(frozen=True, slots=True)
class StoredRule:
    id: str
    version: int
    site: str
    spec: RuleSpec
    enabled: bool
    created_at: str
    created_by: str


def _rule(row: sqlite3.Row) -> StoredRule:
    return StoredRule(row["id"], row["version"], row["site"], RuleSpec.model_validate_json(row["spec"]),
                      bool(row["enabled"]), row["created_at"], row["created_by"])


class RuleBook:
    def __init__(self, db: ApiDb) -> None:
        self.db = db

    # ---- rules ------------------------------------------------------------------------------------------

    def current(self, site: str, include_deleted: bool = False) -> list[StoredRule]:
        rows = self.db.query("SELECT r.* FROM rules r JOIN (SELECT id, MAX(version) v FROM rules WHERE site = ? "
                             "GROUP BY id) last ON r.id = last.id AND r.version = last.v ORDER BY r.id", (site,))
        return [r for r in map(_rule, rows) if include_deleted or r.enabled]

    def versions(self, site: str, rule_id: str) -> list[StoredRule]:
        rows = self.db.query("SELECT * FROM rules WHERE site = ? AND id = ? ORDER BY version", (site, rule_id))
        if not rows:
            raise NotFound(f"no rule {rule_id!r}")
        return [_rule(r) for r in rows]

    def get(self, site: str, rule_id: str, version: int | None = None) -> StoredRule:
        found = self.versions(site, rule_id)
        if version is None:
            return found[-1]
        for r in found:
            if r.version == version:
                return r
        raise NotFound(f"rule {rule_id!r} has no version {version}")

    def save(self, site: str, rule_id: str, spec: RuleSpec, actor: str, enabled: bool = True,
             create: bool = False) -> StoredRule:
        """A new version of a rule (version 1 when new); the earlier versions stay as they were."""
        with self.db.tx() as conn:
            row = conn.execute("SELECT site, MAX(version) v FROM rules WHERE id = ?", (rule_id,)).fetchone()
            if row["v"] is not None and row["site"] != site:
                raise Conflict(f"rule id {rule_id!r} is taken")
            if create and row["v"] is not None:
                raise Conflict(f"rule {rule_id!r} exists; PUT /v1/rules/{rule_id} makes a new version")
            if not create and row["v"] is None:
                raise NotFound(f"no rule {rule_id!r}")
            version = (row["v"] or 0) + 1
            now = self.db.now()
            conn.execute("INSERT INTO rules (id, version, site, spec, enabled, created_at, created_by) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (rule_id, version, site, spec.model_dump_json(), int(enabled), now, actor))
            action = "create" if version == 1 else ("delete" if not enabled else "update")
            self.db.audit(conn, site, actor, action, "rule", rule_id,
                          {"version": version, "enabled": enabled, "spec": spec.model_dump(mode="json")})
        return StoredRule(rule_id, version, site, spec, enabled, now, actor)

    # ---- alerts -----------------------------------------------------------------------------------------

    def open_alerts(self, site: str) -> list[sqlite3.Row]:
        return self.db.query("SELECT * FROM alerts WHERE site = ? AND state != 'resolved' ORDER BY id", (site,))

    def alerts(self, site: str, state: str | None, limit: int, before_id: int | None) -> list[sqlite3.Row]:
        sql = "SELECT * FROM alerts WHERE site = ?"
        params: list[Any] = [site]
        if state:
            sql += " AND state = ?"
            params.append(state)
        if before_id is not None:
            sql += " AND id < ?"
            params.append(before_id)
        return self.db.query(sql + " ORDER BY id DESC LIMIT ?", (*params, limit))

    def alert(self, site: str, alert_id: int) -> sqlite3.Row:
        rows = self.db.query("SELECT * FROM alerts WHERE site = ? AND id = ?", (site, alert_id))
        if not rows:
            raise NotFound(f"no alert {alert_id}")
        return rows[0]

    def events(self, alert_id: int) -> list[sqlite3.Row]:
        return self.db.query("SELECT * FROM alert_events WHERE alert_id = ? ORDER BY id", (alert_id,))

    def fire(self, site: str, rule: StoredRule, value: float, at: str) -> sqlite3.Row:
        with self.db.tx() as conn:
            target = rule.spec.target or site
            cur = conn.execute("INSERT INTO alerts (site, rule_id, rule_version, target, severity, state, value, "
                               "unit, fired_at) VALUES (?, ?, ?, ?, ?, 'firing', ?, ?, ?)",
                               (site, rule.id, rule.version, target, rule.spec.severity.value, value,
                                rule.spec.unit, at))
            alert_id = int(cur.lastrowid or 0)
            self._event(conn, site, alert_id, "fire", "rule-engine", None, value, at)
            return conn.execute("SELECT * FROM alerts WHERE id = ?", (alert_id,)).fetchone()  # type: ignore[no-any-return]

    def resolve(self, site: str, alert_id: int, value: float | None, at: str, actor: str = "rule-engine",
                comment: str | None = None) -> sqlite3.Row:
        with self.db.tx() as conn:
            row = conn.execute("SELECT * FROM alerts WHERE site = ? AND id = ?", (site, alert_id)).fetchone()
            if row is None:
                raise NotFound(f"no alert {alert_id}")
            if row["state"] == "resolved":
                raise Conflict(f"alert {alert_id} is already resolved")
            conn.execute("UPDATE alerts SET state = 'resolved', resolved_at = ?, resolved_value = ? WHERE id = ?",
                         (at, value, alert_id))
            self._event(conn, site, alert_id, "resolve", actor, comment, value, at)
            return conn.execute("SELECT * FROM alerts WHERE id = ?", (alert_id,)).fetchone()  # type: ignore[no-any-return]

    def acknowledge(self, site: str, alert_id: int, actor: str, comment: str) -> sqlite3.Row:
        with self.db.tx() as conn:
            row = conn.execute("SELECT * FROM alerts WHERE site = ? AND id = ?", (site, alert_id)).fetchone()
            if row is None:
                raise NotFound(f"no alert {alert_id}")
            if row["state"] != "firing":
                raise Conflict(f"alert {alert_id} is {row['state']}; only a firing alert can be acknowledged")
            at = self.db.now()
            conn.execute("UPDATE alerts SET state = 'acknowledged', acknowledged_at = ?, acknowledged_by = ?, "
                         "ack_comment = ? WHERE id = ?", (at, actor, comment, alert_id))
            self._event(conn, site, alert_id, "acknowledge", actor, comment, None, at)
            return conn.execute("SELECT * FROM alerts WHERE id = ?", (alert_id,)).fetchone()  # type: ignore[no-any-return]

    def _event(self, conn: sqlite3.Connection, site: str, alert_id: int, transition: str, actor: str,
               comment: str | None, value: float | None, at: str) -> None:
        conn.execute("INSERT INTO alert_events (alert_id, ts, transition, actor, comment, value) "
                     "VALUES (?, ?, ?, ?, ?, ?)", (alert_id, at, transition, actor, comment, value))
        self.db.audit(conn, site, actor, transition, "alert", str(alert_id),
                      {"at": at, "value": value, "comment": comment})


def alert_doc(row: sqlite3.Row) -> dict[str, Any]:
    """An alert row as the JSON that the API, MQTT and webhooks all send."""
    doc = {k: row[k] for k in row.keys()}  # noqa: SIM118 (sqlite3.Row has no items())
    doc["rule"] = doc.pop("rule_id")
    return json.loads(json.dumps(doc))  # type: ignore[no-any-return]
