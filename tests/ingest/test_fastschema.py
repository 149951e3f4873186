"""The msgspec fast decoder is never looser than calc.schema (pydantic) and reads what it accepts the same way."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from calc.schema import decode
from ingest.fastschema import fast_decode
from ingest.points import ts_to_us

GOOD_TIMES = st.datetimes(allow_imaginary=False).map(lambda d: d.isoformat() + st_choice(d))
BAD_TIMES = st.one_of(
    st.datetimes().map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.isoformat() + "+08:00"),
    st.datetimes().map(lambda d: d.isoformat(sep=" ") + "Z"),
    st.datetimes().map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"),
    st.datetimes().map(lambda d: d.isoformat().replace("T", "t") + "z"),
    st.sampled_from(["2026-03-01T24:00:00Z", "2026-02-30T00:00:00Z", "20260301T000000Z", "1772409600",
                     "2026-03-01T00:00Z", "2026-03-01T00:00:00.Z", "+2026-03-01T00:00:00Z", "", "-00:00"]),
)
GOOD_NUMBERS = st.one_of(st.floats(allow_nan=False, allow_infinity=False, width=64), st.integers(-10**6, 10**6))
BAD_NUMBERS = st.one_of(st.booleans(), st.none(), st.sampled_from(["1.5", "x", "NaN", 1e309]))
GOOD_TEXT = st.text(min_size=1, max_size=20)
BAD_TEXT = st.one_of(st.just(""), st.text(min_size=65, max_size=70), st.integers())


def st_choice(d: object) -> str:
    return "Z" if hash(d) % 2 else "+00:00"


def pick(draw: st.DrawFn, good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> Any:
    """Mostly valid values, now and then an invalid one, so both outcomes are explored."""
    return draw(bad) if draw(st.integers(0, 11)) == 0 else draw(good)


@st.composite
def samples(draw: st.DrawFn) -> dict[str, Any]:
    s: dict[str, Any] = {"ts": pick(draw, GOOD_TIMES, BAD_TIMES), "quantity": pick(draw, GOOD_TEXT, BAD_TEXT),
                         "value": pick(draw, GOOD_NUMBERS, BAD_NUMBERS), "unit": pick(draw, GOOD_TEXT, BAD_TEXT)}
    optional = (("delta", GOOD_NUMBERS, BAD_NUMBERS),
                ("interval_s", st.floats(0, 1e6), st.floats(max_value=-0.001)),
                ("quality", st.sampled_from(["good", "bad", "uncertain"]), st.sampled_from(["GOOD", "ok", 1])),
                ("flags", st.lists(st.sampled_from(["reset", "rollover", "first", "gap"]), max_size=3),
                 st.lists(st.sampled_from(["nope", 1]), min_size=1, max_size=2)),
                ("reason", st.one_of(st.none(), st.text(max_size=200)), st.text(min_size=201, max_size=210)))
    for key, good, bad in optional:
        if draw(st.booleans()):
            s[key] = pick(draw, good, bad)
    if draw(st.integers(0, 20)) == 0:
        s["extra"] = 1
    return s


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    doc: dict[str, Any] = {
        "meter": pick(draw, st.from_regex(r"\A[A-Za-z0-9_.\-]{1,12}\Z"), st.sampled_from(["", "a b", "x/y", 5])),
        "seq": pick(draw, st.integers(0, 2**40), st.one_of(st.integers(-5, -1), st.just(1.5), st.just("3"))),
        "samples": draw(st.lists(samples(), min_size=1, max_size=3)) if draw(st.integers(0, 15)) else []}
    if draw(st.booleans()):
        doc["v"] = pick(draw, st.just(1), st.sampled_from([2, "1", 1.5]))
    if draw(st.booleans()):
        doc["agent"] = pick(draw, st.one_of(st.none(), st.text(max_size=128)), st.text(min_size=129, max_size=130))
    return json.dumps(doc).encode()


@settings(max_examples=600, deadline=None)
@given(messages())
@example(json.dumps({"meter": "m1", "seq": 1, "samples": [
    {"ts": "2026-03-01T00:00:00.1234567Z", "quantity": "q", "value": 1, "unit": "kWh"}]}).encode())
def test_what_the_fast_path_accepts_pydantic_accepts_and_reads_the_same(payload: bytes) -> None:
    fast = fast_decode(payload)
    try:
        slow = decode(payload)
    except ValidationError:
        assert fast is None, payload
        return
    if fast is None:
        return  # refused by the fast path: the pydantic path decides, as it just did
    message, times = fast
    assert (message.meter, message.seq, message.agent) == (slow.meter, slow.seq, slow.agent)
    for f, t, s in zip(message.samples, times, slow.samples, strict=True):
        assert t == ts_to_us(s.ts)
        assert (f.quantity, f.value, f.unit, f.delta, f.interval_s, f.quality, f.reason) == (
            s.quantity, s.value, s.unit, s.delta, s.interval_s, s.quality.value, s.reason)
        assert f.flags == tuple(x.value for x in s.flags)


def test_a_plain_edge_message_takes_the_fast_path() -> None:
    payload = json.dumps({"v": 1, "meter": "press-1", "seq": 3, "samples": [
        {"ts": "2026-03-01T00:00:00.250Z", "quantity": "active_energy_import", "value": 10.5, "unit": "kWh",
         "delta": 0.5, "interval_s": 1.0, "flags": ["gap"]}]}).encode()
    fast = fast_decode(payload)
    assert fast is not None
    assert fast[1] == [ts_to_us(decode(payload).samples[0].ts)]
