"""The reading message as the agent writes it: msgspec structs mirroring calc.schema, the same JSON document.

The pydantic models in calc.schema stay the contract (ingest validates against them); building and dumping
them costs the agent more than reading the meter does, so the hot path uses these structs. A sample checks
on construction what the contract would refuse (a non-UTC time, a number that is not finite, an over-long
reason), so nothing the agent sends can be dead-lettered for its form; tests compare both encoders.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from math import isfinite

import msgspec

from calc.schema import SCHEMA_VERSION, Flag, Quality


class WireError(ValueError):
    """A sample the reading contract would refuse (a bug in the agent, never the meter's doing)."""


class EdgeSample(msgspec.Struct, frozen=True, gc=False):
    """calc.schema.Sample's fields in its order; see there for their meaning."""

    ts: datetime
    quantity: str
    value: float
    unit: str
    delta: float | None = None
    interval_s: float | None = None
    quality: Quality = Quality.GOOD
    reason: str | None = None
    flags: tuple[Flag, ...] = ()

    def __post_init__(self) -> None:
        if self.ts.tzinfo is not UTC:
            offset = self.ts.utcoffset()
            if offset is None or offset:
                raise WireError(f"{self.quantity}: timestamp must be UTC, got {self.ts.isoformat()}")
        if not isfinite(self.value):
            raise WireError(f"{self.quantity}: value is not finite ({self.value})")
        if self.delta is not None and not isfinite(self.delta):
            raise WireError(f"{self.quantity}: delta is not finite ({self.delta})")
        if self.interval_s is not None and not (self.interval_s >= 0 and isfinite(self.interval_s)):
            raise WireError(f"{self.quantity}: interval_s must be finite and >= 0 ({self.interval_s})")
        if self.reason is not None and len(self.reason) > 200:
            raise WireError(f"{self.quantity}: reason longer than 200 characters")


class _Message(msgspec.Struct, frozen=True, gc=False):
    v: int
    meter: str
    seq: int
    agent: str | None
    samples: Sequence[EdgeSample]


_encoder = msgspec.json.Encoder()


def encode_reading(meter: str, seq: int, agent: str | None, samples: Sequence[EdgeSample]) -> bytes:
    """The JSON payload of a reading message (calc.schema.encode gives the same document)."""
    if not samples:
        raise WireError(f"{meter}: a reading message needs at least one sample")
    if len(samples) > 10_000:
        raise WireError(f"{meter}: {len(samples)} samples in one message, at most 10000")
    return _encoder.encode(_Message(SCHEMA_VERSION, meter, seq, agent, samples))
