"""Validate one MQTT reading message against the schema and the plant, and turn its samples into points.

Bad input never raises out of here: a bad message or a bad sample becomes a `DeadLetter` naming
what was wrong, and the good samples of the same message are still converted.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from pydantic import ValidationError

from calc import topics
from calc.factors import FactorSet, default_factor_set
from calc.plant import Carrier, Meter, Plant
from calc.plant_factors import plant_factors
from calc.schema import Flag, ReadingMessage, Sample, decode
from calc.table import FactorTable
from calc.units import UnitError, conversion_factor

# Column order of a stored point; stores insert tuples in this order.
POINT_COLUMNS = ("meter", "ts_us", "quantity", "site", "area", "carrier", "scope", "kind", "value", "unit",
                 "delta", "interval_s", "energy", "energy_unit", "co2e_kg", "quality", "flags", "factor_id",
                 "factor_version", "seq", "agent")
# Index of the columns that make a point's identity and its content (for duplicate / conflict tests).
KEY_SLICE = slice(0, 3)
CONTENT_IDX = (8, 9, 10, 11, 15, 16)  # value, unit, delta, interval_s, quality, flags

Point = tuple[Any, ...]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FLOW_FLAGS = frozenset({Flag.ROLLOVER, Flag.RESET})


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Input that was not stored as a point, with the reason; kept in the store and sent to the dead-letter topic."""

    received_us: int
    topic: str
    payload: bytes
    reason: str
    meter: str | None = None
    seq: int | None = None
    index: int | None = None  # sample index in the message, None when the whole message is bad

    def as_json(self) -> bytes:
        return json.dumps({"received": us_to_iso(self.received_us), "topic": self.topic, "reason": self.reason,
                           "meter": self.meter, "seq": self.seq, "index": self.index,
                           "payload": self.payload.decode("utf-8", "replace")}).encode()


@dataclass(slots=True)
class Converted:
    """The outcome of one message: points to store and input to dead-letter."""

    topic: str
    points: list[Point] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    area: str | None = None
    meter: str | None = None


def ts_to_us(ts: datetime) -> int:
    delta = ts - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def us_to_dt(us: int) -> datetime:
    return datetime.fromtimestamp(us // 1_000_000, UTC).replace(microsecond=us % 1_000_000)


def us_to_iso(us: int) -> str:
    return us_to_dt(us).isoformat().replace("+00:00", "Z")


def _validation_reason(exc: ValidationError, prefix: str = "") -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"])
        loc = f"{prefix}{loc}" if loc else (prefix.rstrip(".") or "payload")
        value = err.get("input")
        shown = "" if isinstance(value, dict | list) else f" (got {value!r:.60})"
        parts.append(f"{loc}: {err['msg']}{shown}")
    more = len(exc.errors()) - 5
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def _counted(sample: Sample) -> bool:
    return not sample.quantity.endswith("_export")


@dataclass(slots=True)
class _Pending:
    """Rows of a batch waiting for the one vectorized CO2e step (counted samples only)."""

    rows: list[list[Any]] = field(default_factory=list)
    meter_idx: list[int] = field(default_factory=list)
    quantity: list[float] = field(default_factory=list)
    ts_us: list[int] = field(default_factory=list)


class Converter:
    """Turns reading messages of one plant into points with calc's vectorized FactorTable (all carriers).

    `plant_data` is the parsed plant file: its [factors] and [[factor_overrides]] and meter conditions
    are merged with the factor set (calc.plant_factors); a bad one raises calc.factors.FactorError.
    """

    def __init__(self, plant: Plant, plant_data: Mapping[str, Any] | None = None, factors: FactorSet | None = None,
                 max_future_s: float = 300.0, clock: Callable[[], float] | None = None,
                 source: str = "<plant>") -> None:
        import time

        self.plant = plant
        self.site = plant.site.id
        self.meters: dict[str, Meter] = plant.meters_by_id
        data = plant_data if plant_data is not None else {}
        self.table = FactorTable.build(plant_factors(factors or default_factor_set(), plant, data, source), plant)
        self.max_future_us = int(max_future_s * 1_000_000)
        self.start_us = ts_to_us(plant.site.start)
        self.clock = clock or time.time

    def convert(self, topic: str, payload: bytes, received_us: int | None = None) -> Converted:
        """Validate and convert one message; never raises on bad input."""
        return self.convert_batch([(topic, payload, received_us)])[0]

    def convert_batch(self, items: Sequence[tuple[str, bytes, int | None]]) -> list[Converted]:
        """Validate and convert several messages, with one vectorized CO2e step for all their samples."""
        pending = _Pending()
        outs = [self._one(topic, payload, received_us, pending) for topic, payload, received_us in items]
        if pending.rows:
            kg, rows = self.table.co2e_kg(np.asarray(pending.meter_idx, dtype=np.intp),
                                          np.asarray(pending.quantity, dtype=np.float64),
                                          np.asarray(pending.ts_us, dtype=np.int64).astype("datetime64[us]"))
            for row, co2e, ri in zip(pending.rows, kg.tolist(), rows.tolist(), strict=True):
                if ri < 0:  # cannot happen for meters without problems; kept explicit rather than NaN
                    row[14] = None
                    continue
                trow = self.table.rows[ri]
                row[6], row[14], row[17], row[18] = trow.scope, co2e, trow.factor_id, trow.factor_version
        for out in outs:
            out.points = [tuple(r) for r in out.points]
        return outs

    def _one(self, topic: str, payload: bytes, received_us: int | None, pending: _Pending) -> Converted:
        now_us = received_us if received_us is not None else int(self.clock() * 1_000_000)
        out = Converted(topic=topic)

        def reject(reason: str, meter: str | None = None, seq: int | None = None) -> Converted:
            out.dead.append(DeadLetter(now_us, topic, payload, reason, meter, seq))
            return out

        try:
            path = topics.parse_meter_topic(topic)
        except topics.TopicError as exc:
            return reject(f"topic: {exc}")
        if path.site != self.site:
            return reject(f"topic: site {path.site!r} is not this plant's site {self.site!r}")
        try:
            message = decode(payload)
            samples: list[tuple[int, Sample]] = list(enumerate(message.samples))
        except ValidationError as exc:
            partial = self._salvage(payload, exc, now_us, topic, out)
            if partial is None:
                return out
            message, samples = partial
        meter = self.meters.get(message.meter)
        if message.meter != path.meter:
            return reject(f"meter: payload meter {message.meter!r} differs from topic meter {path.meter!r}",
                          message.meter, message.seq)
        if meter is None:
            return reject(f"meter: {message.meter!r} is not a meter of site {self.site!r}", message.meter,
                          message.seq)
        if path.area != meter.area:
            return reject(f"topic: area {path.area!r} is wrong, meter {meter.id!r} is in area {meter.area!r}",
                          message.meter, message.seq)
        out.area, out.meter = meter.area, meter.id
        self._points(message, meter, samples, now_us, out, pending)
        return out

    def _salvage(self, payload: bytes, exc: ValidationError, now_us: int, topic: str,
                 out: Converted) -> tuple[ReadingMessage, list[tuple[int, Sample]]] | None:
        """A message that failed validation: keep the good samples when only some samples are bad."""
        try:
            raw = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            out.dead.append(DeadLetter(now_us, topic, payload, _validation_reason(exc)))
            return None
        raw_samples = raw.get("samples") if isinstance(raw, dict) else None
        if not isinstance(raw_samples, list) or not raw_samples:
            out.dead.append(DeadLetter(now_us, topic, payload, _validation_reason(exc)))
            return None
        try:
            envelope = ReadingMessage.model_validate({**raw, "samples": [raw_samples[0]]}, strict=False)
        except ValidationError:
            envelope = None
        head = {k: v for k, v in raw.items() if k != "samples"}
        meter_id = head.get("meter") if isinstance(head.get("meter"), str) else None
        seq = head.get("seq") if isinstance(head.get("seq"), int) else None
        if envelope is None:
            # Is the envelope itself bad, or only the first sample? Validate with a known-good dummy sample.
            dummy = {"ts": "2000-01-01T00:00:00Z", "quantity": "x", "value": 0, "unit": "kWh"}
            try:
                envelope = ReadingMessage.model_validate({**head, "samples": [dummy]})
            except ValidationError as env_exc:
                out.dead.append(DeadLetter(now_us, topic, payload, _validation_reason(env_exc), meter_id, seq))
                return None
        good: list[tuple[int, Sample]] = []
        for i, raw_sample in enumerate(raw_samples):
            try:
                good.append((i, Sample.model_validate(raw_sample)))
            except ValidationError as sample_exc:
                body = json.dumps(raw_sample, default=str).encode()
                out.dead.append(DeadLetter(now_us, topic, body, _validation_reason(sample_exc, f"samples.{i}."),
                                           envelope.meter, envelope.seq, i))
        return envelope, good

    def _points(self, message: ReadingMessage, meter: Meter, samples: list[tuple[int, Sample]], now_us: int,
                out: Converted, pending: _Pending) -> None:
        mi = self.table.meter_index[meter.id]
        table_unit = self.table.units[mi]
        problem = self.table.problems.get(meter.id)
        for i, s in samples:
            reason = self._check(s, meter, now_us)
            kind = "counter" if (s.delta is not None or s.interval_s is not None or Flag.FIRST in s.flags) \
                else "instant"
            scale: float | None = None
            if reason is None and kind == "counter" and _counted(s):
                try:
                    scale = conversion_factor(s.unit, table_unit)
                except UnitError:
                    if "energy" in s.quantity or meter.carrier is not Carrier.ELECTRICITY:
                        reason = (f"unit: {s.unit!r} of {s.quantity} cannot be converted to {table_unit!r}, "
                                  f"the unit of a {meter.carrier.value} meter")
                if scale is not None and problem is not None:
                    reason = f"factor: {problem}"
            if reason is not None:
                out.dead.append(DeadLetter(now_us, out.topic, s.model_dump_json().encode(), f"samples.{i}: {reason}",
                                           meter.id, message.seq, i))
                continue
            ts_us = ts_to_us(s.ts)
            row: list[Any] = [meter.id, ts_us, s.quantity, self.site, meter.area, meter.carrier.value, "", kind,
                              s.value, s.unit, s.delta, s.interval_s, None, None, None, s.quality.value,
                              ",".join(s.flags), None, None, message.seq, message.agent]
            if scale is not None:
                quantity = (s.delta or 0.0) * scale  # delta None: the baseline reading, no energy yet
                row[12], row[13] = quantity, table_unit
                pending.rows.append(row)
                pending.meter_idx.append(mi)
                pending.quantity.append(quantity)
                pending.ts_us.append(ts_us)
            out.points.append(row)  # type: ignore[arg-type]  # made a tuple in convert_batch

    def _check(self, s: Sample, meter: Meter, now_us: int) -> str | None:
        """Why a schema-valid sample cannot be stored, or None."""
        ts_us = ts_to_us(s.ts)
        if ts_us < self.start_us:
            return f"ts: {s.ts.isoformat()} is before the plant's start {self.plant.site.start.isoformat()}"
        if ts_us > now_us + self.max_future_us:
            return (f"ts: {s.ts.isoformat()} is {(ts_us - now_us) / 1e6:.0f} s in the future "
                    f"(limit {self.max_future_us / 1e6:.0f} s)")
        if s.delta is not None:
            if not math.isfinite(s.delta):
                return f"delta: not finite ({s.delta})"
            if s.delta < 0 and not (_FLOW_FLAGS & set(s.flags)):
                return f"delta: negative energy {s.delta} {s.unit} without a reset or rollover flag"
            if (meter.max_power_kw is not None and s.interval_s and s.delta > 0
                    and meter.carrier is Carrier.ELECTRICITY):
                try:
                    kw = s.delta * conversion_factor(s.unit, "kWh") / (s.interval_s / 3600.0)
                except UnitError:
                    kw = 0.0
                if kw > meter.max_power_kw * 1.05:
                    return (f"delta: quarantined, {s.delta} {s.unit} in {s.interval_s} s implies {kw:.1f} kW, "
                            f"above the meter's max {meter.max_power_kw} kW")
        return None
