"""Poison input costs at most itself (pure: the converter, no broker, no store).

Every payload, however malformed, comes out of the converter as points and/or dead letters with a reason,
never as an exception; bounds (size, depth, sample count, integer range) are checked before parsing work is
spent on them, and a failure nobody foresaw in one message leaves the rest of the batch converted.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from calc import topics
from calc.plant import Meter, parse_plant
from calc.schema import MAX_SAMPLES, MAX_SEQ
from ingest.convert import Converted, Converter
from ingest.points import ENERGY, PUBLISHED_PAYLOAD_MAX, ts_to_us
from ingest.salvage import DEAD_PAYLOAD_MAX_BYTES
from tests.ingest.helpers import SITE, T0, counter_sample, iso

PLANT = parse_plant({
    "site": {"id": "demo", "region": "CN", "start": "2026-01-01T00:00:00Z"},
    "meters": [{"id": "press-1", "area": "pressing", "carrier": "electricity"},
               {"id": "press-2", "area": "pressing", "carrier": "electricity"}],
})
NOW_US = ts_to_us(T0 + timedelta(days=1))
TOPIC = topics.reading(SITE, "pressing", "press-1")


def conv(**kw: Any) -> Converter:
    return Converter(PLANT, max_future_s=300, clock=lambda: NOW_US / 1e6, **kw)


def good(seq: int, meter: str = "press-1", n: int = 2, agent: str | None = "a1") -> bytes:
    samples = [counter_sample(T0 + timedelta(minutes=seq * 10 + i), 1.5, 100.0 + i) for i in range(n)]
    return json.dumps({"v": 1, "meter": meter, "seq": seq, "agent": agent, "samples": samples}).encode()


def nested(levels: int) -> bytes:
    sample = counter_sample(T0, 1.0, 1.0)
    body = json.dumps({"v": 1, "meter": "press-1", "seq": 1, "samples": [sample]})
    # the deep part in a field of the first sample: the fast decoder refuses it, the salvage path reads it
    return body.replace('"unit": "kWh"', '"unit": "kWh", "extra": ' + "[" * levels + "]" * levels).encode()


def one_reason(out: Converted) -> str:
    assert out.points == [], "a poison message stored points"
    assert len(out.dead) == 1, out.dead
    return out.dead[0].reason


def test_3000_levels_of_nesting_are_dead_lettered_not_a_recursion_error() -> None:
    payload = nested(3000)
    assert len(payload) < 20_000
    reason = one_reason(conv().convert(TOPIC, payload, NOW_US))
    assert "samples.0" in reason or "Invalid JSON" in reason


def test_a_message_over_the_size_limit_is_refused_unparsed_with_its_size_and_hash() -> None:
    payload = good(1, n=500)
    c = conv(max_message_bytes=len(payload) - 1)
    out = c.convert(TOPIC, payload, NOW_US)
    reason = one_reason(out)
    assert f"{len(payload)} bytes" in reason and str(len(payload) - 1) in reason
    assert hashlib.sha256(payload).hexdigest() in reason
    assert out.dead[0].payload == payload[:DEAD_PAYLOAD_MAX_BYTES]
    assert conv(max_message_bytes=len(payload)).convert(TOPIC, payload, NOW_US).dead == []


def test_a_huge_message_keeps_only_a_bounded_prefix_in_its_dead_letter() -> None:
    payload = b"{" + b" " * (3 * 1024 * 1024) + b"}"
    out = conv(max_message_bytes=1024 * 1024).convert(TOPIC, payload, NOW_US)
    assert "more than the limit" in one_reason(out)
    assert len(out.dead[0].payload) == DEAD_PAYLOAD_MAX_BYTES


@pytest.mark.parametrize("seq", [MAX_SEQ + 1, 2**64, 10**30, -1])
def test_a_seq_outside_a_signed_64_bit_integer_is_dead_lettered(seq: int) -> None:
    payload = good(1).replace(b'"seq": 1', f'"seq": {seq}'.encode())
    out = conv().convert(TOPIC, payload, NOW_US)
    assert "seq" in one_reason(out)
    assert out.dead[0].seq is None and out.ack is None  # no seq to acknowledge: nothing else is claimed


def test_the_largest_seq_is_fine() -> None:
    payload = good(1).replace(b'"seq": 1', f'"seq": {MAX_SEQ}'.encode())
    out = conv().convert(TOPIC, payload, NOW_US)
    assert out.dead == [] and len(out.points) == 2 and out.ack == ("a1", "press-1", MAX_SEQ)


def test_more_samples_than_the_schema_allows_stores_none_of_them() -> None:
    samples = [counter_sample(T0 + timedelta(seconds=i), 0.01, float(i)) for i in range(MAX_SAMPLES + 1)]
    payload = json.dumps({"v": 1, "meter": "press-1", "seq": 1, "samples": samples}).encode()
    assert "at most 10000" in one_reason(conv().convert(TOPIC, payload, NOW_US))
    # with one bad sample among them too (the path that keeps good samples of a partly bad message)
    samples[5]["value"] = "x"
    payload = json.dumps({"v": 1, "meter": "press-1", "seq": 1, "samples": samples}).encode()
    assert one_reason(conv().convert(TOPIC, payload, NOW_US))


def test_an_integer_of_thousands_of_digits_is_named_not_a_crash() -> None:
    payload = good(1).replace(b'"value": 100.0', b'"value": ' + b"9" * 5000)
    out = conv().convert(TOPIC, payload, NOW_US)
    assert out.dead and all(d.reason for d in out.dead)


@pytest.mark.parametrize("payload", [b"", b"\xff\xfe\x00", b"null", b"[]", b'"x"', b"{}", b"1e999",
                                     b'{"samples": {}}', b'{"v": 1, "meter": "press-1", "seq": 1, "samples": []}'])
def test_odd_payloads_are_one_dead_letter_each(payload: bytes) -> None:
    assert one_reason(conv().convert(TOPIC, payload, NOW_US))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20)
near_misses = st.fixed_dictionaries({
    "v": st.sampled_from([1, 1, 2, "1"]), "meter": st.sampled_from(["press-1", "press-2", "nope", "", 7]),
    "seq": st.one_of(st.integers(min_value=-2, max_value=2**64), st.text(max_size=3)),
    "samples": st.lists(st.fixed_dictionaries(
        {"ts": st.sampled_from([iso(T0), "2026-03-01T00:00:00+08:00", "x", iso(T0 + timedelta(days=9))]),
         "quantity": st.sampled_from(["active_energy_import", "", "active_power"]),
         "value": st.one_of(st.floats(allow_nan=True), st.integers(), st.text(max_size=3)),
         "unit": st.sampled_from(["kWh", "Wh", "m**3", "]", ""])},
        optional={"delta": st.floats(allow_nan=True) | st.none(), "interval_s": st.floats() | st.none(),
                  "flags": st.lists(st.sampled_from(["reset", "first", "bogus"]), max_size=2),
                  "extra": json_values}), max_size=4)},
    optional={"agent": st.one_of(st.text(max_size=5), st.none(), st.integers())})


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode()),
                          near_misses.map(lambda v: json.dumps(v).encode())), min_size=1, max_size=6))
def test_no_payload_raises_and_every_message_is_stored_or_dead_lettered(payloads: list[bytes]) -> None:
    c = conv()
    items = [(TOPIC, p, NOW_US) for p in payloads] + [(TOPIC, good(99), NOW_US)]
    outs, batch = c.convert_to_batch(items)
    assert len(outs) == len(items)
    for out in outs:
        assert out.points or out.dead, "a message vanished without a point or a dead letter"
        assert all(d.reason for d in out.dead)
    assert outs[-1].dead == [] and len(outs[-1].points) == 2  # the good message behind them is whole
    counted = [p for p in batch.points if p[ENERGY] is not None]
    assert batch.counted is not None and len(batch.counted.energy) == len(counted)


class Exploding(Converter):
    """A converter with a bug that strikes one meter: the failure must stay with that meter's message."""

    def _points(self, meter: Meter, *args: Any) -> None:
        super()._points(meter, *args)  # its rows are half-added when it blows up
        if meter.id == "press-2":
            raise ZeroDivisionError("a bug nobody foresaw")


def test_an_unforeseen_failure_dead_letters_that_message_only_and_keeps_the_batch_consistent() -> None:
    c = Exploding(PLANT, max_future_s=300, clock=lambda: NOW_US / 1e6)
    items = [(TOPIC, good(1), NOW_US), (topics.reading(SITE, "pressing", "press-2"), good(2, "press-2"), NOW_US),
             (TOPIC, good(3), NOW_US)]
    outs, batch = c.convert_to_batch(items)
    assert [len(o.points) for o in outs] == [2, 0, 2]
    assert "internal: ZeroDivisionError: a bug nobody foresaw" in one_reason(outs[1])
    assert outs[1].ack == ("a1", "press-2", 2)  # handled (dead-lettered): its sender may forget it
    assert batch.counted is not None and batch.counted.meter.tolist() == ["press-1"] * 4
    assert [p[ENERGY] for p in batch.points] == [1.5] * 4
    assert all(p[8] is not None for p in batch.points)  # every counted point got its CO2e


def test_acknowledgement_names_the_sender_only_when_the_payload_does() -> None:
    c = conv()
    assert c.convert(TOPIC, good(7), NOW_US).ack == ("a1", "press-1", 7)
    assert c.convert(TOPIC, good(7, agent=None), NOW_US).ack is None
    wrong_meter = c.convert(topics.reading(SITE, "pressing", "press-1"), good(8, "ghost"), NOW_US)
    assert wrong_meter.dead and wrong_meter.ack == ("a1", "ghost", 8)  # dead-lettered whole: handled


def test_a_published_dead_letter_carries_a_bounded_payload_with_its_size_and_hash() -> None:
    payload = "é".encode() * (DEAD_PAYLOAD_MAX_BYTES * 4)  # escaped as \\u00e9 in JSON: six bytes a character
    out = conv().convert(TOPIC, payload, NOW_US)
    assert out.dead[0].payload == payload  # the store keeps it whole (it is under max_message_bytes)
    doc = json.loads(out.dead[0].as_json())
    assert doc["payload_bytes"] == len(payload) and doc["payload_truncated"] is True
    assert doc["payload_sha256"] == hashlib.sha256(payload).hexdigest()
    assert len(out.dead[0].as_json()) < 7 * PUBLISHED_PAYLOAD_MAX
    small = json.loads(conv().convert(TOPIC, b"garbage", NOW_US).dead[0].as_json())
    assert small["payload"] == "garbage" and "payload_truncated" not in small
