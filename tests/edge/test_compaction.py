"""Merging never-published messages (edge.compaction): the energy of every counter is kept exactly, merges of merges
included; baselines and spikes stay samples of their own; gauges are thinned; what the merged message says matches
the readings it replaces. Readings come from the real tracker, fed raw counter values with faults."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calc.reading_codec import EdgeSample, encode_reading
from calc.schema import Flag, Quality, decode
from edge.compaction import GAUGE_KEEP, merge, merge_samples
from edge.drivers import PointValue
from edge.maps import SCHNEIDER_PM5000
from edge.readings import MeterState, MeterTracker, Poll

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
POWER, IMPORT, EXPORT = SCHNEIDER_PM5000[3], SCHNEIDER_PM5000[4], SCHNEIDER_PM5000[5]
COUNTERS = ("active_energy_import", "active_energy_export")

STEP = st.one_of(
    st.tuples(st.just("up"), st.integers(0, 10**6)),   # Wh since the last poll
    st.tuples(st.just("bad"), st.just(0)),              # no value: the baseline stays
    st.tuples(st.just("reset"), st.integers(0, 10**4)),  # the meter restarted from zero
    st.tuples(st.just("spike"), st.integers(10**9, 10**10)),  # far beyond 500 kW: ingest may hold it
)


def polls_to_messages(steps: Sequence[tuple[int, tuple[str, int]]], cuts: Sequence[int]) -> list[bytes]:
    """Readings of one meter made by the tracker from raw counter steps, cut into messages of the given sizes."""
    tracker = MeterTracker("m", stuck_after=3, max_power_kw=500.0)
    state: MeterState = {}
    raw = {"active_energy_import": 5_000_000, "active_energy_export": 10}
    ts = T0
    samples: list[list[EdgeSample]] = []
    for seconds, (kind, amount) in steps:
        ts += timedelta(seconds=seconds)
        if kind == "up":
            raw["active_energy_import"] += amount
            raw["active_energy_export"] += amount // 7
        elif kind == "reset":
            raw["active_energy_import"] = amount
        elif kind == "spike":
            raw["active_energy_import"] += amount
        failed = (Quality.BAD, "timeout") if kind == "bad" else (Quality.GOOD, None)
        values = (PointValue(POWER, None if kind == "bad" else 42.5, *failed),
                  PointValue(IMPORT, None if kind == "bad" else raw["active_energy_import"], *failed),
                  PointValue(EXPORT, raw["active_energy_export"]))
        out, state = tracker.track(Poll("m", ts, values), state)
        samples.append(out)
    messages, start, seq = [], 0, 7
    for size in [*cuts, len(samples)]:
        if start >= len(samples):
            break
        chunk = samples[start:start + max(1, size)]
        messages.append(encode_reading("m", seq, "edge-1", [s for poll in chunk for s in poll]))
        start += len(chunk)
        seq += 1
    return messages


def energy(payloads: Sequence[bytes], quantity: str) -> float:
    return sum(s.delta or 0.0 for p in payloads for s in decode(p).samples if s.quantity == quantity)


def pairwise_until_one(payloads: list[bytes]) -> bytes:
    """Merges of merges, as repeated compactions make them."""
    while len(payloads) > 1:
        payloads = [merge(payloads[i:i + 2]) if i + 1 < len(payloads) else payloads[i]
                    for i in range(0, len(payloads), 2)]
    return payloads[0]


MESSAGES = st.builds(polls_to_messages, st.lists(st.tuples(st.integers(1, 600), STEP), min_size=1, max_size=60),
                     st.lists(st.integers(1, 6), max_size=20))


@settings(max_examples=150, deadline=None)
@given(MESSAGES)
def test_the_energy_of_every_counter_is_kept_exactly(messages: list[bytes]) -> None:
    once, repeated = merge(messages), pairwise_until_one(messages)
    for quantity in COUNTERS:
        original = energy(messages, quantity)
        assert energy([once], quantity) == original, quantity
        assert energy([repeated], quantity) == original, f"{quantity}: merges of merges"


@settings(max_examples=150, deadline=None)
@given(MESSAGES)
def test_the_merged_message_says_what_the_readings_it_replaces_said(messages: list[bytes]) -> None:
    originals = [s for p in messages for s in decode(p).samples]
    merged = decode(merge(messages))
    assert (merged.meter, merged.seq, merged.agent) == ("m", 7, "edge-1"), "the first message's seq is kept"
    keys = [(s.quantity, s.ts) for s in merged.samples]
    assert len(keys) == len(set(keys)), "one sample per quantity and time: ingest's point key"
    assert set(keys) <= {(s.quantity, s.ts) for s in originals}, "no time that no reading had"
    for quantity in COUNTERS:
        before = [s for s in originals if s.quantity == quantity]
        after = [s for s in merged.samples if s.quantity == quantity]
        carrying = [s for s in before if s.delta is not None]
        kept_alone = [s for s in before if Flag.FIRST in s.flags or Flag.SPIKE in s.flags]
        assert all(s in after for s in kept_alone), "a baseline or a spike stays as it was"
        if carrying:
            assert len(after) <= 2 * len(kept_alone) + 1, "one sample per run between those"
            last = carrying[-1]
            assert (after[-1].ts, after[-1].value) == (last.ts, last.value)
            assert math.fsum(s.interval_s or 0 for s in after) == pytest.approx(
                math.fsum(s.interval_s or 0 for s in carrying), rel=1e-12)
            assert {f for s in carrying for f in s.flags} <= {f for s in after for f in s.flags}
            worst = max(carrying, key=lambda s: ["good", "uncertain", "bad"].index(s.quality)).quality
            assert worst in {s.quality for s in after}
        else:  # no energy to carry: the baseline, or (all failed) a few of the readings that say why
            assert after and all(s in before for s in after) and len(after) <= max(len(kept_alone), GAUGE_KEEP)
    power = [s for s in originals if s.quantity == "active_power"]
    thinned = [s for s in merged.samples if s.quantity == "active_power"]
    assert len(thinned) == min(len(power), GAUGE_KEEP)
    assert thinned[0] == power[0] and thinned[-1] == power[-1]


FLOATS = st.floats(-1e12, 1e12, allow_nan=False, allow_infinity=False)


@given(st.lists(st.tuples(FLOATS, st.floats(0, 1e6)), min_size=2, max_size=50))
def test_a_merged_delta_is_the_exactly_rounded_sum(deltas: list[tuple[float, float]]) -> None:
    samples = [EdgeSample(T0 + timedelta(seconds=i), "volume", float(i), "m**3", d, iv, flags=(Flag.RESET,))
               for i, (d, iv) in enumerate(deltas)]
    (merged,) = merge_samples(samples)
    assert merged.delta == math.fsum(d for d, _ in deltas)
    assert merged.interval_s == math.fsum(iv for _, iv in deltas)
    assert (merged.ts, merged.value, merged.flags) == (samples[-1].ts, samples[-1].value, (Flag.RESET,))


def test_a_unit_change_is_not_merged_across_and_other_meters_are_refused() -> None:
    kwh = [EdgeSample(T0 + timedelta(seconds=i), "e", 100.0 + i, "kWh", 1.0, 1.0) for i in range(3)]
    wh = [EdgeSample(T0 + timedelta(seconds=3 + i), "e", 1e5 + i, "Wh", 1000.0, 1.0) for i in range(2)]
    merged = merge_samples(kwh + wh)
    assert [(s.unit, s.delta, s.interval_s) for s in merged] == [("kWh", 3.0, 3.0), ("Wh", 2000.0, 2.0)]
    with pytest.raises(ValueError, match="different meters"):
        merge([encode_reading("a", 0, None, kwh), encode_reading("b", 0, None, wh)])
