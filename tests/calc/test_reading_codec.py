"""calc.reading_codec (msgspec) and calc.schema (pydantic, the documented contract) agree on generated messages.

Over valid and invalid payloads: what the codec takes the schema takes with the same values; what the schema
takes and the codec does not differs from the schema's own spelling of it (a lax form such as "1.5" for a
number, or a timestamp form the codec leaves to the schema); what the edge writes both read alike.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from calc.reading_codec import EdgeSample, FastMessage, encode_reading, fast_decode, slow_ts, utc_us, utc_us_many
from calc.schema import Flag, Quality, ReadingMessage, decode, encode

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
RECENT = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1))
GOOD_TS = st.one_of(RECENT.map(lambda d: d.isoformat() + "Z"), RECENT.map(lambda d: d.isoformat() + "+00:00"))
BAD_TS = st.one_of(  # other forms the schema still takes, and forms it refuses
    RECENT.map(lambda d: d.isoformat()), RECENT.map(lambda d: d.isoformat() + "+01:00"),
    RECENT.map(lambda d: d.isoformat(sep=" ") + "Z"), RECENT.map(lambda d: d.strftime("%Y-%m-%dT%H:%MZ")),
    st.sampled_from(["2026-02-30T00:00:00Z", "2026-03-01T24:00:00Z", "2026-03-01T00:00:00.1234567Z",
                     "1772409600", "", "2026-03-01t00:00:00z"]))
NUMBER = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-10**6, 10**6))
BAD_NUMBER = st.one_of(st.booleans(), st.none(), st.sampled_from(["1.5", "x", "NaN", 1e309]))
TEXT = st.text(min_size=1, max_size=20)
BAD_TEXT = st.one_of(st.just(""), st.text(min_size=65, max_size=70), st.integers())
FLOAT_FIELDS = ("value", "delta", "interval_s")


def pick(draw: st.DrawFn, good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> Any:
    return draw(bad) if draw(st.integers(0, 9)) == 0 else draw(good)


@st.composite
def sample_docs(draw: st.DrawFn) -> dict[str, Any]:
    s: dict[str, Any] = {"ts": pick(draw, GOOD_TS, BAD_TS), "quantity": pick(draw, TEXT, BAD_TEXT),
                         "value": pick(draw, NUMBER, BAD_NUMBER), "unit": pick(draw, TEXT, BAD_TEXT)}
    optional = (("delta", st.none() | NUMBER, BAD_NUMBER),
                ("interval_s", st.none() | st.floats(0, 1e6), st.floats(max_value=-0.001)),
                ("quality", st.sampled_from([q.value for q in Quality]), st.sampled_from(["GOOD", "ok", 1])),
                ("flags", st.lists(st.sampled_from([f.value for f in Flag]), max_size=3),
                 st.lists(st.sampled_from(["nope", 1, "Gap"]), min_size=1, max_size=2)),
                ("reason", st.none() | st.text(max_size=200), st.text(min_size=201, max_size=205)))
    for key, good, bad in optional:
        if draw(st.booleans()):
            s[key] = pick(draw, good, bad)
    if draw(st.integers(0, 20)) == 0:
        s["extra"] = 1
    return s


@st.composite
def payloads(draw: st.DrawFn) -> bytes:
    doc: dict[str, Any] = {
        "meter": pick(draw, st.from_regex(r"[A-Za-z0-9_.\-]{1,12}", fullmatch=True), st.sampled_from(["", "a b", 5])),
        "seq": pick(draw, st.integers(0, 2**63 - 1), st.sampled_from([-1, 2**63, 1.5, 3.0, "3", True])),
        "samples": draw(st.lists(sample_docs(), min_size=1, max_size=4)) if draw(st.integers(0, 15)) else []}
    if draw(st.booleans()):
        doc["v"] = pick(draw, st.just(1), st.sampled_from([2, "1", 1.0, True]))
    if draw(st.booleans()):
        doc["agent"] = pick(draw, st.none() | st.text(max_size=128), st.text(min_size=129, max_size=130))
    return json.dumps(doc).encode()


def codec_view(fast: FastMessage) -> tuple[Any, ...] | str:
    """The message as the codec reads it (times in µs), or why the schema refuses one of its timestamps."""
    samples = []
    for s, us in zip(fast.samples, utc_us_many([s.ts for s in fast.samples]), strict=True):
        assert us == utc_us(s.ts)
        ts_us = us if us is not None else slow_ts(s)
        if isinstance(ts_us, str):
            return ts_us
        samples.append((ts_us, s.quantity, s.value, s.unit, s.delta, s.interval_s, Quality(s.quality), s.reason,
                        tuple(Flag(f) for f in s.flags)))
    return fast.v, fast.meter, fast.seq, fast.agent, tuple(samples)


def schema_view(msg: ReadingMessage) -> tuple[Any, ...]:
    return msg.v, msg.meter, msg.seq, msg.agent, tuple(
        ((s.ts - EPOCH) // (s.ts.resolution), s.quantity, s.value, s.unit, s.delta, s.interval_s, s.quality,
         s.reason, s.flags) for s in msg.samples)


def strict(doc: Any, key: str = "") -> Any:
    """A JSON document compared with its types (True is no 1; an integer is a float only where a float belongs)."""
    if isinstance(doc, dict):
        return {k: strict(v, k) for k, v in doc.items() if k != "ts"}
    if isinstance(doc, list):
        return [strict(v) for v in doc]
    if key in FLOAT_FIELDS and type(doc) is int:
        return ("float", float(doc))
    return (type(doc).__name__, doc)


def with_defaults(doc: dict[str, Any]) -> dict[str, Any]:
    samples = [{"delta": None, "interval_s": None, "quality": "good", "reason": None, "flags": [], **s}
               for s in doc.get("samples", []) if isinstance(s, dict)]
    return {"v": 1, "agent": None, **doc, "samples": samples}


@settings(max_examples=1500, deadline=None)
@given(payloads())
@example(b'{"meter":"m","seq":1,"samples":[{"ts":"2026-03-01T00:00:00.1234567Z","quantity":"q","value":1,"unit":"u"}]}')
@example(b'{"meter":"m","seq":1,"samples":[{"ts":"2026-03-01 00:00:00Z","quantity":"q","value":1,"unit":"u"}]}')
@example(b'{"meter":"m","seq":"3","samples":[{"ts":"2026-03-01T00:00:00Z","quantity":"q","value":"1.5","unit":"u"}]}')
def test_codec_and_schema_accept_and_read_messages_alike(payload: bytes) -> None:
    try:
        msg: ReadingMessage | None = decode(payload)
    except ValidationError:
        msg = None
    fast = fast_decode(payload)
    if fast is not None:
        view = codec_view(fast)
        if isinstance(view, str):  # a timestamp the codec left to the schema, and the schema refuses it
            assert msg is None, view
        else:  # taken by the codec: the schema takes it too, with the same values
            assert msg is not None
            assert view == schema_view(msg)
    elif msg is not None:  # taken by the schema only: the payload is not the schema's own spelling of it
        canonical = json.loads(encode(msg))
        stamps_in_codec_range = all(20 <= len(s["ts"]) <= 32 for s in json.loads(payload)["samples"])
        assert not stamps_in_codec_range or strict(with_defaults(json.loads(payload))) != strict(canonical)
        again = fast_decode(encode(msg))  # and its own spelling the codec takes, as the same message
        assert again is not None and codec_view(again) == schema_view(msg)


FINITE = st.floats(allow_nan=False, allow_infinity=False)
UTC_TIMES = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))


@st.composite
def edge_samples(draw: st.DrawFn) -> EdgeSample:
    return EdgeSample(ts=draw(UTC_TIMES), quantity=draw(st.text(min_size=1, max_size=64)), value=draw(FINITE),
                      unit=draw(st.text(min_size=1, max_size=32)), delta=draw(st.none() | FINITE),
                      interval_s=draw(st.none() | st.floats(0, 1e9)), quality=draw(st.sampled_from(list(Quality))),
                      reason=draw(st.none() | st.text(max_size=200)),
                      flags=tuple(draw(st.lists(st.sampled_from(list(Flag)), max_size=3))))


@settings(max_examples=300, deadline=None)
@given(st.lists(edge_samples(), min_size=1, max_size=30), st.integers(0, 2**63 - 1), st.none() | st.text(max_size=128))
def test_what_the_edge_writes_the_codec_and_schema_read_alike(samples: list[EdgeSample], seq: int,
                                                               agent: str | None) -> None:
    payload = encode_reading("meter-1", seq, agent, samples)
    fast = fast_decode(payload)
    assert fast is not None  # the hot path takes everything the edge writes
    assert codec_view(fast) == schema_view(decode(payload))
