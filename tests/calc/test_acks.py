"""The end-to-end acknowledgement payload (calc.acks): ranges, round trip, and what it refuses."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from calc import topics
from calc.acks import AckError, decode_acks, encode_acks, ranges
from calc.schema import MAX_SEQ


@given(st.lists(st.integers(min_value=0, max_value=500), max_size=200))
def test_ranges_cover_exactly_the_sequence_numbers(seqs: list[int]) -> None:
    out = ranges(seqs)
    assert {s for lo, hi in out for s in range(lo, hi + 1)} == set(seqs)
    assert all(a[1] + 1 < b[0] for a, b in itertools.pairwise(out))  # sorted, merged, disjoint


@given(st.dictionaries(st.from_regex(r"[A-Za-z0-9_.\-]{1,20}", fullmatch=True),
                       st.lists(st.integers(min_value=0, max_value=MAX_SEQ), min_size=1, max_size=50), max_size=20))
def test_round_trip(acks: dict[str, list[int]]) -> None:
    message = decode_acks(encode_acks("agent-1", acks))
    assert message.agent == "agent-1"
    assert {m: [tuple(r) for r in rs] for m, rs in message.acks.items()} == {m: ranges(s) for m, s in acks.items()}


def test_consecutive_numbers_travel_as_one_range() -> None:
    assert encode_acks("a", {"m": [7, 5, 6, 9]}) == b'{"v":1,"agent":"a","acks":{"m":[[5,7],[9,9]]}}'


@pytest.mark.parametrize(("payload", "why"), [
    (b'{"v":1,"agent":"a","acks":{"m":[[3,2]]}}', "runs backwards"),
    (b'{"v":1,"agent":"a","acks":{"m":[["3",4]]}}', "acks.m.0.0"),
    (b'{"v":1,"agent":"a","acks":{"m":[[0,9223372036854775808]]}}', "less than or equal"),
    (b'{"v":2,"agent":"a","acks":{}}', "v"),
    (b'{"v":1,"agent":"a","acks":{"bad/meter":[[1,1]]}}', "acks.bad/meter"),
    (b'{"v":1,"agent":"a","acks":{},"extra":1}', "extra"),
    (b"[" * 5000 + b"]" * 5000, "payload"),
    (b"\xff\xfe", "payload"),
])
def test_refuses_what_is_not_an_acknowledgement(payload: bytes, why: str) -> None:
    with pytest.raises(AckError, match=why.replace(".", r"\.").replace("/", "/")):
        decode_acks(payload)


def test_ack_topic_is_beside_the_agents_status() -> None:
    assert topics.edge_ack("s1", "line-1") == "carbonwatch/v1/s1/edge/line-1/ack"
    with pytest.raises(topics.TopicError):
        topics.edge_ack("s1", "a/b")
