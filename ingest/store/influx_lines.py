"""Line protocol for the InfluxDB store: points, dead letters (payload base64, whatever it holds), InfluxQL
quoting, and cutting lines into requests of bounded size.

Dead letters: measurement `deadletter`, tags `id` (a content hash, so a retried write lands on the same
point) and `site`; fields `topic`, `reason`, `meter` (text, control characters shown escaped as `\\n`,
`\\xNN`: line protocol of InfluxDB 2.x/3.x has no way to carry a newline), `seq`, `idx` (`seq_text`,
`idx_text` for an integer beyond 64 bits), and the payload
exactly, base64 in `payload_b64` (more parts in `payload_b64_1`, `payload_b64_2`, ... of at most
PART_CHARS each, under the 64 KB a string field may hold) with its length in `payload_bytes`. A payload over
MAX_PAYLOAD_BYTES keeps its first MAX_PAYLOAD_BYTES (`payload_bytes` tells the whole length; the full
payload also went out on the dead-letter topic).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
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
    Point,
    VariableInfo,
)
from ingest.store.variables import amounts

PART_CHARS = 60_000
INT64 = 1 << 63
MAX_PAYLOAD_BYTES = 1 << 20
_OPTIONAL_FLOATS = (("delta", DELTA), ("interval_s", INTERVAL), ("energy", ENERGY), ("co2e_kg", CO2E))
# control characters (and DEL) as visible escapes: a line never breaks inside a field
_CONTROL = {c: f"\\x{c:02x}" for c in [*range(32), 127]} | {10: "\\n", 13: "\\r", 9: "\\t"}


def tag(v: str) -> str:
    return text(v).replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def quoted(v: str) -> str:
    return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'


def ql(v: str) -> str:
    """An InfluxQL string literal."""
    return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"


def ident(v: str) -> str:
    """An InfluxQL quoted identifier (database, retention policy)."""
    return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'


def text(v: str) -> str:
    """Free text made safe for any line protocol: control characters escaped, lone surrogates too."""
    return v.encode("utf-8", "backslashreplace").decode("utf-8").translate(_CONTROL)


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
            q = self._text[v] = quoted(v)
        return q

    def line(self, p: Point, batch: Batch) -> str:
        ref = p[FACTOR]
        kind = "counter" if p[DELTA] is not None or p[INTERVAL] is not None or "first" in p[FLAGS] else "instant"
        variable = batch.variables.get(p[METER])
        if variable is not None:
            return self._variable_line(p, variable, kind)
        info = batch.meters[p[METER]]
        key = (info.site, p[METER], p[QUANTITY], kind, ref)
        prefix = self._series.get(key)
        if prefix is None:
            factor = batch.factors.get(ref) if ref is not None else None
            tags = [("meter", p[METER]), ("site", info.site), ("area", info.area), ("carrier", info.carrier),
                    ("quantity", p[QUANTITY]), ("kind", kind), ("scope", factor.scope if factor else "")]
            prefix = self._series[key] = "points," + ",".join(f"{k}={tag(v)}" for k, v in tags if v) + " "
        fields = [f"value={float(p[VALUE])!r}"]
        for name, i in _OPTIONAL_FLOATS:
            if p[i] is not None:
                fields.append(f"{name}={float(p[i])!r}")
        flags = p[FLAGS]
        if flags and "estimated" in flags.split(",") and p[ENERGY] is not None:  # sums of what is estimated
            fields.append(f"est_energy={float(p[ENERGY])!r}")
            if p[CO2E] is not None:
                fields.append(f"est_co2e_kg={float(p[CO2E])!r}")
        flow = batch.flows.get((p[METER], p[TS], p[QUANTITY])) if batch.flows else None
        if flow is not None:  # export or generation energy (calc.generation): its own fields, never `energy`
            fields.append(f"flow_energy={float(flow[0])!r},flow_unit={self._quoted(flow[1])}")
        fields.append(f"unit={self._quoted(p[UNIT])},quality={self._quoted(p[QUALITY])},flags={self._quoted(flags)}")
        if p[AGENT] is not None:
            fields.append(f"agent={self._quoted(p[AGENT])}")
        if ref is not None:
            suffix = self._factor.get(ref)
            if suffix is None:
                f = batch.factors[ref]
                suffix = self._factor[ref] = (f"energy_unit={quoted(f.energy_unit)},factor_id={quoted(f.factor_id)},"
                                              f"factor_version={quoted(f.factor_version)}")
            fields.append(suffix)
        return f"{prefix}{','.join(fields)},seq={int(p[SEQ])}i {int(p[TS])}"


    def _variable_line(self, p: Point, info: VariableInfo, kind: str) -> str:
        """A production counter's or driver's point: no carrier tag (energy queries never see it), tags `variable`
        (its kind), `measure`, `line` and `var_unit`, and what it adds to its figures (ingest.store.variables):
        fields amount, held, weighted, weight_s on the points of its quantity."""
        key = (info.site, p[METER], p[QUANTITY], kind, "variable")
        prefix = self._series.get(key)
        if prefix is None:
            tags = [("meter", p[METER]), ("site", info.site), ("area", info.area), ("line", info.line),
                    ("variable", info.kind), ("measure", info.measure), ("var_unit", info.unit),
                    ("quantity", p[QUANTITY]), ("kind", kind)]
            prefix = self._series[key] = "points," + ",".join(f"{k}={tag(v)}" for k, v in tags if v) + " "
        fields = [f"value={float(p[VALUE])!r}"]
        for name, i in _OPTIONAL_FLOATS:
            if p[i] is not None:
                fields.append(f"{name}={float(p[i])!r}")
        add = amounts(p, info)
        if add is not None:
            fields += [f"{n}={float(v)!r}" for n, v in zip(("amount", "held", "weighted", "weight_s"), add,
                                                            strict=True)]
        fields.append(f"unit={self._quoted(p[UNIT])},quality={self._quoted(p[QUALITY])},"
                      f"flags={self._quoted(p[FLAGS])}")
        if p[AGENT] is not None:
            fields.append(f"agent={self._quoted(p[AGENT])}")
        return f"{prefix}{','.join(fields)},seq={int(p[SEQ])}i {int(p[TS])}"


def dead_site(d: DeadLetter) -> str:
    parts = d.topic.split("/")
    return parts[2] if len(parts) > 2 and "/".join(parts[:2]) == "carbonwatch/v1" else ""


def dead_line(d: DeadLetter) -> str:
    """One dead letter (see the module docstring for its layout)."""
    ident_ = hashlib.sha256(b"%d|%s|%s|" % (d.received_us, d.topic.encode("utf-8", "backslashreplace"),
                                            d.reason.encode("utf-8", "backslashreplace")) + d.payload)
    site = dead_site(d)
    tags = f"deadletter,id={ident_.hexdigest()[:16]}" + (f",site={tag(site)}" if site else "")
    fields = [f"topic={quoted(text(d.topic))}", f"reason={quoted(text(d.reason))}"]
    encoded = base64.b64encode(d.payload[:MAX_PAYLOAD_BYTES]).decode("ascii")
    for k in range(0, max(len(encoded), 1), PART_CHARS):
        name = "payload_b64" if k == 0 else f"payload_b64_{k // PART_CHARS}"
        fields.append(f'{name}="{encoded[k:k + PART_CHARS]}"')
    fields.append(f"payload_bytes={len(d.payload)}i")
    if d.meter is not None:
        fields.append(f"meter={quoted(text(d.meter))}")
    for name, value in (("seq", d.seq), ("idx", d.index)):
        if value is not None:  # an integer InfluxDB cannot hold is kept as text (a refused seq is why, often)
            fields.append(f"{name}={int(value)}i" if -INT64 <= value < INT64 else f'{name}_text="{int(value)}"')
    return f"{tags} {','.join(fields)} {int(d.received_us)}"


def dead_payload(row: dict[str, Any]) -> tuple[bytes, int | None]:
    """The payload bytes of a stored dead-letter row and its whole length (None for rows written before the
    payload was base64: their text is returned as it was stored)."""
    if row.get("payload_b64") is None:
        return (row.get("payload") or "").encode("utf-8", "backslashreplace"), None
    parts = [str(row["payload_b64"])]
    k = 1
    while row.get(f"payload_b64_{k}") is not None:
        parts.append(str(row[f"payload_b64_{k}"]))
        k += 1
    try:
        payload = base64.b64decode("".join(parts), validate=True)
    except (binascii.Error, ValueError):
        payload = b""
    whole = row.get("payload_bytes")
    return payload, int(whole) if whole is not None else len(payload)


def chunks(lines: list[str], max_lines: int, max_bytes: int) -> list[tuple[int, int]]:
    """[lo, hi) ranges of `lines` of at most max_lines lines and about max_bytes bytes (a longer line alone)."""
    out: list[tuple[int, int]] = []
    lo, size = 0, 0
    for i, line in enumerate(lines):
        n = len(line) + 1
        if i > lo and (i - lo >= max_lines or size + n > max_bytes):
            out.append((lo, i))
            lo, size = i, 0
        size += n
    if lo < len(lines):
        out.append((lo, len(lines)))
    return out
