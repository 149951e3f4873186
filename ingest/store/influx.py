"""The InfluxDB store over the v1 HTTP API: line protocol to /write, InfluxQL to /query.

The v1 API is the one InfluxDB 1.x serves and 2.x (with a DBRP mapping) and 3.x keep compatible, so
one code path covers them; the influxdb-client package needs /api/v2, which 1.x lacks (tests run 1.6.7).
Layout, chartable by Grafana as is: measurement `points`, tags meter, site, area, carrier, quantity,
kind, scope (all fixed per meter and quantity, so a point's series never changes); fields value,
delta, interval_s, energy, co2e_kg, unit, energy_unit, quality, flags, factor_id, factor_version, seq.
Dead letters go to measurement `deadletter`. A point already stored with other content is refused
as a conflict (checked with one query per batch), never overwritten.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import httpx

from ingest.config import InfluxStoreSettings
from ingest.points import (
    AGENT,
    CO2E,
    CONTENT_IDX,
    CONTENT_NAMES,
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
    Point,
    ts_to_us,
    us_to_dt,
    us_to_iso,
)
from ingest.store.base import DeadLetterRecord, LatestValue, MeterSummary, MeterTotal, StoreError, WriteResult

CHUNK_LINES = 5000
_FLOAT_FIELDS = (("value", VALUE), ("delta", DELTA), ("interval_s", INTERVAL), ("energy", ENERGY), ("co2e_kg", CO2E))
_OPTIONAL_FLOATS = _FLOAT_FIELDS[1:]
_CONTENT_NAMES = CONTENT_NAMES  # value, unit, delta, interval_s, quality, flags
_FLOAT_NAMES = frozenset(name for name, _ in _FLOAT_FIELDS)  # JSON answers 2 for 2.0


def _tag(v: str) -> str:
    return v.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def _str(v: str) -> str:
    return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _ql(v: str) -> str:
    return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"


class LineMaker:
    """Line protocol for points, with the escaped per-series prefix and per-factor suffix cached.

    Tags are fixed per meter and quantity, so a replay lands on the same series (and point).
    """

    def __init__(self) -> None:
        self._series: dict[tuple[Any, ...], str] = {}
        self._factor: dict[int, str] = {}
        self._text: dict[str, str] = {}

    def _quoted(self, v: str) -> str:
        q = self._text.get(v)
        if q is None:
            if len(self._text) > 10_000:  # free text (agent names, flags) stays bounded
                self._text.clear()
            q = self._text[v] = _str(v)
        return q

    def line(self, p: Point, batch: Batch) -> str:
        ref = p[FACTOR]
        kind = "counter" if p[DELTA] is not None or p[INTERVAL] is not None or "first" in p[FLAGS] else "instant"
        key = (p[METER], p[QUANTITY], kind, ref)
        prefix = self._series.get(key)
        if prefix is None:
            info = batch.meters[p[METER]]
            factor = batch.factors.get(ref) if ref is not None else None
            tags = [("meter", p[METER]), ("site", info.site), ("area", info.area), ("carrier", info.carrier),
                    ("quantity", p[QUANTITY]), ("kind", kind), ("scope", factor.scope if factor else "")]
            prefix = self._series[key] = "points," + ",".join(f"{k}={_tag(v)}" for k, v in tags if v) + " "
        fields = [f"value={float(p[VALUE])!r}"]
        for name, i in _OPTIONAL_FLOATS:
            if p[i] is not None:
                fields.append(f"{name}={float(p[i])!r}")
        fields.append(f"unit={self._quoted(p[UNIT])},quality={self._quoted(p[QUALITY])},flags={self._quoted(p[FLAGS])}")
        if p[AGENT] is not None:
            fields.append(f"agent={self._quoted(p[AGENT])}")
        if ref is not None:
            suffix = self._factor.get(ref)
            if suffix is None:
                f = batch.factors[ref]
                suffix = self._factor[ref] = (f"energy_unit={_str(f.energy_unit)},factor_id={_str(f.factor_id)},"
                                              f"factor_version={_str(f.factor_version)}")
            fields.append(suffix)
        return f"{prefix}{','.join(fields)},seq={int(p[SEQ])}i {p[TS]}"


_DEFAULT_MAKER = LineMaker()


def point_line(p: Point, batch: Batch) -> str:
    """Line protocol of one point (see LineMaker)."""
    return _DEFAULT_MAKER.line(p, batch)


def dead_line(d: DeadLetter) -> str:
    ident = hashlib.sha256(b"%d|%s|%s|" % (d.received_us, d.topic.encode(), d.reason.encode()) + d.payload)
    site = d.topic.split("/")[2] if d.topic.startswith("carbonwatch/v1/") and d.topic.count("/") >= 2 else ""
    tags = f"deadletter,id={ident.hexdigest()[:16]}" + (f",site={_tag(site)}" if site else "")
    fields = [f"topic={_str(d.topic)}", f"reason={_str(d.reason)}",
              f"payload={_str(d.payload.decode('utf-8', 'backslashreplace'))}"]
    if d.meter is not None:
        fields.append(f"meter={_str(d.meter)}")
    if d.seq is not None:
        fields.append(f"seq={int(d.seq)}i")
    if d.index is not None:
        fields.append(f"idx={int(d.index)}i")
    return f"{tags} {','.join(fields)} {d.received_us}"


class InfluxStore:
    """Writer and reader of one InfluxDB database (and retention policy) over HTTP."""

    def __init__(self, settings: InfluxStoreSettings, transport: httpx.BaseTransport | None = None) -> None:
        self.settings = settings
        headers = {"Authorization": f"Token {settings.token}"} if settings.token else {}
        self._params: dict[str, str] = {"db": settings.database}
        if settings.username:
            self._params.update(u=settings.username, p=settings.password or "")
        self._http = httpx.Client(base_url=settings.url, headers=headers, timeout=settings.timeout_s,
                                  transport=transport)
        self._db_ready = False
        self._lines = LineMaker()
        rp = f'"{settings.retention_policy}"' if settings.retention_policy else ""
        self._from_points = f'"{settings.database}".{rp}."points"' if rp else f'"{settings.database}".."points"'
        self._from_dead = self._from_points.replace('"points"', '"deadletter"')

    # ---- HTTP ---------------------------------------------------------------------------------------------

    def _post(self, path: str, params: dict[str, str], content: str | None = None,
              data: dict[str, str] | None = None) -> httpx.Response:
        try:
            resp = self._http.post(path, params={**self._params, **params}, content=content, data=data)
        except httpx.HTTPError as exc:
            raise StoreError(f"influxdb {self.settings.url}: {type(exc).__name__}: {exc}") from exc
        if resp.status_code >= 500 or resp.status_code in (401, 403, 404):
            raise StoreError(f"influxdb {self.settings.url}{path}: HTTP {resp.status_code}: {resp.text[:200]}")
        return resp

    def query(self, q: str) -> list[dict[str, Any]]:
        """Run InfluxQL; returns the `results` list (times as epoch microseconds)."""
        resp = self._post("/query", {"epoch": "u"}, data={"q": q})
        if resp.status_code != 200:
            raise StoreError(f"influxdb query refused: HTTP {resp.status_code}: {resp.text[:200]}")
        results: list[dict[str, Any]] = resp.json().get("results", [])
        for r in results:
            if "error" in r:
                raise StoreError(f"influxdb query error: {r['error']}")
        return results

    def _ensure_db(self) -> None:
        if self._db_ready or not self.settings.create_database:
            return
        self.query(f'CREATE DATABASE "{self.settings.database}"')
        self._db_ready = True

    def _write_lines(self, lines: list[str]) -> list[str]:
        """Write in chunks; returns the reasons of chunks InfluxDB refused as bad data (HTTP 400)."""
        refused = []
        params = {"precision": "u"}
        if self.settings.retention_policy:
            params["rp"] = self.settings.retention_policy
        for start in range(0, len(lines), CHUNK_LINES):
            resp = self._post("/write", params, content="\n".join(lines[start:start + CHUNK_LINES]))
            if resp.status_code == 400:
                refused.append(resp.text[:300])
            elif resp.status_code != 204:
                raise StoreError(f"influxdb write: HTTP {resp.status_code}: {resp.text[:200]}")
        return refused

    # ---- write side ---------------------------------------------------------------------------------------

    def write(self, batch: Batch) -> WriteResult:
        self._ensure_db()
        points = batch.points
        unique: dict[tuple[str, int, str], Point] = {}
        in_batch_dups = 0
        for p in points:
            key = (p[METER], p[TS], p[QUANTITY])
            if key in unique:
                in_batch_dups += 1
            else:
                unique[key] = p
        existing = self._existing(list(unique.values())) if unique else {}
        new: list[Point] = []
        duplicates = in_batch_dups
        conflicts: list[DeadLetter] = []
        now_us = int(time.time() * 1_000_000)
        for key, p in unique.items():
            stored = existing.get(key)
            if stored is None:
                new.append(p)
                continue
            content = tuple(p[i] for i in CONTENT_IDX)
            if _same(stored, content):
                duplicates += 1
            else:
                diff = ", ".join(f"{n}: stored {a!r}, got {b!r}" for n, a, b in
                                 zip(_CONTENT_NAMES, stored, content, strict=True) if not _same((a,), (b,)))
                reason = (f"conflict: meter {p[METER]!r} {p[QUANTITY]} at {us_to_iso(p[TS])} is already stored "
                          f"with other content; kept the stored point; differs in {diff}")
                conflicts.append(self._dead_point(now_us, p, batch, reason))
        all_dead: list[DeadLetter] = [*batch.dead, *conflicts]
        line = self._lines.line
        refused = self._write_lines([line(p, batch) for p in new]) if new else []
        if refused:  # bad data, not an outage: keep it as dead letters rather than retrying forever
            all_dead += [self._dead_point(now_us, p, batch, f"influxdb refused the write: {refused[0]}") for p in new]
            new = []
        if all_dead:
            self._write_lines([dead_line(d) for d in all_dead])
        new_keys = None if len(new) == len(points) else frozenset((p[METER], p[TS], p[QUANTITY]) for p in new)
        return WriteResult(stored=len(new), duplicates=duplicates, conflicts=len(conflicts),
                           dead_lettered=len(all_dead), new_keys=new_keys)

    @staticmethod
    def _dead_point(now_us: int, p: Point, batch: Batch, reason: str) -> DeadLetter:
        info = batch.meters.get(p[METER])
        topic = f"carbonwatch/v1/{info.site}/{info.area}/{p[METER]}/reading" if info else ""
        return DeadLetter(now_us, topic, json.dumps(batch.describe(p)).encode(), reason, p[METER], p[SEQ])

    def _existing(self, points: list[Point]) -> dict[tuple[str, int, str], tuple[Any, ...]]:
        spans: dict[str, list[int]] = defaultdict(lambda: [2**63, -1])
        for p in points:
            span = spans[p[0]]
            span[0] = min(span[0], p[1])
            span[1] = max(span[1], p[1])
        statements = [f"SELECT {', '.join(_CONTENT_NAMES)} FROM {self._from_points} WHERE meter = {_ql(meter)} "
                      f"AND time >= {lo}u AND time <= {hi}u GROUP BY quantity" for meter, (lo, hi) in spans.items()]
        found: dict[tuple[str, int, str], tuple[Any, ...]] = {}
        for meter, result in zip(spans, self.query("; ".join(statements)), strict=True):
            for series in result.get("series", []):
                quantity = series.get("tags", {}).get("quantity", "")
                cols = series["columns"]
                for row in series["values"]:
                    doc = dict(zip(cols, row, strict=True))
                    found[(meter, int(doc["time"]), quantity)] = tuple(
                        float(doc[n]) if n in _FLOAT_NAMES and doc.get(n) is not None else doc.get(n)
                        for n in _CONTENT_NAMES)
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
            f"SELECT COUNT(value) FROM {self._from_points} WHERE site = {_ql(site)} GROUP BY meter, area, carrier")}
        last = {s["tags"]["meter"]: s["values"][0] for s in self._series(
            f"SELECT LAST(quality) FROM {self._from_points} WHERE site = {_ql(site)} GROUP BY meter")}
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
                              f"WHERE site = {_ql(site)} GROUP BY meter, quantity"):
            ts, value, unit, quality, flags = s["values"][0]
            out.append(LatestValue(meter=s["tags"]["meter"], site=site, quantity=s["tags"]["quantity"],
                                   ts=us_to_dt(int(ts)), value=float(value), unit=unit or "", quality=quality or "",
                                   flags=tuple(f for f in (flags or "").split(",") if f)))
        return sorted(out, key=lambda v: (v.meter, v.quantity))

    def dead_letters(self, site: str, limit: int = 100) -> list[DeadLetterRecord]:
        out = []
        for s in self._series(f"SELECT topic, meter, seq, idx, reason, payload FROM {self._from_dead} "
                              f"WHERE site = {_ql(site)} ORDER BY time DESC LIMIT {int(limit)}"):
            for i, (ts, topic, meter, seq, idx, reason, payload) in enumerate(s["values"]):
                out.append(DeadLetterRecord(id=i, received=us_to_dt(int(ts)), topic=topic, meter=meter, seq=seq,
                                            index=idx, reason=reason, payload=(payload or "").encode()))
        return out

    def totals(self, site: str, start: datetime, end: datetime) -> list[MeterTotal]:
        where = (f"WHERE site = {_ql(site)} AND time >= {ts_to_us(start)}u AND time < {ts_to_us(end)}u "
                 f"AND energy_unit =~ /./")
        sums = self._series(f"SELECT SUM(energy), SUM(co2e_kg), COUNT(energy), LAST(energy_unit) "
                            f"FROM {self._from_points} {where} GROUP BY meter, area, carrier, scope")
        fids = self._series(f"SELECT DISTINCT(factor_id) FROM {self._from_points} {where} GROUP BY meter")
        fvers = self._series(f"SELECT DISTINCT(factor_version) FROM {self._from_points} {where} GROUP BY meter")
        ids = {s["tags"]["meter"]: tuple(sorted(v[1] for v in s["values"])) for s in fids}
        vers = {s["tags"]["meter"]: tuple(sorted(v[1] for v in s["values"])) for s in fvers}
        acc: dict[str, MeterTotal] = {}
        for s in sums:
            tags = s["tags"]
            _, energy, co2e, n, unit = s["values"][0]
            meter = tags["meter"]
            prev = acc.get(meter)
            acc[meter] = MeterTotal(
                meter=meter, site=site, area=tags.get("area", ""), carrier=tags.get("carrier", ""),
                scope=",".join(sorted({*(prev.scope.split(",") if prev and prev.scope else ()), tags.get("scope", "")}
                                      - {""})),
                energy=(energy or 0.0) + (prev.energy if prev else 0.0),
                energy_unit=unit or "", co2e_kg=(co2e or 0.0) + (prev.co2e_kg if prev else 0.0),
                points=int(n) + (prev.points if prev else 0), factor_ids=ids.get(meter, ()),
                factor_versions=vers.get(meter, ()))
        return [acc[m] for m in sorted(acc)]

    def point_count(self) -> int:
        series = self._series(f"SELECT COUNT(value) FROM {self._from_points}")
        return int(series[0]["values"][0][1]) if series else 0

    def close(self) -> None:
        self._http.close()


def _same(a: Sequence[Any], b: Sequence[Any]) -> bool:
    """Field-by-field equality where InfluxDB's missing field (None) equals an empty string."""
    for x, y in zip(a, b, strict=True):
        if isinstance(x, float) or isinstance(y, float):
            if x is None or y is None or float(x) != float(y):
                return False
        elif (x or "") != (y or ""):
            return False
    return True
