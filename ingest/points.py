"""What ingest hands to a store: points (slim rows), the meters, variables and factors they refer to, dead letters.

A point is keyed by (meter, ts_us, quantity). Where it sits (site, area, carrier) is per meter and
which factor made its CO2e (scope, factor id and version, energy unit) is per factor reference, so
rows stay small and a batch of them inserts fast; stores join them back (SQLite view `points_full`,
InfluxDB tags and fields).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

# Column order of a stored point (a list or tuple in this order).
POINT_COLUMNS = ("meter", "ts_us", "quantity", "value", "unit", "delta", "interval_s", "energy", "co2e_kg",
                 "quality", "flags", "factor_ref", "seq", "agent")
METER, TS, QUANTITY, VALUE, UNIT, DELTA, INTERVAL, ENERGY, CO2E, QUALITY, FLAGS, FACTOR, SEQ, AGENT = range(14)
# Columns compared when a key is seen again: same content = duplicate, other content = conflict.
CONTENT_IDX = (VALUE, UNIT, DELTA, INTERVAL, QUALITY, FLAGS)
CONTENT_NAMES = tuple(POINT_COLUMNS[i] for i in CONTENT_IDX)

Point = list[Any] | tuple[Any, ...]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PUBLISHED_PAYLOAD_MAX = 64 * 1024  # of a dead letter's payload, what its MQTT message carries


class MeterInfo(NamedTuple):
    site: str
    area: str
    carrier: str


class VariableInfo(NamedTuple):
    """Where a production counter or driver variable sits and how it adds up (calc.plant.Variable): its points
    are stored like a meter's, and the stores sum (counter) or time-weight (gauge) its `quantity` in `unit`."""

    site: str
    area: str
    line: str
    kind: str       # production | driver
    quantity: str   # the point that carries it
    unit: str       # of its totals and means
    measure: str    # counter | gauge


class FactorInfo(NamedTuple):
    """Provenance of a point's CO2e: stored once per distinct value, referred to by `factor_ref`."""

    scope: str
    factor_id: str
    factor_version: str
    energy_unit: str

    @property
    def ref(self) -> int:
        """A stable 62-bit reference (a content hash), the same in every process and store."""
        digest = hashlib.sha256("\x1f".join(self).encode()).digest()
        return int.from_bytes(digest[:8], "big") >> 2


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
        """The dead-letter topic's message. A payload over PUBLISHED_PAYLOAD_MAX bytes is cut there (the store
        keeps it whole), with its size and SHA-256, so a dead letter never outgrows the broker's packet limit."""
        doc: dict[str, Any] = {"received": us_to_iso(self.received_us), "topic": self.topic, "reason": self.reason,
                               "meter": self.meter, "seq": self.seq, "index": self.index}
        payload = self.payload
        if len(payload) > PUBLISHED_PAYLOAD_MAX:
            doc |= {"payload_bytes": len(payload), "payload_sha256": hashlib.sha256(payload).hexdigest(),
                    "payload_truncated": True}
            payload = payload[:PUBLISHED_PAYLOAD_MAX]
        doc["payload"] = payload.decode("utf-8", "replace")
        return json.dumps(doc).encode()


@dataclass(frozen=True, slots=True)
class HeldRow:
    """A counted delta that is measured but not counted: stored as held with its reason (a confirmed implausible
    jump, a delta above the meter's max power, a time that cannot be placed), counted once an engineer releases
    it. Keyed like a point by (site, meter, ts_us, quantity); the same key and content again is a duplicate."""

    meter: str
    ts_us: int
    quantity: str
    value: float
    unit: str
    delta: float
    interval_s: float | None
    energy: float          # in energy_unit, the meter's factor unit
    energy_unit: str
    co2e_kg: float | None  # with the factor valid at ts_us; None when none applies there
    factor_ref: int | None
    quality: str
    flags: str
    reason: str
    seq: int
    agent: str | None
    received_us: int

    def content(self) -> tuple[Any, ...]:
        """What must match for a replay to be a duplicate (the reason may name the time it arrived)."""
        return (self.value, self.unit, self.delta, self.interval_s, self.quality, self.flags)

    def as_point(self) -> list[Any]:
        """The point this record was (for a key and content check against stored points)."""
        return [self.meter, self.ts_us, self.quantity, self.value, self.unit, self.delta, self.interval_s,
                self.energy, self.co2e_kg, self.quality, self.flags, self.factor_ref, self.seq, self.agent]


@dataclass(slots=True)
class Converted:
    """The outcome of one message: points to store and input to dead-letter."""

    topic: str
    points: list[Point] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    held: list[HeldRow] = field(default_factory=list)
    area: str | None = None
    meter: str | None = None
    flows: dict[tuple[str, int, str], tuple[float, str]] = field(default_factory=dict)  # see Batch.flows
    # Who to acknowledge once the outcome is durable (calc.acks): the sender's agent, meter and seq as the
    # payload names them; None when the payload does not say (third-party publisher, unreadable envelope).
    ack: tuple[str, str, int] | None = None


@dataclass(frozen=True, slots=True)
class Counted:
    """The points that carry energy, as columns (for vectorized rollups): meter ids, times, energy, CO2e, refs."""

    meter: npt.NDArray[np.object_]
    ts_us: npt.NDArray[np.int64]
    energy: npt.NDArray[np.float64]
    co2e_kg: npt.NDArray[np.float64]
    factor_ref: npt.NDArray[np.int64]
    estimated: npt.NDArray[np.bool_] | None = None  # which are shares of a gap (flag "estimated"); None: none


@dataclass(slots=True)
class Batch:
    """One store transaction's worth: points of many messages, what they refer to, and dead letters.

    `counted`, when given, holds exactly the points of `points` whose energy is not None, as columns.
    `held` rows are stored as held energy, in the same transaction (never counted until released).
    """

    points: list[Point] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    held: list[HeldRow] = field(default_factory=list)
    meters: dict[str, MeterInfo] = field(default_factory=dict)
    factors: dict[int, FactorInfo] = field(default_factory=dict)
    counted: Counted | None = None
    # production counters and driver variables whose points are in `points` (their ids are not in `meters`)
    variables: dict[str, VariableInfo] = field(default_factory=dict)
    # export and generation counters (calc.generation): point key (meter, ts_us, quantity) -> (energy, energy
    # unit); the point itself is stored plain (no energy, no CO2e), the stores sum these by direction
    flows: dict[tuple[str, int, str], tuple[float, str]] = field(default_factory=dict)

    def site_of(self) -> dict[str, str]:
        """The site of every meter and variable of the batch."""
        out = {m: info.site for m, info in self.meters.items()}
        out.update((v, info.site) for v, info in self.variables.items())
        return out

    def key(self, p: Point) -> tuple[str, int, str]:
        return p[METER], p[TS], p[QUANTITY]

    def describe(self, p: Point) -> dict[str, Any]:
        """A point with its meter and factor details, as a plain dict (dead letters, messages)."""
        doc = dict(zip(POINT_COLUMNS, p, strict=True))
        doc["ts"] = us_to_iso(doc.pop("ts_us"))
        info = self.meters.get(p[METER])
        if info is not None:
            doc.update(info._asdict())
        variable = self.variables.get(p[METER])
        if variable is not None:
            doc.update(site=variable.site, area=variable.area, variable=variable.kind)
        factor = self.factors.get(p[FACTOR]) if p[FACTOR] is not None else None
        if factor is not None:
            doc.update(factor._asdict())
        doc.pop("factor_ref", None)
        return doc


def ts_to_us(ts: datetime) -> int:
    delta = ts - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def us_to_dt(us: int) -> datetime:
    return datetime.fromtimestamp(us // 1_000_000, UTC).replace(microsecond=us % 1_000_000)


def us_to_iso(us: int) -> str:
    return us_to_dt(us).isoformat().replace("+00:00", "Z")
