"""Gap apportionment: worked cases (minute cuts, stamps, a gap across midnight, quarter hours above the bound)
and property tests: shares sum exactly to the amount in any order, are proportional to within one ulp of the
amount each, and the same input always gives the same shares."""

from __future__ import annotations

import itertools
import math
import random
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calc.apportion import MINUTE_US, QUARTER_US, apportion, cut, shares

T0 = int(datetime(2026, 3, 1, tzinfo=UTC).timestamp()) * 1_000_000


def test_cut_at_minute_boundaries() -> None:
    seg = cut(T0 + 30_000_000, T0 + 150_000_000)  # 00:00:30 to 00:02:30
    assert seg.end_us.tolist() == [T0 + MINUTE_US, T0 + 2 * MINUTE_US, T0 + 150_000_000]
    assert seg.length_s.tolist() == [30.0, 60.0, 30.0]
    assert seg.step_us == MINUTE_US


def test_cut_inside_one_minute_and_on_boundaries() -> None:
    assert cut(T0 + 1, T0 + 59_000_000).end_us.tolist() == [T0 + 59_000_000]
    # an end on a boundary is the last segment's end, not a cut; a start on a boundary is not a cut either
    seg = cut(T0, T0 + 2 * MINUTE_US)
    assert seg.end_us.tolist() == [T0 + MINUTE_US, T0 + 2 * MINUTE_US]
    assert cut(T0, T0).length_s.tolist() == [0.0]


def test_first_segment_of_one_microsecond_joins_the_next() -> None:
    seg = cut(T0 - 1, T0 + 90_000_000)
    assert seg.end_us.tolist() == [T0 + MINUTE_US, T0 + 90_000_000]
    assert seg.length_s[0] == pytest.approx(60.000001)


def test_above_the_bound_quarter_hours_then_multiples() -> None:
    day = 86_400_000_000
    seg = cut(T0 - day, T0, max_segments=1000)  # 1,440 minutes > 1,000: quarter hours
    assert seg.step_us == QUARTER_US and len(seg.end_us) == 96
    seg = cut(T0 - 30 * day, T0 + 1, max_segments=1000)  # 2,880 quarter hours > 1,000: 45 minutes
    assert seg.step_us == 3 * QUARTER_US and len(seg.end_us) <= 1000
    assert all(e % seg.step_us == 0 for e in seg.end_us[:-1].tolist())
    with pytest.raises(ValueError):
        cut(T0, T0 + 1, max_segments=0)


def test_gap_across_midnight_lands_in_each_day() -> None:
    end = T0 + 30 * MINUTE_US  # 00:30, after a 1 h gap from 23:30
    out = apportion(end, 3600.0, (60.0,))
    before = sum(s for s, t in zip(out.amounts[0].tolist(), out.stamp_us.tolist(), strict=True) if t < T0)
    assert before == 30.0 and math.fsum(out.amounts[0].tolist()) == 60.0
    assert out.stamp_us[29] == T0 - 1 and out.end_us[29] == T0  # the share ending at midnight is yesterday's
    assert out.stamp_us[-1] == end
    assert len(out.end_us) == 60 and out.length_s.sum() == 3600.0


def test_start_clamped_and_bad_interval() -> None:
    out = apportion(T0 + 120_000_000, 600.0, (10.0,), not_before_us=T0)
    assert out.length_s.tolist() == [60.0, 60.0] and out.amounts[0].tolist() == [5.0, 5.0]
    with pytest.raises(ValueError):
        apportion(T0, float("nan"), (1.0,))
    with pytest.raises(ValueError):
        apportion(T0, -1.0, (1.0,))


def test_shares_zero_negative_and_degenerate() -> None:
    w = np.asarray([1, 2, 3], dtype=np.int64)
    assert shares(0.0, w).tolist() == [0.0, 0.0, 0.0]
    assert shares(-6.0, w).tolist() == [-1.0, -2.0, -3.0]
    assert shares(6.0, np.zeros(3, dtype=np.int64)).tolist() == [0.0, 0.0, 6.0]
    assert shares(7.0, np.asarray([5], dtype=np.int64)).tolist() == [7.0]
    with pytest.raises(ValueError):
        shares(1.0, np.asarray([], dtype=np.int64))


amounts = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(amount=amounts, weights=st.lists(st.integers(min_value=0, max_value=10**13), min_size=1, max_size=300),
       seed=st.integers(0, 2**32))
def test_shares_sum_exactly_in_any_order(amount: float, weights: list[int], seed: int) -> None:
    w = np.asarray(weights, dtype=np.int64)
    out = shares(amount, w).tolist()
    assert sum(out) == amount
    shuffled = out[:]
    random.Random(seed).shuffle(shuffled)
    assert sum(shuffled) == amount and float(np.sum(np.asarray(shuffled))) == amount
    total = sum(weights)
    if total and amount:
        ulp = math.ulp(amount)
        for share, weight in zip(out[:-1], weights[:-1], strict=True):
            assert abs(share - amount * weight / total) <= 2 * ulp + abs(amount) * 1e-15
        assert all(math.copysign(1.0, s) == math.copysign(1.0, amount) or s == 0 for s in out)


@settings(max_examples=200, deadline=None)
@given(end_s=st.integers(min_value=0, max_value=4_000_000_000), end_frac=st.integers(0, 999_999),
       interval_s=st.floats(min_value=0, max_value=40 * 86_400, allow_nan=False),
       delta=amounts, scale=st.sampled_from([1.0, 0.001, 10.55, 1 / 3]),
       max_segments=st.sampled_from([10, 1000, 10_080]))
def test_apportion_properties(end_s: int, end_frac: int, interval_s: float, delta: float, scale: float,
                              max_segments: int) -> None:
    end = end_s * 1_000_000 + end_frac
    out = apportion(end, interval_s, (delta, delta * scale), max_segments=max_segments)
    again = apportion(end, interval_s, (delta, delta * scale), max_segments=max_segments)
    assert [a.tolist() for a in out.amounts] == [a.tolist() for a in again.amounts]  # deterministic
    assert out.stamp_us.tolist() == again.stamp_us.tolist()
    assert sum(out.amounts[0].tolist()) == delta and sum(out.amounts[1].tolist()) == delta * scale
    n = len(out.end_us)
    assert n <= max_segments and out.end_us[-1] == end and out.stamp_us[-1] == end
    start = end - round(interval_s * 1_000_000)
    stamps = out.stamp_us.tolist()
    assert all(a < b for a, b in itertools.pairwise(stamps))  # distinct keys, in time order
    if n > 1:
        assert stamps[0] > start  # never on the previous sample's time
        inner = out.end_us[:-1].tolist()
        assert all(e % MINUTE_US == 0 for e in inner)  # minutes, quarter hours, or multiples of them
        # each share but the last is stamped in the minute (or step) its segment ends in
        assert all((e - 1) // 60_000_000 == (s // 60_000_000) for e, s in zip(inner, stamps, strict=False))
    assert out.length_s.sum() == pytest.approx((end - start) / 1e6, abs=1e-6 * n)
