"""Webhook deliveries in the API database: one row per attempt (alert, transition, URL, attempt number, HTTP
status or error), so what was sent where, and what failed, can be shown later."""

from __future__ import annotations

from typing import Final

from records.db import ApiDb

INSERT: Final = ("INSERT INTO webhook_deliveries (alert_id, transition, url, attempt, status, error, at) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?)")


class Deliveries:
    def __init__(self, db: ApiDb) -> None:
        self.db = db

    def add(self, alert_id: int, transition: str, url: str, attempt: int, status: int | None,
            error: str | None) -> None:
        """Record one attempt, in its own transaction (no audit row: a delivery changes no record)."""
        with self.db.tx() as conn:
            conn.execute(INSERT, (alert_id, transition, url, attempt, status, error, self.db.now()))
