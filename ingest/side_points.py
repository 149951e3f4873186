"""Samples that are not the site's counted energy: production counters and driver variables, and the export and
generation counters of a meter. Checked and turned into plain points, never a CO2e.

A variable's sample that cannot be placed in time or converted to its unit is dead-lettered with the reason; the
stores sum a counter's quantity and time-weight a gauge's (ingest.store.variables). An export or generation
sample's energy travels beside the batch (`Batch.flows`), never into the site's CO2e.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from calc.plant import Variable
from calc.reading_codec import FastSample, slow_ts
from calc.units import conversion_factor
from ingest.points import Converted, DeadLetter
from ingest.store.variables import affine


def variable_points(variable: Variable, seq: int, agent: str | None, samples: list[tuple[int, FastSample]],
                    stamps: Sequence[int | None], now_us: int, out: Converted, start_us: int, max_future_us: int,
                    outside_window: Callable[[FastSample, int, int], str]) -> None:
    """A production counter's or driver's samples: points without energy or CO2e; the stores sum or
    time-weight its quantity (ingest.store.variables). What cannot be placed or converted is dead-lettered
    with the reason (nothing to hold it against: a held delta the edge flagged is stored and kept apart)."""
    lo_us, hi_us = start_us, now_us + max_future_us
    for (i, s), ts_us in zip(samples, stamps, strict=True):
        reason: str | None = None
        if ts_us is None:
            slow = slow_ts(s)
            if isinstance(slow, str):
                out.dead.append(DeadLetter(now_us, out.topic, s.dump(), f"samples.{i}.{slow}", variable.id,
                                           seq, i))
                continue
            ts_us = slow
        flags = s.flags
        if s.delta is not None and s.delta < 0 and "reset" not in flags and "rollover" not in flags:
            reason = f"delta: negative {s.delta} {s.unit} without a reset or rollover flag"
        elif ts_us < lo_us or ts_us > hi_us:
            reason = outside_window(s, ts_us, now_us)
        elif s.quantity == variable.quantity:
            reason = variable_unit_problem(variable, s)
        if reason is not None:
            out.dead.append(DeadLetter(now_us, out.topic, s.dump(), f"samples.{i}: {reason}", variable.id, seq,
                                       i))
            continue
        out.points.append([variable.id, ts_us, s.quantity, s.value, s.unit, s.delta, s.interval_s, None, None,
                           s.quality, ",".join(flags) if flags else "", None, seq, agent])


def variable_unit_problem(variable: Variable, s: FastSample) -> str | None:
    """Why a sample of the variable's quantity cannot be counted in the variable's unit, else None."""
    try:
        affine(s.unit, variable.unit)
    except Exception:  # pint lets more than UnitError out on odd text; any failure means "cannot convert"
        return f"unit: {s.unit!r} of {s.quantity} cannot be converted to {variable.unit!r}, the unit of " \
               f"{variable.kind} variable {variable.id!r}"
    if variable.measure == "counter" and s.unit != variable.unit and affine(s.unit, variable.unit)[1] != 0.0:
        return f"unit: {s.unit!r} is an offset unit, a counter's delta cannot be converted to {variable.unit!r}"
    if variable.measure == "counter" and s.delta is None and s.interval_s is not None:
        return "delta: a counter sample with an interval and no delta"
    return None


def flow_sample(s: FastSample, table_unit: str, carrier: str, held: str | None,
                scales: dict[tuple[str, str], float | None]) -> tuple[str | None, float | None]:
    """An export or generation counter's sample: (why it cannot be stored, None) or (None, its energy in the
    meter's unit, or None without a delta). Stored as a plain point; a delta the edge held stays out of the
    flows (it has no CO2e to hold), a sample outside the plant's time is dead-lettered like a gauge's."""
    key = (s.unit, table_unit)
    if key not in scales:
        try:
            scales[key] = conversion_factor(s.unit, table_unit)
        except Exception:  # pint lets more than UnitError out on odd text: any failure is "cannot convert"
            scales[key] = None
    scale = scales[key]
    if scale is None:
        return (f"unit: {s.unit!r} of {s.quantity} cannot be converted to {table_unit!r}, the unit of a "
                f"{carrier} meter"), None
    if held is not None:
        return held, None
    if s.delta is None or "held" in s.flags:
        return None, None
    return None, s.delta * scale
