"""Rules (versioned, never overwritten) and alerts (firing → acknowledged → resolved): what may change and how,
over the records.rules and records.alerts repositories.

Each change and each alert transition is written with its audit row in one transaction.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from api.errors import Conflict, NotFound
from api.versions import next_version
from calc.rules import RuleSpec
from records.alerts import Alerts, OpenAlert
from records.db import ApiDb
from records.rules import Rules


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
        self.rules = Rules(db)
        self.alerts_of = Alerts(db)

    # ---- rules ------------------------------------------------------------------------------------------

    def current(self, site: str, include_deleted: bool = False) -> list[StoredRule]:
        rows = self.rules.current(site)
        return [r for r in map(_rule, rows) if include_deleted or r.enabled]

    def versions(self, site: str, rule_id: str) -> list[StoredRule]:
        rows = self.rules.versions(site, rule_id)
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
            owner, last = Rules.latest(conn, rule_id)
            version = next_version("rule", rule_id, site, owner, last, create, "makes a new version")
            now = self.db.now()
            Rules.add(conn, rule_id, version, site, spec.model_dump_json(), enabled, now, actor)
            action = "create" if version == 1 else ("delete" if not enabled else "update")
            self.db.audit(conn, site, actor, action, "rule", rule_id,
                          {"version": version, "enabled": enabled, "spec": spec.model_dump(mode="json")})
        return StoredRule(rule_id, version, site, spec, enabled, now, actor)

    # ---- alerts -----------------------------------------------------------------------------------------

    def open_alerts(self, site: str) -> list[OpenAlert]:
        return self.alerts_of.open(site)

    def alerts(self, site: str, state: str | None, limit: int, before_id: int | None) -> list[sqlite3.Row]:
        return self.alerts_of.page(site, state, limit, before_id)

    def alert(self, site: str, alert_id: int) -> sqlite3.Row:
        row = self.alerts_of.get(site, alert_id)
        if row is None:
            raise NotFound(f"no alert {alert_id}")
        return row

    def events(self, alert_id: int) -> list[sqlite3.Row]:
        return self.alerts_of.events(alert_id)

    def fire(self, site: str, rule: StoredRule, value: float, at: str) -> sqlite3.Row:
        with self.db.tx() as conn:
            alert_id = Alerts.add(conn, site, rule.id, rule.version, rule.spec.target or site,
                                  rule.spec.severity.value, value, rule.spec.unit, at)
            self._event(conn, site, alert_id, "fire", "rule-engine", None, value, at)
            return Alerts.by_id(conn, alert_id)

    def resolve(self, site: str, alert_id: int, value: float | None, at: str, actor: str = "rule-engine",
                comment: str | None = None) -> sqlite3.Row:
        with self.db.tx() as conn:
            row = self._alert_in(conn, site, alert_id)
            if row["state"] == "resolved":
                raise Conflict(f"alert {alert_id} is already resolved")
            Alerts.resolve(conn, alert_id, at, value)
            self._event(conn, site, alert_id, "resolve", actor, comment, value, at)
            return Alerts.by_id(conn, alert_id)

    def acknowledge(self, site: str, alert_id: int, actor: str, comment: str) -> sqlite3.Row:
        with self.db.tx() as conn:
            row = self._alert_in(conn, site, alert_id)
            if row["state"] != "firing":
                raise Conflict(f"alert {alert_id} is {row['state']}; only a firing alert can be acknowledged")
            at = self.db.now()
            Alerts.acknowledge(conn, alert_id, at, actor, comment)
            self._event(conn, site, alert_id, "acknowledge", actor, comment, None, at)
            return Alerts.by_id(conn, alert_id)

    @staticmethod
    def _alert_in(conn: sqlite3.Connection, site: str, alert_id: int) -> sqlite3.Row:
        row = Alerts.get_in(conn, site, alert_id)
        if row is None:
            raise NotFound(f"no alert {alert_id}")
        return row

    def _event(self, conn: sqlite3.Connection, site: str, alert_id: int, transition: str, actor: str,
               comment: str | None, value: float | None, at: str) -> None:
        Alerts.add_event(conn, alert_id, at, transition, actor, comment, value)
        self.db.audit(conn, site, actor, transition, "alert", str(alert_id),
                      {"at": at, "value": value, "comment": comment})


def alert_doc(row: sqlite3.Row) -> dict[str, Any]:
    """An alert row as the JSON that the API, MQTT and webhooks all send."""
    doc = {k: row[k] for k in row.keys()}  # noqa: SIM118 (sqlite3.Row has no items())
    doc["rule"] = doc.pop("rule_id")
    return json.loads(json.dumps(doc))  # type: ignore[no-any-return]
