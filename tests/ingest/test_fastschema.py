"""The msgspec fast decoder is never looser than calc.schema (pydantic) and reads what it accepts the same way."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from calc.plant import parse_plant
from calc.reading_codec import fast_decode, utc_us, utc_us_many
from calc.schema import decode
from ingest.convert import Converter
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


# Stamps of one length that the column-wise reader must take or hand back: impossible dates, leap
# days, hour 24, second 60, non-ASCII digits, other separators, fractions of every length.
EDGE_LIST = [
    "2024-02-29T00:00:00Z", "2026-02-29T00:00:00Z", "1900-02-29T00:00:00Z", "2000-02-29T23:59:59Z",
    "2026-04-31T00:00:00Z", "2026-12-31T23:59:59Z", "2026-00-10T00:00:00Z", "2026-13-10T00:00:00Z",
    "2026-03-00T00:00:00Z", "2026-03-01T24:00:00Z", "2026-03-01T00:60:00Z", "2026-03-01T00:00:60Z",
    "0000-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z", "1969-12-31T23:59:59.5Z",
    "\uff12026-03-01T00:00:00Z", "2026-03-01T00:00:00,5Z", "2026/03/01T00:00:00Z", "2026-03-01T00:00:00.Z",
    "2026-03-01T00:00:00+00:01", "2026-03-01T00:00:00-00:00", "2026-03-01T00:00:00.1+00:00", "x" * 20,
    "2026-03-01T00:00:00.123456+00:00", "2026-03-01T00:00:00.12345Z", "2026-03-01T00:00:00.1234567Z"]
STAMP = st.one_of(GOOD_TIMES, GOOD_TIMES, BAD_TIMES, st.sampled_from(EDGE_LIST),
                  st.text(alphabet="0123456789-T:.Z+ ", min_size=19, max_size=32))


@settings(max_examples=300, deadline=None)
@given(st.lists(STAMP, min_size=0, max_size=80), st.sampled_from([1, 20, 60]))
def test_the_vectorized_timestamp_reader_equals_utc_us_for_every_stamp(stamps: list[str], repeat: int) -> None:
    many = stamps * repeat  # long lists take the column-wise path, short ones the one-by-one path
    assert utc_us_many(many) == [utc_us(ts) for ts in many]


@pytest.mark.parametrize("odd", EDGE_LIST)
def test_each_edge_stamp_among_plain_ones_reads_as_utc_us(odd: str) -> None:
    stamps = [f"2026-03-01T00:00:{i:02d}Z" for i in range(40)]
    stamps[17] = odd
    assert utc_us_many(stamps) == [utc_us(ts) for ts in stamps]
    assert utc_us_many([odd] * 20) == [utc_us(odd)] * 20


def test_a_batch_of_many_messages_converts_as_each_message_alone() -> None:
    """The batch path (timestamps read column-wise over all messages) against one message at a time."""
    topic = "carbonwatch/v1/demo/a1/m1/reading"
    payloads = [json.dumps({"meter": "m1", "seq": k, "samples": [
        {"ts": f"2026-03-01T00:{k:02d}:{i:02d}{'.5' if i % 3 else ''}{'Z' if k % 2 else '+00:00'}",
         "quantity": "active_energy_import", "value": 100 + i, "unit": "kWh", "delta": 0.5, "interval_s": 1.0}
        for i in range(30)] + [{"ts": "2026-02-30T00:00:00Z", "quantity": "q", "value": 1, "unit": "kWh"}]}).encode()
        for k in range(10)]
    together = FAST.convert_batch([(topic, p, NOW_US) for p in payloads])
    alone = [SLOW.convert(topic, p, NOW_US) for p in payloads]
    assert [c.points for c in together] == [c.points for c in alone]
    assert sum(len(c.points) for c in together) == 300
    assert [[d.index for d in c.dead] for c in together] == [[30]] * 10
