"""The held-energy half of the InfluxDB store (`HeldReader`: list, read, total and decide held records), a base
class of `InfluxStore`, which supplies the connection, the line maker and the queries it declares below.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ingest.points import Batch, FactorInfo, MeterInfo, Point, ts_to_us, us_to_iso
from ingest.store import influx_held
from ingest.store.base import (
    HeldDecidedError,
    HeldError,
    HeldNotFoundError,
    HeldRecord,
    HeldStatus,
    HeldTotal,
)
from ingest.store.conflicts import Seen, classify, content_of
from ingest.store.influx_http import InfluxApi
from ingest.store.influx_lines import LineMaker, ql

Key = tuple[str, int, str]  # meter, ts_us, quantity (a batch's meter ids name one site each)


class InfluxHeldStore:
    """Held records in measurement `held` (see ingest.store.influx_held for the layout)."""

    api: InfluxApi
    _lines: LineMaker
    _from_held: str

    def _series(self, q: str) -> list[dict[str, Any]]:
        raise NotImplementedError  # InfluxStore's

    def _write_held(self, lines: list[str]) -> None:
        raise NotImplementedError  # InfluxStore's

    def _existing(self, site_of: dict[str, str], points: Sequence[Point],
                  measurement: str | None = None) -> dict[Key, tuple[Any, ...]]:
        raise NotImplementedError  # InfluxStore's

    def _held_rows(self, where: str, limit: int | None = None) -> list[dict[str, Any]]:
        tail = f" LIMIT {int(limit)}" if limit is not None else ""
        out = []
        for s in self._series(f"SELECT * FROM {self._from_held} WHERE {where} ORDER BY time DESC{tail}"):
            out += [dict(zip(s["columns"], values, strict=True)) for values in s["values"]]
        return out

    def held(self, site: str, status: HeldStatus | None = None, meter: str | None = None,
             limit: int = 1000) -> list[HeldRecord]:
        """Held records of a site, newest first (by the sample's time)."""
        where = f"site = {ql(site)}"
        if status is not None:
            where += f" AND status = {ql(status.value)}"
        if meter is not None:
            where += f" AND meter = {ql(meter)}"
        return [influx_held.record(r) for r in self._held_rows(where, limit)]

    def held_record(self, site: str, held_id: int) -> HeldRecord | None:
        rows = self._held_rows(f"site = {ql(site)} AND hid = {int(held_id)}", 1)
        return influx_held.record(rows[0]) if rows else None

    def held_totals(self, site: str, start: datetime | None = None, end: datetime | None = None) -> list[HeldTotal]:
        """Open held energy per meter (records with start <= ts < end when given)."""
        where = f"site = {ql(site)} AND status = 'open'"
        if start is not None:
            where += f" AND time >= {ts_to_us(start)}u"
        if end is not None:
            where += f" AND time < {ts_to_us(end)}u"
        return influx_held.totals([influx_held.record(r) for r in self._held_rows(where)], site)

    def decide_held(self, site: str, held_id: int, status: HeldStatus, actor: str, note: str | None = None,
                    counted_ts: datetime | None = None, co2e_kg: float | None = None,
                    factor_id: str | None = None, factor_version: str | None = None) -> HeldRecord:
        """Release (a counted point flag "released" at `counted_ts` or the record's time) or reject an open held
        record. InfluxDB has no transactions: the point goes first, then the status; a release cut short
        between the two is finished by releasing again (the point found there, the same, is not a conflict)."""
        rows = self._held_rows(f"site = {ql(site)} AND hid = {int(held_id)}", 1)
        if not rows:
            raise HeldNotFoundError(f"no held record {held_id} on site {site!r}")
        row = rows[0]
        if (row.get("status") or "open") != HeldStatus.OPEN.value:
            raise HeldDecidedError(f"held record {held_id} is {row.get('status')} already")
        if status is HeldStatus.OPEN:
            raise HeldError("a decision is release or reject")
        counted_us = None
        if status is HeldStatus.RELEASED:
            counted_us = ts_to_us(counted_ts) if counted_ts is not None else int(row["time"])
            self._release(row, held_id, counted_us, co2e_kg, factor_id, factor_version)
        now_us = int(time.time() * 1_000_000)
        self._write_held([influx_held.decision_line(row, status, actor, note, now_us, counted_us)])
        return influx_held.record(self._held_rows(f"site = {ql(site)} AND hid = {int(held_id)}", 1)[0])

    def _release(self, row: dict[str, Any], held_id: int, counted_us: int, co2e_kg: float | None,
                 factor_id: str | None, factor_version: str | None) -> None:
        """Write the counted point of a release."""
        unit = row.get("energy_unit") or ""
        if co2e_kg is not None and factor_id is not None and factor_version is not None:
            factor = FactorInfo(row.get("scope") or "", factor_id, factor_version, unit)
        elif row.get("factor_id") is None:
            raise HeldError(f"held record {held_id} has no factor: give factor_id and factor_version with co2e_kg")
        else:
            factor = FactorInfo(row.get("scope") or "", row["factor_id"], row.get("factor_version") or "", unit)
            if co2e_kg is None:
                if row.get("co2e_kg") is None:
                    raise HeldError(f"held record {held_id} has no CO2e: give co2e_kg and the factor to release it")
                co2e_kg = float(row["co2e_kg"])
        flags = ",".join([*(f for f in (row.get("flags") or "").split(",") if f), "released"])
        interval = row.get("interval_s")
        point = [row["meter"], counted_us, row["quantity"], float(row["value"]), row.get("unit") or "",
                 float(row["delta"]), float(interval) if interval is not None else None, float(row["energy"]),
                 float(co2e_kg), row.get("quality") or "", flags, factor.ref, int(row["seq"]), row.get("agent")]
        batch = Batch(points=[point], meters={row["meter"]: MeterInfo(row["site"], row.get("area") or "",
                                                                      row.get("carrier") or "")},
                      factors={factor.ref: factor})
        there = self._existing({row["meter"]: row["site"]}, [point]).get((row["meter"], counted_us, row["quantity"]))
        if there is not None:
            if classify(there, content_of(point)) is Seen.DUPLICATE:
                return  # an earlier release stored it and stopped before the status
            raise HeldError(f"a point of meter {row['meter']!r} {row['quantity']} at {us_to_iso(counted_us)} is "
                            f"stored already: release it at another counted_ts")
        for _, _, reason in self.api.write_lines([self._lines.line(point, batch)]):
            if reason is not None:
                raise HeldError(f"influxdb refused the released point: {reason[:500]}")
