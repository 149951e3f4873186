"""The msgspec fast decoder is never looser than calc.schema (pydantic) and reads what it accepts the same way."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from calc.plant import parse_plant
from calc.schema import decode
from ingest.convert import Converter
from ingest.fastschema import fast_decode, utc_us
from ingest.points import ts_to_us

PLANT = parse_plant({"site": {"id": "demo", "region": "CN", "start": "2000-01-01T00:00:00Z"},
                     "meters": [{"id": "m1", "area": "a1", "carrier": "electricity"}]})
NOW_US = ts_to_us(datetime(2030, 1, 1, tzinfo=UTC))

RECENT = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2029, 12, 31))
GOOD_TIMES = RECENT.map(lambda d: d.isoformat() + st_choice(d))
BAD_TIMES = st.one_of(  # some are other forms calc.schema still takes, some it refuses
    RECENT.map(lambda d: d.isoformat()),
    RECENT.map(lambda d: d.isoformat() + "+08:00"),
    RECENT.map(lambda d: d.isoformat() + "-00:00"),
    RECENT.map(lambda d: d.isoformat(sep=" ") + "Z"),
    RECENT.map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"),
    RECENT.map(lambda d: d.isoformat().replace("T", "t") + "z"),
    RECENT.map(lambda d: d.strftime("%Y-%m-%dT%H:%MZ")),
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
        "meter": pick(draw, st.sampled_from(["m1", "m1", "m1", "m2"]), st.sampled_from(["", "a b", "x/y", 5])),
        "seq": pick(draw, st.integers(0, 2**40), st.one_of(st.integers(-5, -1), st.just(1.5), st.just("3"))),
        "samples": draw(st.lists(samples(), min_size=1, max_size=3)) if draw(st.integers(0, 15)) else []}
    if draw(st.booleans()):
        doc["v"] = pick(draw, st.just(1), st.sampled_from([2, "1", 1.5]))
    if draw(st.booleans()):
        doc["agent"] = pick(draw, st.one_of(st.none(), st.text(max_size=128)), st.text(min_size=129, max_size=130))
    return json.dumps(doc).encode()


FAST = Converter(PLANT, clock=lambda: NOW_US / 1e6)
SLOW = Converter(PLANT, clock=lambda: NOW_US / 1e6, fast=False)


@settings(max_examples=600, deadline=None)
@given(messages())
@example(json.dumps({"meter": "m1", "seq": 1, "samples": [
    {"ts": "2026-03-01T00:00:00.1234567Z", "quantity": "q", "value": 1, "unit": "kWh"}]}).encode())
@example(json.dumps({"meter": "m1", "seq": 1, "samples": [
    {"ts": "2026-03-01 00:00:00z", "quantity": "q", "value": 1, "unit": "kWh"},
    {"ts": "2026-03-01T00:00:00+08:00", "quantity": "q", "value": 1, "unit": "kWh"}]}).encode())
def test_the_fast_path_stores_and_refuses_exactly_what_calc_schema_does(payload: bytes) -> None:
    topic = "carbonwatch/v1/demo/a1/m1/reading"
    fast, slow = FAST.convert(topic, payload, NOW_US), SLOW.convert(topic, payload, NOW_US)
    assert fast.points == slow.points
    assert sorted((d.index is None, d.index or 0) for d in fast.dead) == \
        sorted((d.index is None, d.index or 0) for d in slow.dead)


def test_a_plain_edge_message_takes_the_fast_path() -> None:
    payload = json.dumps({"v": 1, "meter": "press-1", "seq": 3, "samples": [
        {"ts": "2026-03-01T00:00:00.250Z", "quantity": "active_energy_import", "value": 10.5, "unit": "kWh",
         "delta": 0.5, "interval_s": 1.0, "flags": ["gap"]}]}).encode()
    fast = fast_decode(payload)
    assert fast is not None
    assert utc_us(fast.samples[0].ts) == ts_to_us(decode(payload).samples[0].ts)
