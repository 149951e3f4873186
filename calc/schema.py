"""The versioned reading message that edge agents publish and ingest consumes (MQTT payload, JSON).

Version 1. A message carries one meter's samples; batching several samples per message is how
throughput is won. Every number carries its unit. These pydantic models are the documented schema;
the edge writes and ingest's hot path reads the same document with calc.reading_codec (msgspec).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

SCHEMA_VERSION: Literal[1] = 1
MAX_SEQ = 2**63 - 1  # sequence numbers are signed 64-bit integers in every store
MAX_SAMPLES = 10_000  # samples in one message
# Field limits, shared with the msgspec codec (calc.reading_codec) so both read the message the same way.
METER_PATTERN = r"^[A-Za-z0-9_.\-]+$"
METER_MAX = 128
AGENT_MAX = 128
QUANTITY_MAX = 64
UNIT_MAX = 32
REASON_MAX = 200

MeterId = Annotated[str, Field(min_length=1, max_length=METER_MAX, pattern=METER_PATTERN)]


class Quality(StrEnum):
    """What the edge agent knows about a sample (OPC UA style: good, uncertain, bad)."""

    GOOD = "good"
    UNCERTAIN = "uncertain"
    BAD = "bad"


class Flag(StrEnum):
    """Why a counter sample is special; carried with the sample, never hidden."""

    ROLLOVER = "rollover"
    RESET = "reset"
    STUCK = "stuck"
    SPIKE = "spike"
    GAP = "gap"
    FIRST = "first"
    CLOCK = "clock"
    HELD = "held"                # the delta is energy nobody could explain: stored as held, counted once released
    TRANSIENT = "transient"      # a glitch reading (zero, garbage) was bridged: the delta counts from the last good
    REPLACEMENT = "replacement"  # a new counter: this reading is its baseline, the jump to it is not energy
    ESTIMATED = "estimated"      # set by ingest: a share of a gap's energy, spread over the gap
    RELEASED = "released"        # set by the store: held energy an engineer released
    VOID = "void"                # a manual production or driver entry taken back: counts negatively (variables only)


class Sample(BaseModel):
    """One reading of one quantity of a meter at the meter's (or agent's) source time.

    For cumulative counters `value` is the counter and `delta` the interval energy since the previous
    good reading, both in `unit`; `interval_s` is the length of that interval. Instantaneous
    quantities (power) have no delta. A production counter or driver variable (calc.plant.Variable) is
    published the same way under its own id: a counter's delta is the production (pieces, t) since the
    previous reading, and a gauge (outdoor temperature) carries `interval_s`, the time the value stands for.
    """

    model_config = ConfigDict(frozen=True, allow_inf_nan=False, extra="forbid")

    ts: AwareDatetime
    quantity: str = Field(min_length=1, max_length=QUANTITY_MAX, examples=["active_energy_import"])
    value: float
    unit: str = Field(min_length=1, max_length=UNIT_MAX, examples=["kWh"])
    delta: float | None = None
    interval_s: float | None = Field(default=None, ge=0)
    quality: Quality = Quality.GOOD
    reason: str | None = Field(default=None, max_length=REASON_MAX)
    flags: tuple[Flag, ...] = ()

    @field_validator("ts")
    @classmethod
    def _utc(cls, ts: datetime) -> datetime:
        offset = ts.utcoffset()
        if offset is None or offset.total_seconds() != 0:
            raise ValueError("timestamp must be UTC")
        return ts


class ReadingMessage(BaseModel):
    """Payload of carbonwatch/v1/{site}/{area}/{meter}/reading."""

    model_config = ConfigDict(frozen=True, allow_inf_nan=False, extra="forbid")

    v: Literal[1] = SCHEMA_VERSION
    meter: MeterId
    seq: int = Field(ge=0, le=MAX_SEQ, description="per-meter sequence number that survives agent restarts")
    agent: str | None = Field(default=None, max_length=AGENT_MAX)
    samples: tuple[Sample, ...] = Field(min_length=1, max_length=MAX_SAMPLES)


def encode(message: ReadingMessage) -> bytes:
    """Serialize a reading message to its JSON wire form."""
    return message.model_dump_json(exclude_defaults=False).encode()


def decode(payload: bytes | str) -> ReadingMessage:
    """Parse and validate a JSON payload; raises pydantic.ValidationError naming each bad field."""
    return ReadingMessage.model_validate_json(payload)
