"""Alerts from the management-system records, on the clock: a meter whose calibration is overdue (until a new
certificate is entered), a nonconformity not closed by its due date, and a target whose projection misses its
next milestone. They go through the alert lifecycle (stored, audited, notified over MQTT and webhooks, streamed)
like a rule's, with the rule id `calibration:<meter>`, `nonconformity:<id>` or `target:<id>`."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from api.errors import ApiError
from api.live.stream import Hub
from api.meter_register import RegisterBook, overdue_at, overdue_from
from api.notify import Notifier
from api.rulebook import alert_doc
from api.settings import Settings
from api.targets import target_progress
from calc.errors import CalcError
from ingest.store.base import StoreError, StoreReader
from records.alerts import Alerts
from records.db import ApiDb
from records.nonconformities import Nonconformities, NonconformityDoc
from records.targets import TargetDoc, Targets

log = logging.getLogger("carbonwatch.api")
CALIBRATION, TARGET, NONCONFORMITY = "calibration:", "target:", "nonconformity:"
TARGETS_EVERY_S = 3600.0   # a target's check reads a year of totals: once an hour is enough for a yearly path


@dataclass(frozen=True, slots=True)
class Wanted:
    target: str
    version: int
    value: float
    unit: str


class RecordsWatch:
    def __init__(self, db: ApiDb, settings: Settings, store: StoreReader, notifier: Notifier, hub: Hub,
                 clock: Callable[[], datetime], targets_every_s: float = TARGETS_EVERY_S) -> None:
        self.db, self.settings, self.store = db, settings, store
        self.notifier, self.hub, self.clock = notifier, hub, clock
        self.site = settings.plant.site.id
        self.targets_every_s = targets_every_s
        self.targets_checked: datetime | None = None
        self.lock = threading.Lock()   # the task and a caller (a test, a route) never fire the same alert twice

    def _calibrations(self, now: datetime) -> dict[str, Wanted]:
        tz = self.settings.plant.site.timezone
        wanted = {}
        for e in RegisterBook(self.db).current(self.site):
            if overdue_at(e, now, tz) and e.entry.calibration_due_on is not None:
                days = (now - overdue_from(e.entry.calibration_due_on, tz)).total_seconds() / 86_400 + 1
                wanted[CALIBRATION + e.meter] = Wanted(e.meter, e.version, round(days, 3), "d")
        return wanted

    def _nonconformities(self, now: datetime) -> dict[str, Wanted]:
        """Nonconformities not closed by the day after their due date."""
        tz = self.settings.plant.site.timezone
        wanted = {}
        for d in Nonconformities(self.db).current(self.site):
            doc = NonconformityDoc.model_validate_json(d.spec)
            late = (now - overdue_from(doc.due_on, tz)).total_seconds() / 86_400
            if d.active and doc.state != "closed" and late >= 0:
                wanted[NONCONFORMITY + d.id] = Wanted(d.id, d.version, round(late + 1, 3), "d")
        return wanted

    def _targets(self, now: datetime) -> dict[str, Wanted] | None:
        """Targets whose projection misses the next milestone; None when it is not time to check them."""
        if self.targets_checked is not None and (now - self.targets_checked).total_seconds() < self.targets_every_s:
            return None
        self.targets_checked = now
        wanted = {}
        for d in Targets(self.db).current(self.site):
            if not d.active:
                continue
            try:
                p = target_progress(self.settings, self.store, self.site, TargetDoc.model_validate_json(d.spec), now)
            except (ApiError, CalcError, StoreError) as exc:   # no production yet, a store away: no verdict
                log.warning("target %s not checked: %s", d.id, exc)
                continue
            if p.misses_next and p.projected_at_next is not None:
                wanted[TARGET + d.id] = Wanted(d.id, d.version, p.projected_at_next, p.unit)
        return wanted

    def check(self, now: datetime | None = None) -> list[tuple[str, dict[str, Any]]]:
        """Fire what is wanted and not open, resolve what is open and no longer wanted (blocking: the database
        and the store); the transitions, for announcing."""
        with self.lock:
            return self._check(now or self.clock())

    def _check(self, now: datetime) -> list[tuple[str, dict[str, Any]]]:
        wanted = self._calibrations(now) | self._nonconformities(now)
        targets = self._targets(now)
        prefixes = (CALIBRATION, NONCONFORMITY) if targets is None else (CALIBRATION, NONCONFORMITY, TARGET)
        wanted.update(targets or {})
        open_ = {a.rule: a.id for a in Alerts(self.db).open(self.site) if a.rule.startswith(prefixes)}
        done: list[tuple[str, dict[str, Any]]] = []
        at = now.isoformat()
        for rule, w in wanted.items():
            if rule not in open_:
                done.append(("fire", self._write(rule, "fire", at, w)))
        for rule, alert_id in open_.items():
            if rule not in wanted:
                done.append(("resolve", self._write(rule, "resolve", at, None, alert_id)))
        return done

    def _write(self, rule: str, transition: str, at: str, w: Wanted | None, alert_id: int = 0) -> dict[str, Any]:
        """Fire an alert for `w`, or resolve `alert_id`: the alert, its event and the audit row in one
        transaction."""
        value = w.value if w is not None else None
        with self.db.tx() as conn:
            if w is not None:
                alert_id = Alerts.add(conn, self.site, rule, w.version, w.target, "warning", w.value, w.unit, at)
            else:
                Alerts.resolve(conn, alert_id, at, None)
            Alerts.add_event(conn, alert_id, at, transition, "records-watch", None, value)
            self.db.audit(conn, self.site, "records-watch", transition, "alert", str(alert_id),
                          {"at": at, "value": value, "comment": None, "rule": rule})
            row: sqlite3.Row = Alerts.by_id(conn, alert_id)
            return alert_doc(row)

    async def tick(self, now: datetime | None = None) -> None:
        for transition, doc in await asyncio.to_thread(self.check, now):
            self.notifier.send(transition, doc)
            self.hub.publish("alert", {"transition": transition, **doc})

    async def run(self, every_s: float) -> None:
        while True:
            try:
                await self.tick()
            except (sqlite3.Error, StoreError, OSError) as exc:   # the database or store away: next tick retries
                log.warning("records watch: %s", exc)
            await asyncio.sleep(every_s)
