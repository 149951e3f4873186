"""Held energy in the SQLite store: held rows written with a batch (idempotent), read, totalled, and decided.

A held record is keyed like a point (site, meter, ts, quantity). Written again with the same content it is a
duplicate; a point already stored at its key with the same content means it is counted already (a
duplicate too); other content at the key is a conflict, dead-lettered, never overwritten. Releasing stores
a counted point (flag "released") in the same transaction as the status change; the caller adds its
rollups. Retention never touches this table.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ingest.points import (
    AGENT,
    CO2E,
    DELTA,
    ENERGY,
    FACTOR,
    FLAGS,
    INTERVAL,
    METER,
    QUALITY,
    QUANTITY,
    SEQ,
    TS,
    UNIT,
    VALUE,
    Batch,
    DeadLetter,
    FactorInfo,
    HeldRow,
    Point,
    ts_to_us,
    us_to_dt,
    us_to_iso,
)
from ingest.store.base import HeldDecidedError, HeldError, HeldNotFoundError, HeldRecord, HeldStatus, HeldTotal
from ingest.store.conflicts import Seen, classify, held_conflict, reading_topic

_COLUMNS = ("site", "meter", "ts_us", "quantity", "area", "carrier", "value", "unit", "delta", "interval_s",
            "energy", "energy_unit", "co2e_kg", "factor_ref", "quality", "flags", "reason", "seq", "agent",
            "received_us")
_INSERT = f"INSERT INTO held ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)})"
_CONTENT = "value, unit, delta, interval_s, quality, flags"
_KEY = "site = ? AND meter = ? AND ts_us = ? AND quantity = ?"
_SELECT = ("SELECT h.id, h.site, h.meter, h.area, h.carrier, h.ts_us, h.quantity, h.delta, h.unit, h.interval_s, "
           "h.energy, h.energy_unit, h.co2e_kg, f.factor_id, f.factor_version, h.reason, h.status, h.received_us, "
           "h.seq, h.agent, h.decided_us, h.decided_by, h.note, h.counted_us "
           "FROM held h LEFT JOIN factor_refs f ON f.ref = h.factor_ref")
RELEASED = "released"


def held_of(p: Point, energy_unit: str, reason: str, received_us: int) -> HeldRow:
    """A counted point that cannot be counted, as held energy with its reason."""
    return HeldRow(meter=p[METER], ts_us=p[TS], quantity=p[QUANTITY], value=p[VALUE], unit=p[UNIT], delta=p[DELTA],
                   interval_s=p[INTERVAL], energy=p[ENERGY], energy_unit=energy_unit, co2e_kg=p[CO2E],
                   factor_ref=p[FACTOR], quality=p[QUALITY], flags=p[FLAGS], reason=reason, seq=p[SEQ],
                   agent=p[AGENT], received_us=received_us)


def write_held(db: sqlite3.Connection, batch: Batch, now_us: int) -> tuple[int, int, list[DeadLetter]]:
    """Store the batch's held rows (inside the caller's transaction): (new, duplicates, conflicts)."""
    new = duplicates = 0
    conflicts: list[DeadLetter] = []
    refs = {h.factor_ref for h in batch.held if h.factor_ref is not None and h.factor_ref in batch.factors}
    if refs:
        db.executemany("INSERT OR IGNORE INTO factor_refs (ref, scope, factor_id, factor_version, energy_unit) "
                       "VALUES (?, ?, ?, ?, ?)", [(r, *batch.factors[r]) for r in refs])
    for h in batch.held:
        info = batch.meters[h.meter]
        key = (info.site, h.meter, h.ts_us, h.quantity)
        content = h.content()
        found = "held record"
        row = db.execute(f"SELECT {_CONTENT} FROM held WHERE {_KEY}", key).fetchone()
        if row is None:
            found = "point"
            row = db.execute(f"SELECT {_CONTENT} FROM points WHERE {_KEY}", key).fetchone()
        seen = classify(row, content)
        if seen is Seen.NEW:
            db.execute(_INSERT, (info.site, h.meter, h.ts_us, h.quantity, info.area, info.carrier, h.value, h.unit,
                                 h.delta, h.interval_s, h.energy, h.energy_unit, h.co2e_kg, h.factor_ref, h.quality,
                                 h.flags, h.reason, h.seq, h.agent, h.received_us))
            new += 1
        elif seen is Seen.DUPLICATE:
            duplicates += 1
        else:
            reason = held_conflict(h, found, row)
            doc = dict(zip(_COLUMNS[1:], (h.meter, h.ts_us, h.quantity, info.area, info.carrier, h.value, h.unit,
                                          h.delta, h.interval_s, h.energy, h.energy_unit, h.co2e_kg, h.factor_ref,
                                          h.quality, h.flags, h.reason, h.seq, h.agent, h.received_us), strict=True))
            conflicts.append(DeadLetter(now_us, reading_topic(batch, h.meter), json.dumps(doc).encode(), reason,
                                        h.meter, h.seq))
    return new, duplicates, conflicts


def record(r: Sequence[Any]) -> HeldRecord:
    return HeldRecord(id=r[0], site=r[1], meter=r[2], area=r[3], carrier=r[4], ts=us_to_dt(r[5]), quantity=r[6],
                      delta=r[7], unit=r[8], interval_s=r[9], energy=r[10], energy_unit=r[11], co2e_kg=r[12],
                      factor_id=r[13], factor_version=r[14], reason=r[15], status=HeldStatus(r[16]),
                      received=us_to_dt(r[17]), seq=r[18], agent=r[19],
                      decided=us_to_dt(r[20]) if r[20] is not None else None, decided_by=r[21], note=r[22],
                      counted_ts=us_to_dt(r[23]) if r[23] is not None else None)


def get(db: sqlite3.Connection, site: str, held_id: int) -> HeldRecord:
    return record(db.execute(f"{_SELECT} WHERE h.site = ? AND h.id = ?", (site, held_id)).fetchone())


def held_query(status: HeldStatus | None, meter: str | None, held_id: int | None = None) -> tuple[str, list[Any]]:
    """SQL and extra parameters (after the site) of a held list, newest first."""
    where: list[str] = ["h.site = ?"]
    params: list[Any] = []
    if held_id is not None:
        where.append("h.id = ?")
        params.append(held_id)
    if status is not None:
        where.append("h.status = ?")
        params.append(status.value)
    if meter is not None:
        where.append("h.meter = ?")
        params.append(meter)
    return f"{_SELECT} WHERE {' AND '.join(where)} ORDER BY h.ts_us DESC, h.id DESC LIMIT ?", params


def totals_query(start: datetime | None, end: datetime | None) -> tuple[str, list[Any]]:
    where, params = ["site = ?", "status = 'open'"], []
    if start is not None:
        where.append("ts_us >= ?")
        params.append(ts_to_us(start))
    if end is not None:
        where.append("ts_us < ?")
        params.append(ts_to_us(end))
    return (f"SELECT meter, area, carrier, energy_unit, SUM(energy), TOTAL(co2e_kg), COUNT(*) FROM held "
            f"WHERE {' AND '.join(where)} GROUP BY meter, area, carrier, energy_unit ORDER BY meter"), params


def totals(rows: Sequence[Sequence[Any]], site: str) -> list[HeldTotal]:
    return [HeldTotal(meter=r[0], site=site, area=r[1], carrier=r[2], energy_unit=r[3], energy=float(r[4] or 0.0),
                      co2e_kg=float(r[5] or 0.0), records=int(r[6])) for r in rows]


def decide(db: sqlite3.Connection, site: str, held_id: int, status: HeldStatus, actor: str, note: str | None,
           counted_ts: datetime | None, co2e_kg: float | None, factor_id: str | None, factor_version: str | None,
           now_us: int) -> tuple[Point | None, dict[int, FactorInfo]]:
    """Check and apply a decision inside the caller's transaction. Returns the point to count (released; the
    caller stores it and its rollups) and the factor it refers to; raises HeldError."""
    row = db.execute("SELECT id, meter, ts_us, quantity, value, unit, delta, interval_s, energy, energy_unit, "
                     "co2e_kg, factor_ref, quality, flags, seq, agent, status FROM held WHERE site = ? AND id = ?",
                     (site, held_id)).fetchone()
    if row is None:
        raise HeldNotFoundError(f"no held record {held_id} on site {site!r}")
    (_, meter, ts_us, quantity, value, unit, delta, interval_s, energy, energy_unit, rec_co2e, ref, quality,
     flags, seq, agent, current) = row
    if current != HeldStatus.OPEN.value:
        raise HeldDecidedError(f"held record {held_id} is {current} already")
    if status is HeldStatus.OPEN:
        raise HeldError("a decision is release or reject")
    point: Point | None = None
    factors: dict[int, FactorInfo] = {}
    counted_us = None
    if status is HeldStatus.RELEASED:
        counted_us = ts_to_us(counted_ts) if counted_ts is not None else int(ts_us)
        if co2e_kg is not None and factor_id is not None and factor_version is not None:
            ref, info = _factor(db, ref, factor_id, factor_version, energy_unit)
            factors[ref] = info
        elif co2e_kg is None:
            if rec_co2e is None:
                raise HeldError(f"held record {held_id} has no CO2e (no factor applies at its time): give co2e_kg "
                                f"and the factor to release it")
            co2e_kg = rec_co2e
        if ref is None:
            raise HeldError(f"held record {held_id} has no factor: give factor_id and factor_version with co2e_kg")
        if ref not in factors:
            f = db.execute("SELECT scope, factor_id, factor_version, energy_unit FROM factor_refs WHERE ref = ?",
                           (ref,)).fetchone()
            if f is None:
                raise HeldError(f"held record {held_id}: its factor reference {ref} is unknown")
            factors[ref] = FactorInfo(*f)
        if db.execute(f"SELECT 1 FROM points WHERE {_KEY}", (site, meter, counted_us, quantity)).fetchone():
            raise HeldError(f"a point of meter {meter!r} {quantity} at {us_to_iso(counted_us)} is stored already: "
                            f"release it at another counted_ts")
        point = [meter, counted_us, quantity, value, unit, delta, interval_s, energy, float(co2e_kg), quality,
                 ",".join([*(f for f in flags.split(",") if f), RELEASED]), ref, seq, agent]
    changed = db.execute("UPDATE held SET status = ?, decided_us = ?, decided_by = ?, note = ?, counted_us = ? "
                         "WHERE site = ? AND id = ? AND status = 'open'",
                         (status.value, now_us, actor, note, counted_us, site, held_id)).rowcount
    if changed != 1:
        raise HeldDecidedError(f"held record {held_id} was decided meanwhile")
    return point, factors


def _factor(db: sqlite3.Connection, ref: int | None, factor_id: str, factor_version: str,
            energy_unit: str) -> tuple[int, FactorInfo]:
    """The factor reference of a CO2e the decider computed (its scope as the record's factor, or as a stored
    factor of that id, says)."""
    known = db.execute("SELECT ref, scope, factor_id, factor_version, energy_unit FROM factor_refs "
                       "WHERE factor_id = ? AND factor_version = ? AND energy_unit = ? LIMIT 1",
                       (factor_id, factor_version, energy_unit)).fetchone()
    if known is not None:
        return int(known[0]), FactorInfo(*known[1:])
    scope_row = None
    if ref is not None:
        scope_row = db.execute("SELECT scope FROM factor_refs WHERE ref = ?", (ref,)).fetchone()
    if scope_row is None:
        scope_row = db.execute("SELECT scope FROM factor_refs WHERE factor_id = ? LIMIT 1", (factor_id,)).fetchone()
    info = FactorInfo(str(scope_row[0]) if scope_row else "", factor_id, factor_version, energy_unit)
    db.execute("INSERT OR IGNORE INTO factor_refs (ref, scope, factor_id, factor_version, energy_unit) "
               "VALUES (?, ?, ?, ?, ?)", (info.ref, *info))
    return info.ref, info
