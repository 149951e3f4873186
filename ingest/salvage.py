"""What is left of a message that failed validation: the reasons a dead letter gives (naming each bad field), the
good samples of a message whose other samples are bad, and what is kept of an oversize payload."""

from __future__ import annotations

import hashlib
import json

import pydantic_core
from pydantic import ValidationError

from calc.schema import MAX_SAMPLES, MAX_SEQ, ReadingMessage, Sample
from ingest.points import Converted, DeadLetter

DEAD_PAYLOAD_MAX_BYTES = 64 * 1024  # of a refused oversize message, this much is kept (with its size and hash)


def seq_or_none(value: object) -> int | None:
    """A sequence number as a dead letter may record it (a signed 64-bit integer), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SEQ else None


def oversize(payload: bytes, limit: int) -> tuple[bytes, str]:
    """What is kept of a message over the size limit, and the reason naming its size and hash."""
    digest = hashlib.sha256(payload).hexdigest()
    return (payload[:DEAD_PAYLOAD_MAX_BYTES],
            f"payload: {len(payload)} bytes, more than the limit of {limit} ([ingest] max_message_bytes); "
            f"kept its first {min(len(payload), DEAD_PAYLOAD_MAX_BYTES)} bytes, sha256 {digest}")


def _short_repr(value: object) -> str:
    """repr of an offending input, at most 60 characters (an integer of 5,000 digits has no repr in Python)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**60:
        return f"an integer of {value.bit_length()} bits"
    if isinstance(value, str | bytes) and len(value) > 60:
        value = value[:60]
    return f"{value!r:.60}"


def validation_reason(exc: ValidationError, prefix: str = "") -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"])
        loc = f"{prefix}{loc}" if loc else (prefix.rstrip(".") or "payload")
        value = err.get("input")
        shown = "" if isinstance(value, dict | list) else f" (got {_short_repr(value)})"
        parts.append(f"{loc}: {err['msg']}{shown}")
    more = len(exc.errors()) - 5
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")



def salvage(payload: bytes, exc: ValidationError, now_us: int, topic: str,
            out: Converted) -> tuple[ReadingMessage, list[tuple[int, Sample]]] | None:
    """A message that failed validation: keep the good samples when only some samples are bad.

    The payload is parsed again by pydantic's JSON parser, which stops at a nesting depth of its own
    (the standard library's raises RecursionError on a few thousand levels) and at integers too long."""
    try:
        raw = pydantic_core.from_json(payload)
    except ValueError:
        out.dead.append(DeadLetter(now_us, topic, payload, validation_reason(exc)))
        return None
    raw_samples = raw.get("samples") if isinstance(raw, dict) else None
    if not isinstance(raw_samples, list) or not raw_samples or len(raw_samples) > MAX_SAMPLES:
        out.dead.append(DeadLetter(now_us, topic, payload, validation_reason(exc)))
        return None
    try:
        envelope = ReadingMessage.model_validate({**raw, "samples": [raw_samples[0]]}, strict=False)
    except ValidationError:
        envelope = None
    head = {k: v for k, v in raw.items() if k != "samples"}
    meter_id = head.get("meter") if isinstance(head.get("meter"), str) else None
    seq = seq_or_none(head.get("seq"))
    if envelope is None:
        # Is the envelope itself bad, or only the first sample? Validate with a known-good dummy sample.
        dummy = {"ts": "2000-01-01T00:00:00Z", "quantity": "x", "value": 0, "unit": "kWh"}
        try:
            envelope = ReadingMessage.model_validate({**head, "samples": [dummy]})
        except ValidationError as env_exc:
            out.dead.append(DeadLetter(now_us, topic, payload, validation_reason(env_exc), meter_id, seq))
            agent = head.get("agent")
            if isinstance(agent, str) and agent and meter_id and seq is not None:
                out.ack = (agent, meter_id, seq)  # dead-lettered is handled: its sender may forget it
            return None
    good: list[tuple[int, Sample]] = []
    for i, raw_sample in enumerate(raw_samples):
        try:
            good.append((i, Sample.model_validate(raw_sample)))
        except ValidationError as sample_exc:
            body = json.dumps(raw_sample, default=str).encode()
            out.dead.append(DeadLetter(now_us, topic, body, validation_reason(sample_exc, f"samples.{i}."),
                                       envelope.meter, envelope.seq, i))
    return envelope, good
