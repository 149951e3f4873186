"""Actual vs expected (calc.performance): deviation, EnPI and CUSUM equal hand computations; intensity per period
refuses zero production with its reason; the allowance projection follows a weekday/weekend profile."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from calc.balance import TimeRange
from calc.performance import (
    ExpectedSeries,
    HourOfWeekProfile,
    PerformanceError,
    actual_vs_expected,
    allowance_check_expected,
    expected_kg,
    hour_of_week_profile,
    implied_factor,
    intensity_series,
    project_expected,
)
from calc.rules import project


def test_deviation_enpi_and_cusum_by_hand() -> None:
    actual, expected = [110.0, 90.0, 130.0, 100.0], [100.0, 100.0, 100.0, 0.0]
    perf = actual_vs_expected(actual, expected, 0.5)
    assert perf.deviation.tolist() == [10.0, -10.0, 30.0, 100.0]
    assert perf.cusum.tolist() == [10.0, 0.0, 30.0, 130.0]
    assert perf.deviation_pct[:3].tolist() == [10.0, -10.0, 30.0] and math.isnan(perf.deviation_pct[3])
    assert perf.enpi[:3].tolist() == [1.1, 0.9, 1.3] and math.isnan(perf.enpi[3])
    assert perf.expected_co2e_kg.tolist() == [50.0, 50.0, 50.0, 0.0]
    assert perf.deviation_co2e_kg.tolist() == [5.0, -5.0, 15.0, 50.0]
    assert (perf.actual_total, perf.expected_total, perf.deviation_total) == (430.0, 300.0, 130.0)
    assert perf.enpi_total == pytest.approx(430 / 300) and perf.deviation_pct_total == pytest.approx(130 / 3)


def test_expected_co2e_uses_the_factor_of_each_period() -> None:
    energy, co2e = np.array([100.0, 0.0, 300.0]), np.array([50.0, 0.0, 120.0])
    factor = implied_factor(energy, co2e)
    assert factor.tolist() == [0.5, 170 / 400, 0.4]
    perf = actual_vs_expected(energy, [90.0, 10.0, 310.0], factor)
    assert perf.actual_co2e_kg.tolist() == pytest.approx(co2e.tolist())
    assert perf.expected_co2e_kg.tolist() == pytest.approx([45.0, 10 * 170 / 400, 124.0])


def test_refusals() -> None:
    with pytest.raises(PerformanceError, match="differ in length"):
        actual_vs_expected([1.0, 2.0], [1.0], 0.5)
    with pytest.raises(PerformanceError, match="NaN"):
        actual_vs_expected([math.nan], [1.0], 0.5)
    with pytest.raises(PerformanceError, match="negative"):
        actual_vs_expected([1.0], [1.0], -0.5)


@given(st.lists(st.tuples(st.floats(0, 1e6), st.floats(0, 1e6)), min_size=1, max_size=60))
def test_cusum_ends_at_the_total_deviation(pairs: list[tuple[float, float]]) -> None:
    perf = actual_vs_expected([a for a, _ in pairs], [e for _, e in pairs], 1.0)
    assert perf.cusum[-1] == pytest.approx(perf.deviation_total, rel=1e-9, abs=1e-6)
    assert np.all(np.diff(perf.cusum, prepend=0.0) == pytest.approx(perf.deviation, abs=1e-6))


def test_intensity_per_period_refuses_zero_production_with_its_reason() -> None:
    series = intensity_series([100.0, 50.0, 30.0], [40.0, 20.0, 10.0], [10.0, 0.0, 5.0], "t")
    assert series.co2e_per_unit[0] == 10.0 and series.co2e_per_unit[2] == 6.0 and math.isnan(series.co2e_per_unit[1])
    assert series.kgce_per_unit[0] == 4.0 and series.kgce_per_unit[2] == 2.0
    assert series.refused[0] is None and series.refused[2] is None
    assert series.refused[1] == "period 1: production must be positive to compute an intensity, got 0.0 t"
    assert series.total_co2e is not None and series.total_co2e.value == pytest.approx(180 / 15)
    assert series.total_kgce is not None and series.total_kgce.value == pytest.approx(70 / 15)
    assert series.unit == "kg / t"
    none = intensity_series([1.0], [1.0], [0.0], "count")
    assert none.total_co2e is None and none.refused[0] is not None
    with pytest.raises(ValueError, match="furlongs_per_fortnight"):
        intensity_series([1.0], [1.0], [1.0], "furlongs_per_fortnight")


MONDAY = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday; the site runs in UTC to keep the hand sums plain


def weekday_weekend_history(weeks: int = 3) -> list[tuple[datetime, float]]:
    """Hourly sums (interval end, kg): 100 kg/h on weekdays 06:00-22:00, 20 kg/h otherwise."""
    out = []
    for h in range(weeks * 168):
        start = MONDAY - timedelta(weeks=weeks) + timedelta(hours=h)
        busy = start.weekday() < 5 and 6 <= start.hour < 22
        out.append((start + timedelta(hours=1), 100.0 if busy else 20.0))
    return out


def test_projection_follows_the_weekday_weekend_profile() -> None:
    profile = hour_of_week_profile(weekday_weekend_history(), "UTC")
    assert profile.kg_per_h[0] == 20.0 and profile.kg_per_h[10] == 100.0 and profile.kg_per_h[5 * 24 + 10] == 20.0
    assert min(profile.hours_seen) == 3
    now = MONDAY + timedelta(days=4, hours=12)          # Friday 12:00
    end = MONDAY + timedelta(days=7)                    # next Monday 00:00
    # by hand: Friday 12-22 = 10 h × 100, Friday 22-24 = 2 h × 20, Sat + Sun = 48 h × 20
    expected = 10 * 100 + 2 * 20 + 48 * 20
    p = project_expected(5000.0, 8000.0, now, end, profile)
    assert p.projected_kg == pytest.approx(5000 + expected)
    assert p.rate_kg_per_h == pytest.approx(expected / 60)
    assert p.runs_out_at is None and not p.exceeded
    # a flat burn rate from Friday's busy hour would say it runs out: the profile says it does not
    flat = project(5000.0, 8000.0, 100.0, now, end)
    assert flat.projected_kg == pytest.approx(5000 + 6000) and flat.runs_out_at is not None
    # with 1 500 kg left: 1 000 kg by 22:00, 40 by 24:00, the remaining 460 kg at 20 kg/h = 23 h into Saturday
    tight = project_expected(6500.0, 8000.0, now, end, profile)
    assert tight.runs_out_at == MONDAY + timedelta(days=5, hours=23)


def test_projection_in_a_site_time_zone_and_partial_hours() -> None:
    rates = tuple(100.0 if (h // 24) < 5 and 8 <= h % 24 < 17 else 0.0 for h in range(168))
    profile = HourOfWeekProfile(timezone="Asia/Shanghai", kg_per_h=rates, hours_seen=(1,) * 168)
    # Monday 08:30 Shanghai = Monday 00:30 UTC; to 17:00 Shanghai: 8.5 h × 100
    start = datetime(2026, 3, 2, 0, 30, tzinfo=UTC)
    assert expected_kg(profile, start, datetime(2026, 3, 2, 12, tzinfo=UTC)) == pytest.approx(850.0)


def test_projection_from_a_baseline_series_and_the_allowance_check() -> None:
    ends = tuple(MONDAY + timedelta(hours=h + 1) for h in range(4))
    series = ExpectedSeries(start=MONDAY, ends=ends, kg=(10.0, 20.0, 30.0, 40.0))
    now = MONDAY + timedelta(minutes=30)
    assert expected_kg(series, now, ends[-1]) == pytest.approx(5 + 20 + 30 + 40)
    assert expected_kg(series, MONDAY - timedelta(hours=1), MONDAY + timedelta(hours=1)) == pytest.approx(10.0)
    check = allowance_check_expected(0.0, 50.0, series, now, TimeRange(start=MONDAY, end=ends[-1]), ccer_kg=10.0)
    assert check.projection.projected_kg == pytest.approx(95.0)
    # 5 + 20 = 25 by 02:00, 25 more of the 30 in the third hour: 02:50
    assert check.projection.runs_out_at == MONDAY + timedelta(hours=2, minutes=50)
    assert check.ccer_usable_kg == pytest.approx(2.5) and check.projected_over_kg == pytest.approx(42.5)


def test_profile_needs_history_and_hourly_sums() -> None:
    with pytest.raises(PerformanceError, match="no history"):
        hour_of_week_profile([], "UTC")
    with pytest.raises(PerformanceError, match="hourly"):
        hour_of_week_profile([(MONDAY, 1.0)], "UTC", interval=timedelta(minutes=15))
    one = hour_of_week_profile([(MONDAY + timedelta(hours=1), 42.0)], "UTC")
    assert set(one.kg_per_h) == {42.0}     # unseen hours take the mean of the seen ones


# rates from 1e-3: calc.rules.project overflows on subnormal rates (timedelta of an infinite number of hours)
@given(st.floats(0, 1e4), st.floats(0, 1e4), st.just(0.0) | st.floats(1e-3, 500))
def test_a_flat_profile_projects_like_the_flat_burn_rate(used: float, allowance: float, rate: float) -> None:
    profile = HourOfWeekProfile(timezone="UTC", kg_per_h=(rate,) * 168, hours_seen=(1,) * 168)
    now, end = MONDAY + timedelta(minutes=17), MONDAY + timedelta(days=3)
    ours, flat = project_expected(used, allowance, now, end, profile), project(used, allowance, rate, now, end)
    assert ours.projected_kg == pytest.approx(flat.projected_kg, rel=1e-9, abs=1e-6)
    assert (ours.runs_out_at is None) == (flat.runs_out_at is None)
    if ours.runs_out_at is not None and flat.runs_out_at is not None:
        assert abs((ours.runs_out_at - flat.runs_out_at).total_seconds()) < 1e-3


def per_hour_by_hand(profile: HourOfWeekProfile, start: datetime, end: datetime) -> float:
    """The plain loop the vectorised profile must equal: each UTC hour piece at its local hour of the week."""
    zone, total, t = ZoneInfo(profile.timezone), 0.0, start
    while t < end:
        nxt = min(t.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1), end)
        local = t.astimezone(zone)
        total += profile.kg_per_h[local.weekday() * 24 + local.hour] * (nxt - t).total_seconds() / 3600
        t = nxt
    return total


@given(st.integers(0, 400 * 24 * 60), st.integers(0, 40 * 24 * 60),
       st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Asia/Shanghai", "Asia/Kolkata"]))
def test_vectorised_profile_equals_the_plain_loop_across_dst(start_min: int, length_min: int, tz: str) -> None:
    profile = HourOfWeekProfile(timezone=tz, kg_per_h=tuple(float(h * 7 % 23 + 1) for h in range(168)),
                                hours_seen=(1,) * 168)
    start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=start_min)
    end = start + timedelta(minutes=length_min)
    assert expected_kg(profile, start, end) == pytest.approx(per_hour_by_hand(profile, start, end), rel=1e-9)


def test_a_dst_day_has_23_local_hours() -> None:
    rates = tuple(1.0 for _ in range(168))
    profile = HourOfWeekProfile(timezone="Europe/Berlin", kg_per_h=rates, hours_seen=(1,) * 168)
    berlin = ZoneInfo("Europe/Berlin")
    day = datetime(2026, 3, 29, tzinfo=berlin)        # clocks go forward at 02:00
    assert expected_kg(profile, day, day + timedelta(days=1)) == pytest.approx(23.0)
