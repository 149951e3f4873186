"""SCADA's read-only view of the API database: offsets, allowances, open alerts and manual activity entries, read
through the API's own repositories (records.ledger, records.alerts, records.activity), so SCADA and the API count
the same entries with the same SQL.

The API owns the file and writes it; this module never writes. A database that does not exist yet (the API has
not started) reads as empty: no offsets, no allowance, no alerts, exactly what the API would report then. A file
that cannot be read raises records.base.RecordsUnreadable.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from calc.activity import ManualTotal, manual_totals
from records.activity import ActivityLog
from records.alerts import Alerts, OpenAlert
from records.db import ReadOnlyDb
from records.ledger import Allowance, Ledger

__all__ = ["Allowance", "ApiRecords", "OpenAlert"]


class ApiRecords:
    """One read-only connection to the API database, opened when the file appears."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = ReadOnlyDb(path)
        self._ledger = Ledger(self.db)
        self._alerts = Alerts(self.db)

    def offsets_kg(self, site: str, start: datetime, end: datetime) -> float:
        """Unvoided offsets of the site that apply in [start, end), kg CO2e."""
        return self._ledger.offsets_kg(site, start, end)

    def manual(self, site: str, start: datetime, end: datetime) -> list[ManualTotal]:
        """What the site's counted activity entries add to [start, end) (calc.activity.manual_totals, as the API)."""
        return manual_totals(ActivityLog(self.db).counted(site, start, end), start, end)

    def allowance(self, site: str, scope: str, target: str | None, at: datetime) -> Allowance | None:
        """The newest unvoided allowance of the boundary whose period contains `at`."""
        return self._ledger.allowance_at(site, scope, target, at)

    def open_alerts(self, site: str) -> list[OpenAlert]:
        """Alerts not resolved yet, with the scope of the rule version that fired each."""
        return self._alerts.open(site)

    def close(self) -> None:
        self.db.close()
