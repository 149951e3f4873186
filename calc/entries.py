"""A manual production or driver entry (an amount over [start, end), entered per shift or day) as the reading
message that carries it over MQTT, and its void: quarter-hour shares, stamps that never collide, a stable seq.

An entry becomes one sample per quarter hour of its interval (every time zone's local hours and days start on
a UTC quarter hour): a counter's amount split exactly (calc.apportion.shares), a gauge's mean with interval_s
900. Its void repeats those samples flagged `void`, one microsecond earlier, so the stores take them back
(ingest.store.variables.amounts). The same entry always gives the same message, so a re-publish is a duplicate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from calc.apportion import shares
from calc.errors import CalcError
from calc.plant import Variable
from calc.schema import MAX_SAMPLES, Flag, ReadingMessage, Sample
from calc.units import Q_, conversion_factor

AGENT = "manual"                 # the agent of every manual entry's message (ingest acknowledges it like an edge's)
QUARTER = timedelta(minutes=15)
QUARTER_US = 900_000_000
MAX_LENGTH = timedelta(days=31)  # 2,976 quarters; with its void 5,952 samples, inside one message (MAX_SAMPLES)
MAX_SLOT = 1000                  # entries ever made over one quarter hour of a variable (voided ones included)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class EntryError(CalcError):
    """An entry that cannot be made: its interval, value or unit, with the reason."""


@dataclass(frozen=True, slots=True)
class Entry:
    """A stored entry as the message needs it: `amount` in the variable's unit (a counter's amount over the
    interval, a gauge's mean over it); `slot` keeps its stamps apart from every other entry over the same time."""

    id: int
    variable: Variable
    start: datetime
    end: datetime
    amount: float
    slot: int


def with_devices(data: dict[str, Any]) -> dict[str, Any]:
    """A parsed plant file with only the `[[variables]]` a device reads (those with a `gateway`): the others are
    entered by hand, so the edge and the simulators have nothing to read for them."""
    raw = data.get("variables")
    if not isinstance(raw, list):
        return data
    return {**data, "variables": [v for v in raw if not isinstance(v, dict) or "gateway" in v]}


def check_interval(start: datetime, end: datetime) -> None:
    """Refuse an interval that is not whole UTC quarter hours, empty, backward or longer than MAX_LENGTH."""
    for name, t in (("start", start), ("end", end)):
        if t.tzinfo is None:
            raise EntryError(f"{name}: {t.isoformat()} has no time zone")
        if _us(t) % QUARTER_US:
            raise EntryError(f"{name}: {t.isoformat()} is not on a quarter hour (entries are per shift or day)")
    if end <= start:
        raise EntryError(f"end: {end.isoformat()} is not after start {start.isoformat()}")
    if end - start > MAX_LENGTH:
        raise EntryError(f"end: an entry covers at most {MAX_LENGTH.days} days, this one {end - start}")


def to_variable_unit(variable: Variable, value: float, unit: str) -> float:
    """`value` in `unit` as the variable's unit (pint; a counter's amount never negative nor in an offset unit)."""
    if not math.isfinite(value):
        raise EntryError(f"value: {value} is not a finite number")
    try:
        if variable.measure == "counter":
            if value < 0:
                raise EntryError(f"value: a counter's amount is not negative ({value} {unit})")
            zero = float(Q_(0.0, unit).to(variable.unit).magnitude)
            if zero != 0.0:
                raise EntryError(f"unit: {unit!r} is an offset unit, an amount cannot be converted to "
                                 f"{variable.unit!r}")
            return value * conversion_factor(unit, variable.unit)
        return float(Q_(value, unit).to(variable.unit).magnitude)
    except EntryError:
        raise
    except Exception as exc:  # pint lets more than its own errors out on odd text (UnitError among them)
        raise EntryError(f"unit: {unit!r} cannot be converted to {variable.unit!r}, the unit of "
                         f"{variable.kind} variable {variable.id!r}") from exc


def quarters(start: datetime, end: datetime) -> int:
    """How many quarter hours [start, end) holds (both on quarter hours)."""
    return (_us(end) - _us(start)) // QUARTER_US


def overlap_quarters(start: datetime, end: datetime, lo: datetime, hi: datetime) -> int:
    """Quarter hours that [start, end) and [lo, hi) share (both on quarter hours)."""
    return max(0, (_us(min(end, hi)) - _us(max(start, lo))) // QUARTER_US)


def samples(entry: Entry, void: bool = False) -> list[Sample]:
    """The entry's samples (or its void's): one per quarter hour, stamped inside it, never where another
    entry's (another slot) or the void's are."""
    if not 0 <= entry.slot < MAX_SLOT:
        raise EntryError(f"slot: {entry.slot} is outside 0..{MAX_SLOT - 1}")
    check_interval(entry.start, entry.end)
    v = entry.variable
    n = quarters(entry.start, entry.end)
    ends = [_us(entry.start) + (k + 1) * QUARTER_US for k in range(n)]
    back = 2 * entry.slot + (2 if void else 1)
    flags = (Flag.VOID,) if void else ()
    common = {"quantity": v.quantity, "unit": v.unit, "interval_s": QUARTER.total_seconds(), "flags": flags}
    if v.measure == "counter":
        parts = shares(entry.amount, np.full(n, QUARTER_US, dtype=np.int64)).tolist()
        running = np.cumsum(parts).tolist()
        return [Sample(ts=_dt(e - back), value=c, delta=d, **common)  # type: ignore[arg-type]
                for e, d, c in zip(ends, parts, running, strict=True)]
    return [Sample(ts=_dt(e - back), value=entry.amount, **common)  # type: ignore[arg-type]
            for e in ends]


def message(entry: Entry, voided: bool) -> ReadingMessage:
    """The one message of an entry (seq 2·id) or of its void (seq 2·id + 1, carrying the entry's samples too,
    so a void never takes back what was not counted: both land, or the entry's are duplicates)."""
    body = samples(entry) + (samples(entry, void=True) if voided else [])
    if len(body) > MAX_SAMPLES:
        raise EntryError(f"end: {len(body)} samples do not fit one message ({MAX_SAMPLES})")
    return ReadingMessage(meter=entry.variable.id, seq=2 * entry.id + (1 if voided else 0), agent=AGENT,
                          samples=tuple(body))


def _us(t: datetime) -> int:
    d = t - _EPOCH
    return (d.days * 86_400 + d.seconds) * 1_000_000 + d.microseconds


def _dt(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)
