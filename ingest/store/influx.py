"""The InfluxDB store over the v1 HTTP API: line protocol to /write, InfluxQL to /query.

The v1 API is the one InfluxDB 1.x serves and 2.x (with a DBRP mapping) and 3.x keep compatible, so
one code path covers them; the influxdb-client package needs /api/v2, which 1.x lacks (tests run 1.6.7).
Layout, chartable by Grafana as is: measurement `points`, tags meter, site, area, carrier, quantity,
kind, scope (all fixed per meter and quantity, so a point's series never changes); fields value,
delta, interval_s, energy, co2e_kg, unit, energy_unit, quality, flags, factor_id, factor_version, seq.
Estimated points (a gap's shares) also carry `est_energy, est_co2e_kg`, so totals say how much is estimated.
Held energy goes to measurement `held` (influx_held).
Dead letters go to measurement `deadletter` (influx_lines). A point already stored (same site, meter,
quantity and time) with other content is refused as a conflict (one query per batch), never overwritten.

Writes go in chunks, each with its own outcome: a chunk InfluxDB refuses for its data (HTTP 400, or a
"partial write" that kept some of it, found out by querying) refuses only its own points, which become
dead letters with InfluxDB's reason; the chunks stored stay stored and are counted. The server down, a
timeout, a 5xx: StoreError, and the batch is retried whole (idempotent: what a failed attempt stored is
remembered, so the retry reports it as stored, not as duplicates). Logins go in a header, never the URL.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import httpx

from ingest.config import InfluxStoreSettings
from ingest.points import (
    CONTENT_NAMES,
    METER,
    QUANTITY,
    TS,
    Batch,
    DeadLetter,
    HeldRow,
    Point,
    ts_to_us,
    us_to_dt,
)
from ingest.store import influx_held, influx_series
from ingest.store.base import (
    CHUNK_ROWS,
    DeadLetterRecord,
    EnergyFlow,
    FactorUse,
    LatestValue,
    MeterSummary,
    MeterTotal,
    Pruned,
    SeriesPoint,
    StoreDataError,
    StoreError,
    VariableTotal,
    WriteResult,
)
from ingest.store.conflicts import Seen, classify, content_of, dead_point, held_conflict, point_conflict
from ingest.store.influx_held_store import InfluxHeldStore, Key
from ingest.store.influx_http import CHUNK_BYTES, CHUNK_LINES, InfluxApi
from ingest.store.influx_lines import LineMaker, dead_line, dead_payload, ident, ql

REMEMBER_MAX = 1_000_000  # keys stored by failed attempts, kept until a retry reports them
_FLOAT_NAMES = frozenset({"value", "delta", "interval_s", "energy", "co2e_kg"})  # JSON answers 2 for 2.0
METERS_ONLY = "\"variable\" = ''"  # production counters and drivers carry tag `variable`; energy meters do not


def point_line(p: Point, batch: Batch) -> str:
    """Line protocol of one point (see LineMaker)."""
    return _DEFAULT_MAKER.line(p, batch)


_DEFAULT_MAKER = LineMaker()


class InfluxStore(InfluxHeldStore):
    """Writer and reader of one InfluxDB database (and retention policy) over HTTP."""

    def __init__(self, settings: InfluxStoreSettings, transport: httpx.BaseTransport | None = None,
                 chunk_lines: int = CHUNK_LINES, chunk_bytes: int = CHUNK_BYTES) -> None:
        self.settings = settings
        self.api = InfluxApi(settings, transport, chunk_lines, chunk_bytes)
        self._db_ready = False
        self._lines = LineMaker()
        self._unreported: set[tuple[str, str, int, str]] = set()  # site, meter, ts, quantity
        db = ident(settings.database)
        rp = ident(settings.retention_policy) if settings.retention_policy else ""
        self._from_points, self._from_dead = f"{db}.{rp}.\"points\"", f"{db}.{rp}.\"deadletter\""
        self._from_held = f"{db}.{rp}.\"held\""

    def query(self, q: str) -> list[dict[str, Any]]:
        """Run InfluxQL; returns the `results` list (times as epoch microseconds)."""
        return self.api.query(q)

    def _ensure_db(self) -> None:
        if self._db_ready or not self.settings.create_database:
            return
        self.query(f"CREATE DATABASE {ident(self.settings.database)}")
        self._db_ready = True

    # ---- write side ---------------------------------------------------------------------------------------

    def write(self, batch: Batch) -> WriteResult:
        """Store a batch: new points, dead letters and conflicts. Raises StoreError (the server is not working:
        retry the batch) or StoreDataError (a dead letter InfluxDB would not take), never anything else."""
        try:
            return self._write(batch)
        except (StoreError, StoreDataError):
            raise
        except MemoryError as exc:
            raise StoreError(f"influxdb {self.settings.url}: {exc!r}") from exc
        except Exception as exc:  # a point this store cannot express (no meter info, a value of the wrong type)
            raise StoreDataError(f"influxdb cannot store this batch: {type(exc).__name__}: {exc}") from exc

    def _write(self, batch: Batch) -> WriteResult:
        self._ensure_db()
        site_of = batch.site_of()
        unique: dict[Key, Point] = {}
        in_batch_dups = 0
        for p in batch.points:
            key = (p[METER], p[TS], p[QUANTITY])
            if key in unique:
                in_batch_dups += 1
            else:
                unique[key] = p
        existing = self._existing(site_of, list(unique.values())) if unique else {}
        new: list[Point] = []
        earlier: list[Point] = []  # stored by an attempt that failed before it could say so
        earlier_keys: list[tuple[str, str, int, str]] = []
        duplicates = in_batch_dups
        conflicts: list[DeadLetter] = []
        now_us = int(time.time() * 1_000_000)
        for key, p in unique.items():
            there = existing.get(key)
            seen = classify(there, content_of(p))
            if seen is Seen.NEW:
                new.append(p)
            elif seen is Seen.DUPLICATE:
                full = (site_of[key[0]], *key)
                if full in self._unreported:
                    earlier_keys.append(full)
                    earlier.append(p)
                else:
                    duplicates += 1
            elif there is not None:
                conflicts.append(dead_point(now_us, p, batch, point_conflict(p, there)))
        held, held_dups, held_conflicts = self._held_plan(batch, site_of, now_us) if batch.held else ([], 0, [])
        duplicates += held_dups
        conflicts += held_conflicts
        dead = [*batch.dead, *conflicts]
        line = self._lines.line
        lines = [line(p, batch) for p in new]  # before anything is written: a point it cannot express fails here
        held_lines = [influx_held.held_line(h, batch) for h in held]
        self._write_dead(dead)  # first: when InfluxDB refuses them, nothing of the batch is stored yet
        self._write_held(held_lines)
        stored, refused = self._write_points(new, lines, batch, site_of, now_us)
        try:
            self._write_dead(refused)
        except (StoreError, StoreDataError):
            self._remember(stored, site_of)
            raise
        self._unreported.difference_update(earlier_keys)  # reported now
        stored += earlier
        new_keys = None if len(stored) == len(batch.points) else frozenset((p[METER], p[TS], p[QUANTITY])
                                                                           for p in stored)
        return WriteResult(stored=len(stored), duplicates=duplicates, conflicts=len(conflicts),
                           dead_lettered=len(dead) + len(refused), new_keys=new_keys, held=len(held))

    def _held_plan(self, batch: Batch, site_of: dict[str, str],
                   now_us: int) -> tuple[list[HeldRow], int, list[DeadLetter]]:
        """Which held rows are new, how many are duplicates (held, or counted as a point, already) and which
        conflict with what is stored at their key."""
        unique = {(h.meter, h.ts_us, h.quantity): h for h in batch.held}
        rows = list(unique.values())
        duplicates = len(batch.held) - len(rows)
        there = self._existing(site_of, [h.as_point() for h in rows], self._from_held)
        points = self._existing(site_of, [h.as_point() for h in rows])
        new: list[HeldRow] = []
        conflicts: list[DeadLetter] = []
        for key, h in unique.items():
            found, what = (there[key], "held record") if key in there else (points.get(key), "point")
            seen = classify(found, h.content())
            if seen is Seen.NEW:
                new.append(h)
            elif seen is Seen.DUPLICATE:
                duplicates += 1
            elif found is not None:
                conflicts.append(dead_point(now_us, h.as_point(), batch, held_conflict(h, what, found)))
        return new, duplicates, conflicts

    def _write_held(self, lines: list[str]) -> None:
        if not lines:
            return
        for lo, hi, reason in self.api.write_lines(lines):
            if reason is not None:
                raise StoreDataError(f"influxdb refused {hi - lo} held record(s): {reason[:500]}")

    def _write_points(self, new: list[Point], lines: list[str], batch: Batch, site_of: dict[str, str],
                      now_us: int) -> tuple[list[Point], list[DeadLetter]]:
        """Write new points chunk by chunk: the points InfluxDB kept, and dead letters for those it refused."""
        stored: list[Point] = []
        refused: list[DeadLetter] = []
        if not new:
            return stored, refused
        try:
            for lo, hi, reason in self.api.write_lines(lines):
                part = new[lo:hi]
                if reason is None:
                    stored += part
                    continue
                kept = self._existing(site_of, part)  # a partial write keeps some: find out which
                missing = []
                for k, p in enumerate(part):
                    there = kept.get((p[METER], p[TS], p[QUANTITY]))
                    if classify(there, content_of(p)) is Seen.DUPLICATE:
                        stored.append(p)
                    else:
                        missing.append(k)
                for k, why in zip(missing, self.api.settle([lines[lo + k] for k in missing]), strict=True):
                    if why is None:
                        stored.append(part[k])
                    else:
                        refused.append(dead_point(now_us, part[k], batch, f"influxdb refused the write: {why[:500]}"))
        except StoreError:
            self._remember(stored, site_of)
            raise
        return stored, refused

    def _write_dead(self, dead: Sequence[DeadLetter]) -> None:
        if not dead:
            return
        for lo, hi, reason in self.api.write_lines([dead_line(d) for d in dead]):
            if reason is not None:
                raise StoreDataError(f"influxdb refused {hi - lo} dead letter(s) (e.g. {dead[lo].reason[:80]!r}): "
                                     f"{reason[:500]}")

    def _remember(self, stored: Sequence[Point], site_of: dict[str, str]) -> None:
        if len(self._unreported) + len(stored) > REMEMBER_MAX:
            self._unreported.clear()  # bounded: forgotten ones count as duplicates on the retry, nothing worse
        self._unreported.update((site_of[p[METER]], p[METER], p[TS], p[QUANTITY]) for p in stored)

    def _existing(self, site_of: dict[str, str], points: Sequence[Point],
                  measurement: str | None = None) -> dict[Key, tuple[Any, ...]]:
        """Content of the stored points (or held records, `measurement`) with the keys of `points` (one query,
        one statement per meter)."""
        source = measurement or self._from_points
        spans: dict[str, list[int]] = defaultdict(lambda: [2**63, -1])
        for p in points:
            span = spans[p[METER]]
            span[0] = min(span[0], p[TS])
            span[1] = max(span[1], p[TS])
        if not spans:
            return {}
        statements = [f"SELECT {', '.join(CONTENT_NAMES)} FROM {source} WHERE site = {ql(site_of[meter])} "
                      f"AND meter = {ql(meter)} AND time >= {lo}u AND time <= {hi}u GROUP BY quantity"
                      for meter, (lo, hi) in spans.items()]
        found: dict[Key, tuple[Any, ...]] = {}
        for meter, result in zip(spans, self.query("; ".join(statements)), strict=True):
            for series in result.get("series", []):
                quantity = series.get("tags", {}).get("quantity", "")
                cols = series["columns"]
                for row in series["values"]:
                    doc = dict(zip(cols, row, strict=True))
                    found[(meter, int(doc["time"]), quantity)] = tuple(
                        float(doc[n]) if n in _FLOAT_NAMES and doc.get(n) is not None else doc.get(n)
                        for n in CONTENT_NAMES)
        return found

    # ---- read side ----------------------------------------------------------------------------------------

    def _series(self, q: str) -> list[dict[str, Any]]:
        self._ensure_db()
        out: list[dict[str, Any]] = []
        for result in self.query(q):
            out += result.get("series", [])
        return out

    def meter_summaries(self, site: str) -> list[MeterSummary]:
        counts = {s["tags"]["meter"]: (s["tags"], s["values"][0][1]) for s in self._series(
            f"SELECT COUNT(value) FROM {self._from_points} WHERE site = {ql(site)} AND {METERS_ONLY} "
            f"GROUP BY meter, area, carrier")}
        last = {s["tags"]["meter"]: s["values"][0] for s in self._series(
            f"SELECT LAST(quality) FROM {self._from_points} WHERE site = {ql(site)} AND {METERS_ONLY} "
            f"GROUP BY meter")}
        out = []
        for meter, (tags, n) in sorted(counts.items()):
            ts, quality = last.get(meter, (None, None))
            out.append(MeterSummary(meter=meter, site=site, area=tags.get("area", ""), carrier=tags.get("carrier", ""),
                                    last_ts=us_to_dt(int(ts)) if ts is not None else None, last_quality=quality,
                                    samples=int(n)))
        return out

    def latest_values(self, site: str) -> list[LatestValue]:
        out = []
        for s in self._series(f"SELECT LAST(value), unit, quality, flags FROM {self._from_points} "
                              f"WHERE site = {ql(site)} AND {METERS_ONLY} GROUP BY meter, quantity"):
            ts, value, unit, quality, flags = s["values"][0]
            out.append(LatestValue(meter=s["tags"]["meter"], site=site, quantity=s["tags"]["quantity"],
                                   ts=us_to_dt(int(ts)), value=float(value), unit=unit or "", quality=quality or "",
                                   flags=tuple(f for f in (flags or "").split(",") if f)))
        return sorted(out, key=lambda v: (v.meter, v.quantity))

    def dead_letters(self, site: str, limit: int = 100) -> list[DeadLetterRecord]:
        out = []
        for s in self._series(f"SELECT * FROM {self._from_dead} WHERE site = {ql(site)} "
                              f"ORDER BY time DESC LIMIT {int(limit)}"):
            cols = s["columns"]
            for i, values in enumerate(s["values"]):
                row = dict(zip(cols, values, strict=True))
                payload, whole = dead_payload(row)
                reason = row.get("reason") or ""
                if whole is not None and whole > len(payload):
                    reason += f" [payload kept in InfluxDB: the first {len(payload)} of {whole} bytes]"
                seq, idx = (row[n] if row.get(n) is not None else _int(row.get(f"{n}_text")) for n in ("seq", "idx"))
                out.append(DeadLetterRecord(id=i, received=us_to_dt(int(row["time"])), topic=row.get("topic") or "",
                                            meter=row.get("meter"), seq=seq, index=idx, reason=reason,
                                            payload=payload))
        return out

    def totals(self, site: str, start: datetime, end: datetime) -> list[MeterTotal]:
        where = (f"WHERE site = {ql(site)} AND time >= {ts_to_us(start)}u AND time < {ts_to_us(end)}u "
                 f"AND energy_unit =~ /./")
        sums = self._series(f"SELECT SUM(energy), SUM(co2e_kg), COUNT(energy), SUM(est_energy), SUM(est_co2e_kg) "
                            f"FROM {self._from_points} {where} GROUP BY meter, area, carrier, scope")
        units = {s["tags"]["meter"]: s["values"][0][1] for s in self._series(
            f"SELECT LAST(energy_unit) FROM {self._from_points} {where} GROUP BY meter")}
        fids = self._series(f"SELECT DISTINCT(factor_id) FROM {self._from_points} {where} GROUP BY meter")
        fvers = self._series(f"SELECT DISTINCT(factor_version) FROM {self._from_points} {where} GROUP BY meter")
        ids = {s["tags"]["meter"]: tuple(sorted(v[1] for v in s["values"])) for s in fids}
        vers = {s["tags"]["meter"]: tuple(sorted(v[1] for v in s["values"])) for s in fvers}
        acc: dict[str, MeterTotal] = {}
        for s in sums:
            tags = s["tags"]
            _, energy, co2e, n, est_energy, est_co2e = s["values"][0]
            meter = tags["meter"]
            unit = units.get(meter)
            prev = acc.get(meter)
            acc[meter] = MeterTotal(
                meter=meter, site=site, area=tags.get("area", ""), carrier=tags.get("carrier", ""),
                scope=",".join(sorted({*(prev.scope.split(",") if prev and prev.scope else ()), tags.get("scope", "")}
                                      - {""})),
                energy=(energy or 0.0) + (prev.energy if prev else 0.0),
                energy_unit=unit or "", co2e_kg=(co2e or 0.0) + (prev.co2e_kg if prev else 0.0),
                points=int(n) + (prev.points if prev else 0), factor_ids=ids.get(meter, ()),
                factor_versions=vers.get(meter, ()),
                estimated_energy=(est_energy or 0.0) + (prev.estimated_energy if prev else 0.0),
                estimated_co2e_kg=(est_co2e or 0.0) + (prev.estimated_co2e_kg if prev else 0.0))
        return [acc[m] for m in sorted(acc)]

    def series(self, site: str, start: datetime, end: datetime, step: str, tz: str) -> list[SeriesPoint]:
        """Per meter and bucket sums, cut by InfluxDB (influx_series: GROUP BY time() tz())."""
        return influx_series.series(self._series, self._from_points, site, start, end, step, tz)

    def energy_flows(self, site: str, start: datetime, end: datetime) -> list[EnergyFlow]:
        return influx_series.flows(self._series, self._from_points, self.totals(site, start, end), site, start, end,
                                   None, "UTC")

    def energy_flow_series(self, site: str, start: datetime, end: datetime, step: str,
                           tz: str) -> list[EnergyFlow]:
        return influx_series.flows(self._series, self._from_points, self.series(site, start, end, step, tz), site,
                                   start, end, step, tz)

    def factor_usage(self, site: str, start: datetime, end: datetime) -> list[FactorUse]:
        return influx_series.factor_usage(self._series, self._from_points, site, start, end)

    def variable_totals(self, site: str, start: datetime, end: datetime) -> list[VariableTotal]:
        """Per variable: sums of the fields its points carry (influx_lines: amount, held, weighted, weight_s)."""
        return influx_series.variables(self._series, self._from_points, site, start, end, None, "UTC")

    def variable_series(self, site: str, start: datetime, end: datetime, step: str,
                        tz: str) -> list[VariableTotal]:
        return influx_series.variables(self._series, self._from_points, site, start, end, step, tz)

    def apply_retention(self, now: datetime, chunk_rows: int = CHUNK_ROWS, budget_s: float | None = None) -> Pruned:
        """Nothing to do here: InfluxDB deletes old points itself, by the database's retention policy
        ([store] retention_policy)."""
        return Pruned()

    def point_count(self) -> int:
        series = self._series(f"SELECT COUNT(value) FROM {self._from_points}")
        return int(series[0]["values"][0][1]) if series else 0

    def close(self) -> None:
        self.api.close()


def _int(text: Any) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None
