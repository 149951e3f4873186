"""Validate MQTT reading messages against the schema and the plant, and turn their samples into points.

Bad input never raises out of here: a bad message or a bad sample becomes a `DeadLetter` naming
what was wrong, and the good samples of the same message are still converted. Bounds come first: a
message over `max_message_bytes` is refused before it is parsed, and the parsers used on untrusted text
stop at a nesting depth (no RecursionError). The hot path decodes with msgspec (calc.reading_codec);
anything it refuses is decided by calc.schema (pydantic), which names the reason (ingest.salvage keeps the good
samples of a partly bad message). Energy that cannot be counted is held, and a gap's energy spread over the gap
(calc.apportion). CO2e comes from calc's
vectorized FactorTable, once per batch. Should converting one message fail in a way nobody foresaw, that
message alone is dead-lettered with the error and the rest of the batch goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import ValidationError

from calc import topics
from calc.apportion import DEFAULT_MAX_SEGMENTS, apportion
from calc.factors import FactorSet, default_factor_set
from calc.generation import FLOW_SUFFIXES
from calc.plant import Carrier, Meter, Plant, Variable
from calc.plant_factors import plant_factors
from calc.reading_codec import FastMessage, FastSample, fast_decode, from_sample, slow_ts, utc_us, utc_us_many
from calc.schema import Sample, decode
from calc.table import FactorTable
from calc.units import conversion_factor
from ingest.config import DEFAULT_MAX_MESSAGE_BYTES
from ingest.points import (
    AGENT,
    CO2E,
    DELTA,
    ENERGY,
    FACTOR,
    FLAGS,
    METER,
    QUALITY,
    QUANTITY,
    SEQ,
    TS,
    UNIT,
    Batch,
    Converted,
    Counted,
    DeadLetter,
    FactorInfo,
    HeldRow,
    MeterInfo,
    Point,
    VariableInfo,
    ts_to_us,
)
from ingest.salvage import oversize, salvage
from ingest.side_points import flow_sample, variable_points

__all__ = ["Batch", "Converted", "Converter", "DeadLetter", "Point"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Pending:
    """Rows of a batch waiting for the one vectorized CO2e step (counted samples only)."""

    rows: list[list[Any]] = field(default_factory=list)
    meter_spans: list[tuple[int, int]] = field(default_factory=list)  # (meter index, how many rows), in order
    estimated: list[int] = field(default_factory=list)  # indexes of rows that are shares of a gap


class Converter:
    """Turns reading messages of one plant into points with calc's vectorized FactorTable (all carriers).

    `plant_data` is the parsed plant file: its [factors] and [[factor_overrides]] and meter conditions
    are merged with the factor set (calc.plant_factors); a bad one raises calc.factors.FactorError.
    """

    def __init__(self, plant: Plant, plant_data: Mapping[str, Any] | None = None, factors: FactorSet | None = None,
                 max_future_s: float = 300.0, clock: Callable[[], float] | None = None,
                 source: str = "<plant>", fast: bool = True,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, gap_after_s: float = 3600.0,
                 gap_flagged_after_s: float = 180.0, gap_max_segments: int = DEFAULT_MAX_SEGMENTS) -> None:
        import time

        self.plant = plant
        self.site = plant.site.id
        self.meters: dict[str, Meter] = plant.meters_by_id
        data = plant_data if plant_data is not None else {}
        self.table = FactorTable.build(plant_factors(factors or default_factor_set(), plant, data, source), plant)
        self.max_future_us = int(max_future_s * 1_000_000)
        self.start_us = ts_to_us(plant.site.start)
        self.clock = clock or time.time
        self.fast = fast  # False: every message through calc.schema (tests compare both paths)
        self.max_message_bytes = max_message_bytes
        self.gap_after_s, self.gap_max_segments = gap_after_s, gap_max_segments
        self.gap_lo_s = min(gap_after_s, gap_flagged_after_s)
        self._scales: dict[tuple[str, str], float | None] = {}
        infos = [FactorInfo(r.scope, r.factor_id, r.factor_version, r.unit) for r in self.table.rows]
        self._refs_array = np.asarray([i.ref for i in infos] or [0], dtype=np.int64)
        self._meter_ids = np.asarray(self.table.meters, dtype=object)
        self.factor_info: dict[int, FactorInfo] = {i.ref: i for i in infos}
        self.meter_info: dict[str, MeterInfo] = {m.id: MeterInfo(self.site, m.area, m.carrier.value)
                                                 for m in plant.meters}
        self.variables: dict[str, Variable] = plant.variables_by_id
        self.variable_info: dict[str, VariableInfo] = {
            v.id: VariableInfo(self.site, v.area, v.line or "", v.kind, v.quantity, v.unit, v.measure)
            for v in plant.variables}

    def convert(self, topic: str, payload: bytes, received_us: int | None = None) -> Converted:
        """Validate and convert one message; never raises on bad input."""
        return self.convert_batch([(topic, payload, received_us)])[0]

    def convert_batch(self, items: Sequence[tuple[str, bytes, int | None]]) -> list[Converted]:
        """Validate and convert several messages, with one vectorized CO2e step for all their samples."""
        return self.convert_to_batch(items)[0]

    def convert_to_batch(self, items: Sequence[tuple[str, bytes, int | None]]) -> tuple[list[Converted], Batch]:
        """Convert several messages and gather them into one store batch (with its counted points as columns)."""
        pending = _Pending()
        limit = self.max_message_bytes
        # Decode first, so the timestamps of the whole batch are read in one vectorized pass.
        decoded = [fast_decode(payload) if self.fast and len(payload) <= limit else None for _, payload, _ in items]
        stamps = utc_us_many([s.ts for d in decoded if d is not None for s in d.samples])
        outs = []
        at = 0
        for (topic, payload, received_us), fast in zip(items, decoded, strict=True):
            mark = (len(pending.rows), len(pending.meter_spans), len(pending.estimated))
            try:
                if len(payload) > limit:
                    kept, reason = oversize(payload, limit)
                    now_us = received_us if received_us is not None else int(self.clock() * 1_000_000)
                    outs.append(Converted(topic=topic, dead=[DeadLetter(now_us, topic, kept, reason)]))
                elif fast is None:
                    outs.append(self._one(topic, payload, received_us, pending, None, None))
                else:
                    end = at + len(fast.samples)
                    outs.append(self._one(topic, payload, received_us, pending, fast, stamps[at:end]))
                    at = end
            except Exception as exc:  # a failure nobody foresaw costs this message only, never the batch
                log.exception("converting a message on %s failed; dead-lettered", topic[:200])
                del pending.rows[mark[0]:]
                del pending.meter_spans[mark[1]:]
                del pending.estimated[mark[2]:]
                outs.append(self.failed(topic, payload, received_us, exc))
                if fast is not None:
                    at += len(fast.samples)
        counted = None
        if pending.rows:
            spans = np.asarray(pending.meter_spans, dtype=np.intp)
            meter_idx = np.repeat(spans[:, 0], spans[:, 1])
            energy = np.fromiter((r[ENERGY] for r in pending.rows), dtype=np.float64, count=len(pending.rows))
            ts = np.fromiter((r[TS] for r in pending.rows), dtype=np.int64, count=len(pending.rows))
            kg, rows = self.table.co2e_kg(meter_idx, energy, ts.astype("datetime64[us]"))
            if rows.min() < 0:  # only meters with problems, and their samples were dead-lettered already
                raise AssertionError("a counted sample of a meter without a usable factor")
            refs = self._refs_array[rows]
            for row, co2e, ref in zip(pending.rows, kg.tolist(), refs.tolist(), strict=True):
                row[CO2E], row[FACTOR] = co2e, ref
            estimated = None
            if pending.estimated:
                estimated = np.zeros(len(pending.rows), dtype=np.bool_)
                estimated[pending.estimated] = True
            counted = Counted(self._meter_ids[meter_idx], ts, energy, kg, refs, estimated)
        batch = self.batch(outs)
        batch.counted = counted
        return outs, batch

    def batch(self, converted: Sequence[Converted]) -> Batch:
        """One store batch from converted messages: their points, dead letters, meters and factors."""
        out = Batch()
        for c in converted:
            out.points.extend(c.points)
            out.dead.extend(c.dead)
            out.held.extend(c.held)
            out.flows.update(c.flows)
            if c.meter is not None and c.meter not in out.meters and c.meter not in out.variables:
                if c.meter in self.variable_info:
                    out.variables[c.meter] = self.variable_info[c.meter]
                else:
                    out.meters[c.meter] = self.meter_info[c.meter]
        out.factors = self.factor_info
        return out

    def failed(self, topic: str, payload: bytes, received_us: int | None, exc: BaseException) -> Converted:
        """The outcome of a message whose handling raised: dead-lettered whole with the error as its reason
        (its sender is still acknowledged when the payload names it, so it is not sent again for ever)."""
        now_us = received_us if received_us is not None else int(self.clock() * 1_000_000)
        out = Converted(topic=topic)
        kept = payload if len(payload) <= self.max_message_bytes else oversize(payload, self.max_message_bytes)[0]
        head = fast_decode(payload) if len(payload) <= self.max_message_bytes else None
        meter, seq = (head.meter, head.seq) if head is not None else (None, None)
        if head is not None and head.agent:
            out.ack = (head.agent, head.meter, head.seq)
        out.dead.append(DeadLetter(now_us, topic, kept, f"internal: {type(exc).__name__}: {exc}"[:1000], meter, seq))
        return out

    def _one(self, topic: str, payload: bytes, received_us: int | None, pending: _Pending,
             fast: FastMessage | None, stamps: list[int | None] | None) -> Converted:
        """One message; `fast` is its msgspec decoding (None: decide with calc.schema), `stamps` the
        utc_us of each of its samples' timestamps."""
        now_us = received_us if received_us is not None else int(self.clock() * 1_000_000)
        out = Converted(topic=topic)

        def reject(reason: str, meter: str | None = None, seq: int | None = None) -> Converted:
            out.dead.clear()  # the whole payload is kept once; no need for its samples' own letters too
            out.dead.append(DeadLetter(now_us, topic, payload, reason, meter, seq))
            return out

        try:
            path = topics.parse_meter_topic(topic)
        except topics.TopicError as exc:
            return reject(f"topic: {exc}")
        if path.site != self.site:
            return reject(f"topic: site {path.site!r} is not this plant's site {self.site!r}")
        if fast is not None and stamps is not None:
            meter_id, seq, agent = fast.meter, fast.seq, fast.agent
            samples: list[tuple[int, FastSample]] = list(enumerate(fast.samples))
        else:
            try:
                message = decode(payload)
                checked: list[tuple[int, Sample]] = list(enumerate(message.samples))
            except ValidationError as exc:
                partial = salvage(payload, exc, now_us, topic, out)
                if partial is None:
                    return out
                message, checked = partial
            meter_id, seq, agent = message.meter, message.seq, message.agent
            samples = [(i, from_sample(smp)) for i, smp in checked]
            stamps = [utc_us(s.ts) for _, s in samples]
        if agent:
            out.ack = (agent, meter_id, seq)
        meter = self.meters.get(meter_id)
        if meter_id != path.meter:
            return reject(f"meter: payload meter {meter_id!r} differs from topic meter {path.meter!r}", meter_id, seq)
        where = meter or self.variables.get(meter_id)
        if where is None:  # (nor a production counter or driver variable)
            return reject(f"meter: {meter_id!r} is not a meter of site {self.site!r}", meter_id, seq)
        if path.area != where.area:
            what = "meter" if meter is not None else "variable"
            return reject(f"topic: area {path.area!r} is wrong, {what} {meter_id!r} is in area {where.area!r}",
                          meter_id, seq)
        out.area, out.meter = where.area, where.id
        if meter is None:
            variable_points(self.variables[meter_id], seq, agent, samples, stamps, now_us, out,
                            self.start_us, self.max_future_us, self._outside_window)
        else:
            self._points(meter, seq, agent, samples, stamps, now_us, out, pending)
        return out

    def _outside_window(self, s: FastSample, ts_us: int, now_us: int) -> str:
        """Why a sample stamped outside [the plant's start, now + max_future_s] cannot be placed."""
        if ts_us < self.start_us:
            return f"ts: {s.ts} is before the plant's start {self.plant.site.start.isoformat()}"
        return f"ts: {s.ts} is {(ts_us - now_us) / 1e6:.0f} s in the future (limit {self.max_future_us / 1e6:.0f} s)"

    def _points(self, meter: Meter, seq: int, agent: str | None, samples: list[tuple[int, FastSample]],
                stamps: Sequence[int | None], now_us: int, out: Converted, pending: _Pending) -> None:
        mi = self.table.meter_index[meter.id]
        table_unit = self.table.units[mi]
        problem = self.table.problems.get(meter.id)
        meter_id, carrier = meter.id, meter.carrier.value
        electric = meter.carrier is Carrier.ELECTRICITY
        max_kw = meter.max_power_kw * 1.05 if meter.max_power_kw is not None and electric else None
        lo_us, hi_us = self.start_us, now_us + self.max_future_us
        gap_lo_s = self.gap_lo_s
        scales = self._scales
        last_unit: str | None = None
        scale_of_last: float | None = None
        add_point, add_counted = out.points.append, pending.rows.append
        first_counted = len(pending.rows)
        for (i, s), ts_us in zip(samples, stamps, strict=True):
            delta, flags, interval_s = s.delta, s.flags, s.interval_s
            reason: str | None = None
            held: str | None = None  # why a counted delta is held instead of counted
            if ts_us is None:  # not the plain UTC form: calc.schema decides, as it would for the whole message
                slow = slow_ts(s)
                if isinstance(slow, str):
                    out.dead.append(DeadLetter(now_us, out.topic, s.dump(), f"samples.{i}.{slow}", meter_id, seq, i))
                    continue
                ts_us = slow
            if delta is not None and delta < 0 and "reset" not in flags and "rollover" not in flags:
                reason = f"delta: negative energy {delta} {s.unit} without a reset or rollover flag"
            elif "void" in flags:
                reason = "flags: void takes back a manual production or driver entry, never a meter's energy"
            elif ts_us < lo_us or ts_us > hi_us:
                held = self._outside_window(s, ts_us, now_us)
            counter = delta is not None or interval_s is not None or "first" in flags
            scale: float | None = None
            flow: float | None = None
            if reason is None and counter and s.quantity.endswith(FLOW_SUFFIXES):
                # energy with a direction, never CO2e
                reason, flow = flow_sample(s, table_unit, carrier, held, self._scales)
            elif reason is None and counter:
                unit = s.unit
                if unit == last_unit:
                    scale = scale_of_last
                else:
                    key = (unit, table_unit)
                    if key in scales:
                        scale = scales[key]
                    else:
                        try:
                            scale = conversion_factor(unit, table_unit)
                        # pint lets more than UnitError out on odd text (tokenize.TokenError for "]"):
                        # any failure means the unit cannot be converted, and the sample says so
                        except Exception:
                            scale = None
                        scales[key] = scale
                    last_unit, scale_of_last = unit, scale
                if scale is None:
                    if "energy" in s.quantity or not electric:
                        reason = (f"unit: {unit!r} of {s.quantity} cannot be converted to {table_unit!r}, "
                                  f"the unit of a {carrier} meter")
                elif problem is not None:
                    reason = f"factor: {problem}"
                elif delta is None or held is not None:
                    pass
                elif flags and "held" in flags:
                    held = f"held by the edge: {s.reason or 'an implausible step it could not explain'}"
                elif max_kw is not None and delta and interval_s and delta > 0:
                    kw = delta * scale / (interval_s / 3600.0)
                    if kw > max_kw:
                        held = (f"delta: quarantined, {delta} {unit} in {interval_s} s implies {kw:.1f} kW, "
                                f"above the meter's max {meter.max_power_kw} kW")
            if reason is None and held is not None:
                if scale is not None and delta is not None and problem is None:
                    self._hold(meter, mi, s, ts_us, scale, f"samples.{i}: {held}", seq, agent, now_us, out)
                    continue
                reason = held  # a gauge, or a sample without energy: nothing to hold
            if reason is not None:
                out.dead.append(DeadLetter(now_us, out.topic, s.dump(), f"samples.{i}: {reason}", meter_id, seq, i))
                continue
            if scale is None:
                add_point([meter_id, ts_us, s.quantity, s.value, s.unit, delta, interval_s, None, None, s.quality,
                           ",".join(flags) if flags else "", None, seq, agent])
                if flow is not None:
                    out.flows[(meter_id, ts_us, s.quantity)] = (flow, table_unit)
            else:  # delta None: the baseline reading, no energy yet
                row = [meter_id, ts_us, s.quantity, s.value, s.unit, delta, interval_s,
                       delta * scale if delta is not None else 0.0, None, s.quality,
                       ",".join(flags) if flags else "", None, seq, agent]
                if (interval_s is not None and interval_s > gap_lo_s and delta is not None
                        and (interval_s > self.gap_after_s or "gap" in flags or "stuck" in flags)):
                    shares = self._spread(row, s.value, interval_s)
                    if len(shares) > 1:
                        for share in shares:
                            pending.estimated.append(len(pending.rows))
                            add_point(share)
                            add_counted(share)
                        continue
                add_point(row)
                add_counted(row)
        counted = len(pending.rows) - first_counted
        if counted:
            pending.meter_spans.append((mi, counted))

    def _spread(self, row: list[Any], value: float, interval_s: float) -> list[list[Any]]:
        """A counted sample over a gap, as its shares (calc.apportion): one point per minute segment, flag
        "estimated", value the counter interpolated; the sample's own point (its key) carries the last share.
        An interval inside one segment is the sample alone, unchanged."""
        spread = apportion(row[TS], interval_s, (row[DELTA], row[ENERGY]), not_before_us=self.start_us,
                           max_segments=self.gap_max_segments)
        n = len(spread.end_us)
        if n == 1:
            return [row]
        deltas, energies = (a.tolist() for a in spread.amounts)
        counters = (value - row[DELTA] + np.cumsum(spread.amounts[0])).tolist()
        counters[-1] = value
        flags = f"{row[FLAGS]},estimated" if row[FLAGS] else "estimated"
        out = []
        for k, (ts_us, length_s) in enumerate(zip(spread.stamp_us.tolist(), spread.length_s.tolist(), strict=True)):
            share = [row[METER], ts_us, row[QUANTITY], counters[k], row[UNIT], deltas[k], length_s, energies[k],
                     None, row[QUALITY], flags, None, row[SEQ], row[AGENT]]
            out.append(share)
        row[:] = out[-1]  # the sample's own point, carrying the last share
        out[-1] = row
        return out

    def _hold(self, meter: Meter, mi: int, s: FastSample, ts_us: int, scale: float, reason: str, seq: int,
              agent: str | None, now_us: int, out: Converted) -> None:
        """A counted delta that is not counted: held, with its CO2e at its own time where a factor applies."""
        assert s.delta is not None
        energy = s.delta * scale
        kg, rows = self.table.co2e_kg(np.asarray([mi], dtype=np.intp), np.asarray([energy], dtype=np.float64),
                                      np.asarray([ts_us], dtype="datetime64[us]"))
        ok = int(rows[0]) >= 0 and bool(np.isfinite(kg[0]))
        out.held.append(HeldRow(meter=meter.id, ts_us=ts_us, quantity=s.quantity, value=s.value, unit=s.unit,
                                delta=s.delta, interval_s=s.interval_s, energy=energy,
                                energy_unit=self.table.units[mi], co2e_kg=float(kg[0]) if ok else None,
                                factor_ref=int(self._refs_array[int(rows[0])]) if ok else None, quality=s.quality,
                                flags=",".join(s.flags), reason=reason[:1000], seq=seq, agent=agent,
                                received_us=now_us))
