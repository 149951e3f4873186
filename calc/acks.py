"""The end-to-end acknowledgement: ingest tells an edge agent which of its messages are durably handled.

Payload of `carbonwatch/v1/{site}/edge/{agent}/ack` (QoS 1), version 1: per meter, inclusive ranges of the
sequence numbers whose messages ingest has stored or dead-lettered (duplicates included, since their points
are stored already). The edge deletes exactly those messages from its spool and sends again what stays
unacknowledged, so the broker is transport, never the only copy of a reading.

    {"v": 1, "agent": "line-1", "acks": {"press-1": [[41, 57]], "oven-gas": [[3, 3], [5, 9]]}}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from calc.errors import CalcError
from calc.schema import MAX_SEQ, MeterId

ACK_VERSION: Literal[1] = 1
MAX_RANGES = 100_000  # ranges in one message: more is not an acknowledgement ingest would send

Seq = Annotated[int, Field(ge=0, le=MAX_SEQ)]
SeqRange = tuple[Seq, Seq]


class AckError(CalcError):
    """A payload on an ack topic that is not a valid acknowledgement (names what is wrong)."""


class AckMessage(BaseModel):
    """Ingest -> edge: the (meter, seq) pairs that are durably stored or dead-lettered, as ranges."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Literal[1] = ACK_VERSION
    agent: str = Field(min_length=1, max_length=128)
    acks: dict[MeterId, list[SeqRange]]

    @model_validator(mode="after")
    def _ranges(self) -> AckMessage:
        total = 0
        for meter, ranges in self.acks.items():
            for lo, hi in ranges:
                if lo > hi:
                    raise ValueError(f"acks.{meter}: range [{lo}, {hi}] runs backwards")
            total += len(ranges)
        if total > MAX_RANGES:
            raise ValueError(f"acks: {total} ranges, at most {MAX_RANGES}")
        return self


def ranges(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted, merged inclusive ranges covering exactly `seqs` (duplicates allowed)."""
    out: list[tuple[int, int]] = []
    for seq in sorted(set(seqs)):
        if out and seq == out[-1][1] + 1:
            out[-1] = (out[-1][0], seq)
        else:
            out.append((seq, seq))
    return out


def encode_acks(agent: str, seqs_by_meter: Mapping[str, Iterable[int]]) -> bytes:
    """The JSON payload acknowledging these sequence numbers per meter."""
    message = AckMessage(agent=agent, acks={m: ranges(s) for m, s in seqs_by_meter.items()})
    return message.model_dump_json().encode()


def decode_acks(payload: bytes | str) -> AckMessage:
    """Parse and check an ack payload; raises AckError naming what is wrong."""
    if len(payload) > 16 * 1024 * 1024:
        raise AckError(f"ack payload of {len(payload)} bytes is too large")
    try:
        return AckMessage.model_validate_json(payload, strict=True)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "payload"
        raise AckError(f"{where}: {err['msg']}") from exc
    except RecursionError as exc:  # a document nested deeper than the parser goes
        raise AckError("payload: nested too deeply") from exc
