"""Rule evaluation: for-duration, hysteresis and schedules on hand-built sample sequences; allowance arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from calc.rules import (
    Comparison,
    Metric,
    Phase,
    RuleSpec,
    RuleState,
    ScopeKind,
    Transition,
    Window,
    burn_rate_kg_per_h,
    evaluate,
    project,
)

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # a Monday


def run(rule: RuleSpec, values: list[float], step_s: float = 10.0, tz: str = "UTC",
        t0: datetime = T0) -> list[tuple[int, Transition]]:
    """Feed values at t0, t0+step, ...; return (index, transition) for each transition."""
    state = RuleState()
    out = []
    for i, v in enumerate(values):
        result = evaluate(rule, state, v, t0 + timedelta(seconds=i * step_s), tz)
        state = result.state
        if result.transition is not None:
            out.append((i, result.transition))
    return out


def power_rule(**kw: object) -> RuleSpec:
    base: dict[str, object] = {"name": "press peak", "metric": Metric.POWER, "comparison": Comparison.GT,
                               "threshold": 400.0}
    return RuleSpec.model_validate({**base, **kw})


def test_fires_after_the_duration_and_clears_below_the_clear_threshold() -> None:
    rule = power_rule(for_s=30.0, clear_threshold=350.0)
    #         0    1    2    3    4    5    6    7    8    9    10
    values = [100, 410, 420, 430, 440, 390, 360, 349, 500, 500, 500]
    # breach starts at index 1 (t=10 s); 30 s later is index 4 (t=40 s): fires there, not at 3 (t=30, 20 s in).
    # 390 and 360 are below the threshold but above the clear threshold: still firing. 349 clears (index 7).
    # a new breach from index 8 (t=80 s) needs until t=110 s: index 11, beyond the data: no second fire.
    assert run(rule, values) == [(4, Transition.FIRE), (7, Transition.CLEAR)]


def test_a_dip_restarts_the_duration() -> None:
    rule = power_rule(for_s=20.0)
    values = [410, 420, 399, 410, 420, 430]   # dip at index 2 resets; new breach at 3 (t=30) fires at 5 (t=50)
    assert run(rule, values) == [(5, Transition.FIRE)]


def test_zero_duration_fires_on_the_first_breaching_sample_and_equality_is_not_a_breach() -> None:
    assert run(power_rule(), [400, 400.001, 400]) == [(1, Transition.FIRE), (2, Transition.CLEAR)]
    assert run(power_rule(comparison=Comparison.GE), [399.9, 400]) == [(1, Transition.FIRE)]


def test_lower_bound_rules_use_the_clear_threshold_above() -> None:
    rule = power_rule(comparison=Comparison.LT, threshold=10.0, clear_threshold=20.0)  # e.g. a compressor stalls
    assert run(rule, [15, 9, 15, 19.9, 20.0, 21]) == [(1, Transition.FIRE), (4, Transition.CLEAR)]


def test_late_observations_are_ignored() -> None:
    rule = power_rule()
    state = evaluate(rule, RuleState(), 500, T0).state
    assert state.phase is Phase.FIRING
    late = evaluate(rule, state, 0, T0 - timedelta(seconds=1))
    assert late.transition is None and late.state == state


def test_schedule_only_fires_inside_the_shift_in_site_time() -> None:
    # Shanghai is UTC+8: T0 (08:00 UTC Monday) is 16:00 local. Day shift 06:00-14:00, evening 14:00-22:00.
    day = power_rule(schedule=[Window(start=time(6), end=time(14))])
    evening = power_rule(schedule=[Window(start=time(14), end=time(22))])
    assert run(day, [500], tz="Asia/Shanghai") == []
    assert run(evening, [500], tz="Asia/Shanghai") == [(0, Transition.FIRE)]


def test_a_pending_breach_is_forgotten_when_the_shift_ends() -> None:
    start = datetime(2026, 3, 2, 13, 59, 40, tzinfo=UTC)
    rule = power_rule(for_s=30.0, schedule=[Window(start=time(6), end=time(14))])
    # 13:59:40, 13:59:50 pending; 14:00:00 outside: reset; never fires
    assert run(rule, [500, 500, 500, 500], t0=start) == []


def test_night_shift_crosses_midnight() -> None:
    night = Window(days=(4,), start=time(22), end=time(6))  # Friday 22:00 to Saturday 06:00
    assert night.contains(datetime(2026, 3, 6, 23, 0))   # Friday 23:00
    assert night.contains(datetime(2026, 3, 7, 5, 59))   # Saturday 05:59
    assert not night.contains(datetime(2026, 3, 7, 6, 0))
    assert not night.contains(datetime(2026, 3, 5, 23, 0))  # Thursday


@pytest.mark.parametrize(("kw", "message"), [
    ({"scope": ScopeKind.AREA}, "target"),
    ({"target": "m1"}, "target"),
    ({"clear_threshold": 450.0}, "clear_threshold"),
    ({"metric": Metric.INTENSITY}, "product_quantity"),
    ({"for_s": -1}, "for_s"),
])
def test_bad_rules_say_what_is_wrong(kw: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        power_rule(**kw)


@given(st.lists(st.floats(min_value=0, max_value=1000, allow_nan=False), max_size=60),
       st.floats(min_value=0, max_value=100))
def test_transitions_alternate_fire_then_clear(values: list[float], for_s: float) -> None:
    transitions = [t for _, t in run(power_rule(for_s=for_s, clear_threshold=300.0), values)]
    assert transitions == [Transition.FIRE, Transition.CLEAR] * (len(transitions) // 2) + \
        [Transition.FIRE] * (len(transitions) % 2)


# ---- allowance ------------------------------------------------------------------------------------------

def test_projection_of_a_constructed_series() -> None:
    # A 30-day month, allowance 10 t. 10 days in: 3,000 kg used; the last 24 h burned 12.5 kg/h each hour.
    month_start = datetime(2026, 4, 1, tzinfo=UTC)
    month_end = datetime(2026, 5, 1, tzinfo=UTC)
    now = month_start + timedelta(days=10)
    series = [(now - timedelta(hours=h), 12.5) for h in range(48)]  # hourly kg, ending at `now`
    rate = burn_rate_kg_per_h(series, now, timedelta(hours=24))
    assert rate == pytest.approx(12.5)   # 24 intervals in (now-24h, now] × 12.5 kg / 24 h
    p = project(3000.0, 10_000.0, rate, now, month_end)
    # by hand: 20 days left = 480 h; 3000 + 480 × 12.5 = 9000 kg; remaining 7000 kg / 12.5 = 560 h > 480: no run-out
    assert p.projected_kg == pytest.approx(9000.0)
    assert p.remaining_kg == pytest.approx(7000.0)
    assert p.runs_out_at is None
    assert p.projected_ratio == pytest.approx(0.9)
    # at 20 kg/h: 3000 + 480 × 20 = 12,600 kg; 7000 / 20 = 350 h after now = 14 days 14 h
    p2 = project(3000.0, 10_000.0, 20.0, now, month_end)
    assert p2.projected_kg == pytest.approx(12_600.0)
    assert p2.runs_out_at == now + timedelta(days=14, hours=14)


def test_burn_rate_window_is_cut_at_the_period_start() -> None:
    start = datetime(2026, 4, 1, tzinfo=UTC)
    now = start + timedelta(hours=2)
    series = [(start + timedelta(hours=1), 30.0), (start + timedelta(hours=2), 50.0)]
    assert burn_rate_kg_per_h(series, now, timedelta(hours=24), since=start) == pytest.approx(40.0)
    assert burn_rate_kg_per_h(series, now, timedelta(hours=1)) == pytest.approx(50.0)


@given(st.floats(min_value=0.0, max_value=1e-3, allow_subnormal=True, exclude_min=True))
def test_a_vanishing_rate_never_runs_out_within_the_period(rate_kg_per_h: float) -> None:
    # 7,000 kg left at under a gram an hour is millennia away: no run-out, and no OverflowError on the way
    now = datetime(2026, 4, 10, tzinfo=UTC)
    p = project(3000.0, 10_000.0, rate_kg_per_h, now, datetime(2026, 5, 1, tzinfo=UTC))
    assert p.runs_out_at is None and not p.exceeded


def test_an_exceeded_allowance_ran_out_now() -> None:
    now = datetime(2026, 4, 20, tzinfo=UTC)
    p = project(11_000.0, 10_000.0, 5.0, now, datetime(2026, 5, 1, tzinfo=UTC))
    assert p.exceeded and p.remaining_kg == pytest.approx(-1000.0) and p.runs_out_at == now


def test_an_intensity_rule_names_its_product_by_quantity_or_by_variable() -> None:
    by_variable = power_rule(metric=Metric.INTENSITY, product_variable="press-1-output", scope=ScopeKind.LINE,
                             target="press-1")
    assert by_variable.product_quantity is None and by_variable.unit == "kg/unit"
    assert power_rule(metric=Metric.INTENSITY, product_quantity="production").product_variable is None
