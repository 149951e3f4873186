"""What manual activity entries add to a balance and to history (source `manual`, each spread evenly over the
local days it covers), and the reconciliation of a bill for live meters against what they measured."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from calc.activity import ManualTotal, manual_totals
from calc.units import UnitError, conversion_factor
from ingest.store.base import StoreReader
from ingest.store.buckets import STEPS_S, bucket_start
from records.activity import ActivityLog
from records.base import Reader

MANUAL = "manual"


class Reconciliation(BaseModel):
    entry_id: int
    carrier: str
    meters: list[str]
    start: datetime
    end: datetime
    billed: float = Field(description="the bill's quantity, in unit")
    metered: float = Field(description="what the meters counted over the bill's range, in unit")
    unit: str
    difference: float = Field(description="billed − metered, in unit")
    difference_pct: float | None = Field(description="difference / metered × 100 (null when nothing was metered)")
    complete: bool = Field(description="false when a meter's energy unit could not be converted to the bill's")


def _span(doc: dict[str, Any]) -> tuple[datetime, datetime]:
    return datetime.fromisoformat(doc["span_start"]), datetime.fromisoformat(doc["span_end"])


def manual_rows(db: Reader, site: str, start: datetime, end: datetime, area: str | None = None,
                ) -> list[ManualTotal]:
    """The counted (unvoided, not reconciliation) entries' share of [start, end), per area, carrier, scope, unit."""
    return manual_totals(ActivityLog(db).counted(site, start, end), start, end, area)


def reconcile(db: Reader, store: StoreReader, site: str, doc: dict[str, Any]) -> Reconciliation | None:
    """A bill for live meters against what those meters counted over the bill's own range (None for others)."""
    if doc["counted"]:
        return None
    entry = json.loads(doc["entry"])
    meters = list(entry.get("meters", ()))
    start, end = _span(doc)
    metered, complete = 0.0, True
    for t in store.totals(site, start, end):
        if t.meter in meters:
            try:
                metered += t.energy * conversion_factor(t.energy_unit, entry["unit"])
            except UnitError:
                complete = False
    billed = float(entry["quantity"])
    diff = billed - metered
    return Reconciliation(entry_id=int(doc["id"]), carrier=entry.get("carrier", ""), meters=meters, start=start,
                          end=end, billed=billed, metered=metered, unit=entry["unit"], difference=diff,
                          difference_pct=diff / metered * 100 if metered else None, complete=complete)


def reconciliations(db: Reader, store: StoreReader, site: str, start: datetime, end: datetime,
                    meter: str | None = None) -> list[Reconciliation]:
    """Reconciliations of the bills (unvoided) that overlap [start, end), each over its own whole range."""
    out = []
    for doc in ActivityLog(db).overlapping(site, start.isoformat(), end.isoformat()):
        rec = reconcile(db, store, site, doc)
        if rec is not None and (meter is None or meter in rec.meters):
            out.append(rec)
    return out


def manual_buckets(db: Reader, site: str, start: datetime, end: datetime, step: str, tz: str,
                   ) -> list[tuple[datetime, ManualTotal]]:
    """Per history bucket of [start, end), the counted entries' share of it (bucket start, row)."""
    out: list[tuple[datetime, ManualTotal]] = []
    step_s = STEPS_S[step]
    entries = ActivityLog(db).counted(site, start, end)
    if not entries:
        return out
    first = min(max(start, e.start) for e in entries)
    last = max(min(end, e.end) for e in entries)
    at = bucket_start(first, step_s, tz)
    while at < last:
        nxt = bucket_start(at + timedelta(seconds=step_s * 1.5), step_s, tz)
        out += [(at, row) for row in manual_totals(entries, max(at, start), min(nxt, end))]
        at = nxt
    return out
