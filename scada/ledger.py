"""Read-only access to the API database: offsets, allowances and open alerts. Offsets and allowances are selected by
the one ledger SQL the API's balance uses too (calc/ledger_sql.py), so SCADA and the API count the same entries.

The API owns the file and writes it; this module never writes. A database that does not exist yet (the API has
not started) reads as empty: no offsets, no allowance, no alerts, exactly what the API would report then.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from calc import ledger_sql


class LedgerError(RuntimeError):
    """The API database exists but cannot be read (locked for too long, corrupt, another schema)."""


@dataclass(frozen=True, slots=True)
class Allowance:
    id: int
    scope: str                 # site | area | meter
    target: str | None
    start: datetime
    end: datetime
    amount_kg: float


@dataclass(frozen=True, slots=True)
class OpenAlert:
    id: int
    rule: str
    scope: str                 # site | area | meter (from the rule version that fired it)
    target: str
    severity: str
    state: str                 # firing | acknowledged
    fired_at: str


class Ledger:
    """One read-only connection to the API database, opened when the file appears."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection | None:
        if self._conn is None:
            if not self.path.exists():
                return None
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False, timeout=10.0)
            conn.row_factory = sqlite3.Row
            self._conn = conn
        return self._conn

    def _query(self, sql: str, params: tuple[Any, ...]) -> list[sqlite3.Row]:
        with self._lock:
            conn = self._connect()
            if conn is None:
                return []
            try:
                return conn.execute(sql, params).fetchall()
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):  # the API has created the file but not its schema yet
                    return []
                self._conn = None
                conn.close()
                raise LedgerError(f"{self.path}: {exc}") from exc
            except sqlite3.DatabaseError as exc:
                self._conn = None
                conn.close()
                raise LedgerError(f"{self.path}: {exc}") from exc

    def offsets_kg(self, site: str, start: datetime, end: datetime) -> float:
        """Unvoided offsets of the site that apply in [start, end), kg CO2e (calc.ledger_sql.OFFSETS_KG)."""
        rows = self._query(ledger_sql.OFFSETS_KG, (site, start.isoformat(), end.isoformat()))
        return float(rows[0][0] or 0.0) if rows else 0.0

    def allowance(self, site: str, scope: str, target: str | None, at: datetime) -> Allowance | None:
        """The newest unvoided allowance of the boundary whose period contains `at` (calc.ledger_sql.ALLOWANCE_AT)."""
        rows = self._query(ledger_sql.ALLOWANCE_AT, (site, scope, target, at.isoformat(), at.isoformat()))
        if not rows:
            return None
        r = rows[0]
        return Allowance(int(r["id"]), str(r["scope"]), r["target"], datetime.fromisoformat(r["period_start"]),
                         datetime.fromisoformat(r["period_end"]), float(r["amount_kg"]))

    def open_alerts(self, site: str) -> list[OpenAlert]:
        """Alerts not resolved yet, with the scope of the rule version that fired each."""
        rows = self._query("SELECT a.id, a.rule_id, a.target, a.severity, a.state, a.fired_at, r.spec FROM alerts a "
                           "LEFT JOIN rules r ON r.id = a.rule_id AND r.version = a.rule_version "
                           "WHERE a.site = ? AND a.state != 'resolved' ORDER BY a.id", (site,))
        out = []
        for r in rows:
            scope = "site"
            if r["spec"]:
                try:
                    scope = str(json.loads(r["spec"]).get("scope", "site"))
                except (ValueError, AttributeError):
                    scope = "site"
            out.append(OpenAlert(int(r["id"]), str(r["rule_id"]), scope, str(r["target"]), str(r["severity"]),
                                 str(r["state"]), str(r["fired_at"])))
        return out

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
