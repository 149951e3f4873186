"""Held energy on the API side: finding a record, placing a release (its time and its CO2e from the plant's factor
table), and deciding it through the store with one row in the API's hash-chained audit log per decision."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from api.errors import Conflict, Invalid, NotFound
from api.settings import Settings
from calc.factors import FactorError, default_factor_set
from calc.plant_factors import plant_factors
from calc.table import FactorTable
from calc.units import UnitError
from ingest.store.base import HeldDecidedError, HeldError, HeldNotFoundError, HeldReader, HeldRecord, HeldStatus
from records.db import ApiDb

OPEN_SCAN = 10_000  # open held records read at most for a balance (each is an anomaly waiting for an engineer)


class HeldNotFound(NotFound):
    """No held record with this id on this site."""


class HeldDecided(Conflict):
    """The record was already released or rejected (a decision is final)."""


class HeldUnplaceable(Invalid):
    """A release that cannot be counted: its time is outside the plant's life, or no factor applies there
    (answered as a 422 at the request's `counted_ts`)."""

    def __init__(self, message: str) -> None:
        super().__init__(("body", "counted_ts"), message)


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a release counts and with what CO2e (None: the store keeps the record's own CO2e)."""

    counted_ts: datetime | None
    co2e_kg: float | None = None
    factor_id: str | None = None
    factor_version: str | None = None


@dataclass(slots=True)
class HeldSum:
    """Held energy of one meter (or a bucket of one), in the meter's energy unit, and its kg CO2e."""

    energy: float = 0.0
    energy_unit: str = ""
    co2e_kg: float = 0.0
    records: int = 0
    ids: list[int] = field(default_factory=list)


def find_held(reader: HeldReader, site: str, held_id: int) -> HeldRecord:
    """The record with this id; raises HeldNotFound."""
    rec = reader.held_record(site, held_id)
    if rec is None:
        raise HeldNotFound(f"no held record {held_id} on site {site!r}")
    return rec


def open_held_by_bucket(reader: HeldReader, site: str, start: datetime, end: datetime,
                        bucket: Callable[[datetime], datetime]) -> dict[tuple[datetime, str], HeldSum]:
    """Open held energy per (bucket start, meter) of records with start <= ts < end; `bucket(ts)` -> its start."""
    out: dict[tuple[datetime, str], HeldSum] = defaultdict(HeldSum)
    for rec in reader.held(site, status=HeldStatus.OPEN, limit=OPEN_SCAN):
        if start <= rec.ts < end:
            s = out[(bucket(rec.ts), rec.meter)]
            s.energy += rec.energy
            s.energy_unit = rec.energy_unit
            s.co2e_kg += rec.co2e_kg or 0.0
            s.records += 1
            s.ids.append(rec.id)
    return out


class HeldDesk:
    """Decides held records for one plant: placement with the plant's merged factor table (the same table ingest
    converts with, built once on first use), the store's decision and the audit row."""

    def __init__(self, settings: Settings, reader: HeldReader, db: ApiDb) -> None:
        self.settings = settings
        self.reader = reader
        self.db = db
        self._table: FactorTable | None = None

    @property
    def table(self) -> FactorTable:
        if self._table is None:
            pf = plant_factors(default_factor_set(), self.settings.plant, self.settings.plant_data)
            self._table = FactorTable.build(pf, self.settings.plant)
        return self._table

    def co2e_at(self, rec: HeldRecord, ts: datetime) -> Placement:
        """The record's energy counted at `ts` with the factor valid then; raises HeldUnplaceable."""
        table = self.table
        mi = table.meter_index.get(rec.meter)
        if mi is None:
            raise HeldUnplaceable(f"meter {rec.meter!r} is not in the plant: no factor to count its energy with")
        if rec.meter in table.problems:
            raise HeldUnplaceable(table.problems[rec.meter])
        try:
            quantity = rec.energy * table.scale(mi, rec.energy_unit)
        except (UnitError, FactorError) as exc:
            raise HeldUnplaceable(f"energy unit {rec.energy_unit!r}: {exc}") from exc
        kg, row = table.co2e_kg(np.asarray([mi], dtype=np.intp), np.asarray([quantity], dtype=np.float64),
                                np.asarray([ts.timestamp()], dtype=np.float64))
        if int(row[0]) < 0 or not math.isfinite(float(kg[0])):
            raise HeldUnplaceable(f"no factor applies to meter {rec.meter!r} at {ts.isoformat()}")
        chosen = table.rows[int(row[0])]
        return Placement(ts, float(kg[0]), chosen.factor_id, chosen.factor_version)

    def placement(self, rec: HeldRecord, counted_ts: datetime | None, now: datetime) -> Placement:
        """Where a release of `rec` counts: at `counted_ts` when given (CO2e computed here), else at its own time
        (the record's CO2e, or computed when it had none). A time before the plant's start or after now cannot
        hold counted energy: raises HeldUnplaceable naming why."""
        start = self.settings.plant.site.start
        at = counted_ts if counted_ts is not None else rec.ts
        where = "counted_ts" if counted_ts is not None else f"the record's own time ({rec.ts.isoformat()})"
        if at < start:
            raise HeldUnplaceable(f"{where} is before the plant's start {start.isoformat()}: give a counted_ts "
                                  "when the energy was really used")
        if at > now:
            raise HeldUnplaceable(f"{where} is in the future (now {now.isoformat()}): give a counted_ts when the "
                                  "energy was really used")
        if counted_ts is None and rec.co2e_kg is not None:
            return Placement(None)
        return self.co2e_at(rec, at)

    def decide(self, site: str, held_id: int, status: HeldStatus, actor: str, note: str, now: datetime,
               counted_ts: datetime | None = None) -> HeldRecord:
        """Release or reject an open record, audited; raises HeldNotFound, HeldDecided or HeldUnplaceable."""
        rec = find_held(self.reader, site, held_id)
        if rec.status is not HeldStatus.OPEN:
            raise HeldDecided(f"held record {held_id} was already {rec.status.value} by {rec.decided_by} "
                              f"at {rec.decided.isoformat() if rec.decided else '?'}")
        place = self.placement(rec, counted_ts, now) if status is HeldStatus.RELEASED else Placement(None)
        action = "release" if status is HeldStatus.RELEASED else "reject"
        # the store's decision inside the audit transaction: a refused decision leaves no audit row, and two
        # decisions through this API are serialised by the transaction
        with self.db.tx() as conn:
            try:
                done = self.reader.decide_held(site, held_id, status, actor, note, counted_ts=place.counted_ts,
                                               co2e_kg=place.co2e_kg, factor_id=place.factor_id,
                                               factor_version=place.factor_version)
            except HeldNotFoundError as exc:
                raise HeldNotFound(str(exc)) from exc
            except HeldDecidedError as exc:
                again = self.reader.held_record(site, held_id)
                by = f" by {again.decided_by}" if again is not None and again.decided_by else ""
                raise HeldDecided(f"{exc}{by}") from exc
            except HeldError as exc:
                raise HeldUnplaceable(str(exc)) from exc
            self.db.audit(conn, site, actor, action, "held", str(held_id), audit_body(rec, done, place, note))
        return done


def audit_body(before: HeldRecord, after: HeldRecord, place: Placement, note: str) -> dict[str, Any]:
    """What the audit row says of a decision: the record, why it was held, the decision and its note, and for a
    release where it counts and with which CO2e and factor."""
    body: dict[str, Any] = {
        "meter": before.meter, "quantity": before.quantity, "ts": before.ts.isoformat(),
        "energy": before.energy, "energy_unit": before.energy_unit, "reason": before.reason,
        "status": after.status.value, "note": note}
    if after.status is HeldStatus.RELEASED:
        counted = after.counted_ts or place.counted_ts or before.ts
        body.update(counted_ts=counted.isoformat(),
                    co2e_kg=place.co2e_kg if place.co2e_kg is not None else before.co2e_kg,
                    factor_id=place.factor_id if place.co2e_kg is not None else before.factor_id,
                    factor_version=place.factor_version if place.co2e_kg is not None else before.factor_version)
    return body
