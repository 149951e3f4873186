"""The reading message's one wire codec (msgspec): the edge writes with it, ingest's hot path reads with it.

calc.schema's pydantic models stay the documented contract and decide whatever this codec does not take. The
codec is never looser: what `fast_decode` takes, `calc.schema.decode` takes and reads the same way; what the
edge builds (`EdgeSample`, checked on construction) the contract accepts (tests/calc/test_reading_codec.py).
Field limits, flags and qualities come from calc.schema, so they are written once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from math import isfinite
from typing import TYPE_CHECKING, Annotated, Literal

import msgspec
from pydantic import ValidationError

from calc.errors import CalcError
from calc.schema import (
    AGENT_MAX,
    MAX_SAMPLES,
    MAX_SEQ,
    METER_MAX,
    METER_PATTERN,
    QUANTITY_MAX,
    REASON_MAX,
    SCHEMA_VERSION,
    UNIT_MAX,
    Flag,
    Quality,
    Sample,
)
from calc.utc_stamps import utc_us, utc_us_many

__all__ = ["EdgeMessage", "EdgeSample", "FastMessage", "FastSample", "WireError", "decode_edge", "encode_reading",
           "fast_decode", "from_sample", "slow_ts", "utc_us", "utc_us_many"]

_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)

# ---- writing (the edge) ---------------------------------------------------------------------------------------


class WireError(CalcError):
    """A sample or message the reading contract would refuse (a bug in the agent, never the meter's doing)."""


class EdgeSample(msgspec.Struct, frozen=True, gc=False):
    """calc.schema.Sample's fields in its order, as the agent builds them; see there for their meaning.

    Checks on construction what the contract would refuse of what the agent measures (a non-UTC time, a
    number that is not finite, an over-long reason), so nothing the agent sends is dead-lettered for its form.
    """

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
        if self.reason is not None and len(self.reason) > REASON_MAX:
            raise WireError(f"{self.quantity}: reason longer than {REASON_MAX} characters")


class EdgeMessage(msgspec.Struct, frozen=True, gc=False):
    """A reading message with the agent's samples (what `encode_reading` writes and `decode_edge` reads back)."""

    v: int
    meter: str
    seq: int
    agent: str | None
    samples: Sequence[EdgeSample]


_encoder = msgspec.json.Encoder()
_edge_decoder = msgspec.json.Decoder(EdgeMessage)


def encode_reading(meter: str, seq: int, agent: str | None, samples: Sequence[EdgeSample]) -> bytes:
    """The JSON payload of a reading message (calc.schema.encode gives the same document)."""
    if not samples:
        raise WireError(f"{meter}: a reading message needs at least one sample")
    if len(samples) > MAX_SAMPLES:
        raise WireError(f"{meter}: {len(samples)} samples in one message, at most {MAX_SAMPLES}")
    return _encoder.encode(EdgeMessage(SCHEMA_VERSION, meter, seq, agent, samples))


def decode_edge(payload: bytes) -> EdgeMessage:
    """A payload the agent wrote (its spool) back into its samples; raises msgspec errors or WireError."""
    return _edge_decoder.decode(payload)


# ---- reading (ingest's hot path) ------------------------------------------------------------------------------

UtcTs = Annotated[str, msgspec.Meta(min_length=20, max_length=32)]  # read by utc_us, else by calc.schema
# Quality and flags are read as plain text (the stores bind a str faster than a StrEnum member), the allowed
# values taken from calc.schema's enums, so they are listed once.
if TYPE_CHECKING:
    QualityName = str
    FlagName = str
else:
    QualityName = Literal[tuple(q.value for q in Quality)]
    FlagName = Literal[tuple(f.value for f in Flag)]


class FastSample(msgspec.Struct, forbid_unknown_fields=True, frozen=True, gc=False):
    """calc.schema.Sample with its time still text (read in bulk by `utc_us_many`)."""

    ts: UtcTs
    quantity: Annotated[str, msgspec.Meta(min_length=1, max_length=QUANTITY_MAX)]
    value: float
    unit: Annotated[str, msgspec.Meta(min_length=1, max_length=UNIT_MAX)]
    delta: float | None = None
    interval_s: Annotated[float, msgspec.Meta(ge=0)] | None = None
    quality: QualityName = Quality.GOOD.value
    reason: Annotated[str, msgspec.Meta(max_length=REASON_MAX)] | None = None
    flags: tuple[FlagName, ...] = ()

    def dump(self) -> bytes:
        return _encoder.encode(self)


class FastMessage(msgspec.Struct, forbid_unknown_fields=True, frozen=True, gc=False):
    """calc.schema.ReadingMessage as the hot path reads it."""

    meter: Annotated[str, msgspec.Meta(min_length=1, max_length=METER_MAX, pattern=METER_PATTERN)]
    seq: Annotated[int, msgspec.Meta(ge=0, le=MAX_SEQ)]
    samples: Annotated[tuple[FastSample, ...], msgspec.Meta(min_length=1, max_length=MAX_SAMPLES)]
    v: Literal[1] = SCHEMA_VERSION
    agent: Annotated[str, msgspec.Meta(max_length=AGENT_MAX)] | None = None


_fast_decoder = msgspec.json.Decoder(FastMessage)


def fast_decode(payload: bytes) -> FastMessage | None:
    """The message when the strict fast decoder takes it, else None (then ask calc.schema.decode why).

    Timestamps are still text: `utc_us` reads the plain UTC form; a sample in any other form is
    decided by `slow_ts` (pydantic), exactly as if the whole message had gone that way.
    """
    try:
        return _fast_decoder.decode(payload)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None


def slow_ts(s: FastSample) -> int | str:
    """µs since the epoch of a timestamp `utc_us` did not take, as calc.schema reads it; else why not."""
    try:
        sample = Sample.model_validate(msgspec.to_builtins(s))
    except ValidationError as exc:
        err = exc.errors()[0]
        return f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']} (got {s.ts!r:.60})"
    return (sample.ts - _EPOCH_UTC) // _US


def from_sample(s: Sample) -> FastSample:
    """The same sample in the fast form (for samples the pydantic path validated)."""
    ts = s.ts.astimezone(UTC).isoformat()
    return FastSample(ts=ts, quantity=s.quantity, value=s.value, unit=s.unit, delta=s.delta, interval_s=s.interval_s,
                      quality=s.quality.value, reason=s.reason, flags=tuple(f.value for f in s.flags))
