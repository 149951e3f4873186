"""What manual activity entries add to a balance and to history (source `manual`, each spread evenly over the
local days it covers), and the reconciliation of a bill for live meters against what they measured."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from calc.activity import share
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


class ManualRow(BaseModel):
    """Counted entries of one (area, carrier, scope, unit) within a time range, their shares summed."""

    area: str
    carrier: str
    scope: str
    energy: float
    energy_unit: str
    co2e_kg: float
    market_co2e_kg: float
    entries: int
    factor_ids: list[str]
    factor_versions: list[str]


def _span(doc: dict[str, Any]) -> tuple[datetime, datetime]:
    return datetime.fromisoformat(doc["span_start"]), datetime.fromisoformat(doc["span_end"])


def manual_rows(db: Reader, site: str, start: datetime, end: datetime, area: str | None = None) -> list[ManualRow]:
    """The counted (unvoided, not reconciliation) entries' share of [start, end), per area, carrier, scope, unit."""
    return _rows(ActivityLog(db).overlapping(site, start.isoformat(), end.isoformat()), start, end, area)


def _rows(docs: list[dict[str, Any]], start: datetime, end: datetime, area: str | None = None) -> list[ManualRow]:
    acc: dict[tuple[str, str, str, str], list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])
    ids: dict[tuple[str, str, str, str], set[str]] = defaultdict(set)
    versions: dict[tuple[str, str, str, str], set[str]] = defaultdict(set)
    for doc in docs:
        if not doc["counted"] or (area is not None and doc["area"] != area):
            continue
        part = share(*_span(doc), start, end)
        if part <= 0:
            continue
        r = json.loads(doc["result"])
        key = (doc["area"], r["carrier"], r["scope"], r["energy_unit"])
        v = acc[key]
        v[0], v[1], v[2], v[3] = v[0] + part * r["energy"], v[1] + part * r["co2e_kg"], \
            v[2] + part * r["market_co2e_kg"], v[3] + 1
        ids[key].update(r["factor_ids"])
        versions[key].add(r["factor_version"])
    return [ManualRow(area=a, carrier=c, scope=s, energy_unit=u, energy=v[0], co2e_kg=v[1], market_co2e_kg=v[2],
                      entries=int(v[3]), factor_ids=sorted(ids[(a, c, s, u)]),
                      factor_versions=sorted(versions[(a, c, s, u)]))
            for (a, c, s, u), v in sorted(acc.items())]


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
                   ) -> list[tuple[datetime, ManualRow]]:
    """Per history bucket of [start, end), the counted entries' share of it (bucket start, row)."""
    out: list[tuple[datetime, ManualRow]] = []
    step_s = STEPS_S[step]
    docs = [d for d in ActivityLog(db).overlapping(site, start.isoformat(), end.isoformat()) if d["counted"]]
    if not docs:
        return out
    first = min(max(start, _span(d)[0]) for d in docs)
    last = max(min(end, _span(d)[1]) for d in docs)
    at = bucket_start(first, step_s, tz)
    while at < last:
        nxt = bucket_start(at + timedelta(seconds=step_s * 1.5), step_s, tz)
        for row in _rows(docs, max(at, start), min(nxt, end)):
            out.append((at, row))
        at = nxt
    return out
