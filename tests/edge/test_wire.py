"""The agent's msgspec encoder writes exactly what calc.schema (the contract ingest checks) writes and reads back."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from calc.reading_codec import EdgeSample, WireError, encode_reading
from calc.schema import Flag, Quality, ReadingMessage, Sample, decode, encode

FINITE = st.floats(allow_nan=False, allow_infinity=False)
TIMES = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))
TEXT = st.text(min_size=1, max_size=32)


@st.composite
def sample_fields(draw: st.DrawFn) -> dict[str, Any]:
    return {"ts": draw(TIMES), "quantity": draw(TEXT), "value": draw(FINITE), "unit": draw(TEXT),
            "delta": draw(st.none() | FINITE), "interval_s": draw(st.none() | st.floats(0, 1e9)),
            "quality": draw(st.sampled_from(list(Quality))), "reason": draw(st.none() | st.text(max_size=200)),
            "flags": tuple(draw(st.lists(st.sampled_from(list(Flag)), max_size=3)))}


@given(st.lists(sample_fields(), min_size=1, max_size=20), st.integers(0, 2**53), st.none() | TEXT)
def test_same_bytes_as_the_contract_and_reads_back_equal(fields: list[dict[str, Any]], seq: int,
                                                         agent: str | None) -> None:
    payload = encode_reading("m-1", seq, agent, [EdgeSample(**f) for f in fields])
    contract = ReadingMessage(meter="m-1", seq=seq, agent=agent, samples=tuple(Sample(**f) for f in fields))
    # the same JSON document (number spelling may differ: 1e16 against 1e+16), read back as the same message
    assert json.loads(payload) == json.loads(encode(contract))
    assert decode(payload) == contract


def test_a_utc_offset_of_zero_in_another_zone_object_is_utc() -> None:
    ts = datetime(2026, 3, 1, tzinfo=timezone(timedelta(0), "GMT"))
    payload = encode_reading("m", 0, None, [EdgeSample(ts, "q", 1.0, "kWh")])
    assert decode(payload).samples[0].ts == ts


@pytest.mark.parametrize(("fields", "why"), [
    ({"ts": datetime(2026, 3, 1, tzinfo=timezone(timedelta(hours=8)))}, "must be UTC"),
    ({"ts": datetime(2026, 3, 1)}, "must be UTC"),
    ({"value": float("nan")}, "value is not finite"),
    ({"value": float("inf")}, "value is not finite"),
    ({"delta": float("-inf")}, "delta is not finite"),
    ({"interval_s": -1.0}, "interval_s must be"),
    ({"interval_s": float("nan")}, "interval_s must be"),
    ({"reason": "x" * 201}, "longer than 200"),
])
def test_what_the_contract_refuses_is_refused_when_built(fields: dict[str, Any], why: str) -> None:
    base: dict[str, Any] = {"ts": datetime(2026, 3, 1, tzinfo=UTC), "quantity": "active_energy_import",
                            "value": 1.0, "unit": "kWh"}
    with pytest.raises(WireError, match=why) as refused:
        EdgeSample(**{**base, **fields})
    assert "active_energy_import" in str(refused.value)
    with pytest.raises(ValueError):  # and the contract indeed refuses it
        Sample(**{**base, **fields})


def test_a_message_needs_a_sample() -> None:
    with pytest.raises(WireError, match="at least one sample"):
        encode_reading("m", 0, None, [])
