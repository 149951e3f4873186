"""A msgspec mirror of calc.schema's reading message, for the hot path: never looser than the pydantic model.

Whatever this decoder accepts, `calc.schema.decode` accepts too and reads the same way; whatever it
refuses goes to the pydantic path, which decides and names the reason. Timestamps are only accepted
here in plain UTC RFC 3339 with at most microseconds (other forms go the pydantic way), so both
paths give the same microsecond.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal, get_args

import msgspec
from pydantic import ValidationError

from calc.schema import Flag, Sample

UtcTs = Annotated[str, msgspec.Meta(min_length=20, max_length=32)]
FlagName = Literal["rollover", "reset", "stuck", "spike", "gap", "first", "clock"]
_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH = datetime(1970, 1, 1)  # naive: the UTC suffix is checked and cut off before parsing
_US = timedelta(microseconds=1)

assert {f.value for f in Flag} == set(get_args(FlagName)), "fastschema.FlagName must list calc.schema.Flag"


class FastSample(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    ts: UtcTs
    quantity: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    value: float
    unit: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    delta: float | None = None
    interval_s: Annotated[float, msgspec.Meta(ge=0)] | None = None
    quality: Literal["good", "uncertain", "bad"] = "good"
    reason: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    flags: tuple[FlagName, ...] = ()

    def dump(self) -> bytes:
        return msgspec.json.encode(self)


class FastMessage(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    meter: Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.\-]+$")]
    seq: Annotated[int, msgspec.Meta(ge=0)]
    samples: Annotated[tuple[FastSample, ...], msgspec.Meta(min_length=1, max_length=10_000)]
    v: Literal[1] = 1
    agent: Annotated[str, msgspec.Meta(max_length=128)] | None = None


_decoder = msgspec.json.Decoder(FastMessage)


def utc_us(ts: str) -> int | None:
    """Microseconds since the epoch of `YYYY-MM-DDTHH:MM:SS[.ffffff](Z|+00:00)`, else None."""
    if ts[-1] == "Z":
        core = ts[:-1]
    elif ts.endswith("+00:00"):
        core = ts[:-6]
    else:
        return None
    n = len(core)
    if not (n == 19 or (21 <= n <= 26 and core[19] == ".")) or core[4] != "-" or core[7] != "-" \
            or core[10] != "T" or core[13] != ":" or core[16] != ":" or not core[:4].isdigit():
        return None
    try:
        return (datetime.fromisoformat(core) - _EPOCH) // _US
    except ValueError:
        return None


def fast_decode(payload: bytes) -> FastMessage | None:
    """The message when the strict fast decoder takes it, else None (then ask calc.schema.decode why).

    Timestamps are still text: `utc_us` reads the plain UTC form; a sample in any other form is
    decided by `slow_ts` (pydantic), exactly as if the whole message had gone that way.
    """
    try:
        return _decoder.decode(payload)
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
