"""calc.targets: a trajectory, a year's progress and the milestone check against hand-computed figures; verified
savings of a worked case; targets that cannot be drawn are refused."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from calc.targets import (
    Milestone,
    TargetError,
    TargetKind,
    TargetSpec,
    allowed_in,
    progress,
    trajectory,
    verified_savings,
)

REDUCTION = TargetSpec(kind=TargetKind.REDUCTION_PCT, base_year=2020, base_value=1_000_000.0,
                       milestones=(Milestone(year=2025, value=20.0), Milestone(year=2030, value=50.0)))


def test_trajectory_is_linear_between_milestones() -> None:
    path = dict(trajectory(REDUCTION))
    # 2020 → 2025: 1 000 000 → 800 000 kg (−40 000 a year); 2025 → 2030: 800 000 → 500 000 (−60 000 a year)
    assert list(path) == list(range(2020, 2031))
    assert path[2020] == 1_000_000.0
    assert path[2021] == pytest.approx(960_000.0)
    assert path[2025] == pytest.approx(800_000.0)
    assert path[2026] == pytest.approx(740_000.0)
    assert path[2030] == pytest.approx(500_000.0)
    assert allowed_in(REDUCTION, 2019) == 1_000_000.0
    assert allowed_in(REDUCTION, 2035) == pytest.approx(500_000.0)


def test_progress_and_a_missed_milestone() -> None:
    p = progress(REDUCTION, 2026, actual_to_date=390_000.0, projected=780_000.0)
    assert p.allowed == pytest.approx(740_000.0)
    assert p.reduction_pct == pytest.approx(22.0)
    assert p.required_pct == pytest.approx(26.0)
    assert not p.on_track
    assert p.gap == pytest.approx(40_000.0)
    assert p.next_milestone == Milestone(year=2030, value=50.0)
    assert p.next_allowed == pytest.approx(500_000.0)
    # the line 2020 (1 000 000) → 2026 (780 000) falls 36 666.67 a year: 633 333.33 in 2030, above 500 000
    assert p.projected_at_next == pytest.approx(780_000.0 - 4 * 220_000.0 / 6)
    assert p.misses_next


def test_progress_on_the_line_does_not_miss() -> None:
    p = progress(REDUCTION, 2026, actual_to_date=350_000.0, projected=700_000.0)
    assert p.on_track
    assert p.projected_at_next == pytest.approx(500_000.0)   # −50 000 a year reaches exactly the milestone
    assert not p.misses_next


def test_milestone_of_this_year_uses_the_projection_itself() -> None:
    p = progress(REDUCTION, 2025, actual_to_date=100.0, projected=810_000.0)
    assert p.next_milestone is not None and p.next_milestone.year == 2025
    assert p.projected_at_next == 810_000.0
    assert p.misses_next
    after = progress(REDUCTION, 2031, actual_to_date=1.0, projected=1.0)
    assert after.next_milestone is None and not after.misses_next


def test_absolute_and_intensity_milestones_are_figures() -> None:
    absolute = TargetSpec(kind=TargetKind.ABSOLUTE, base_year=2022, base_value=500.0,
                          milestones=(Milestone(year=2024, value=400.0),))
    assert trajectory(absolute) == [(2022, 500.0), (2023, 450.0), (2024, 400.0)]
    intensity = TargetSpec(kind=TargetKind.INTENSITY, base_year=2022, base_value=2.0,
                           milestones=(Milestone(year=2026, value=1.6),))
    assert allowed_in(intensity, 2024) == pytest.approx(1.8)


@pytest.mark.parametrize("milestones", [
    [{"year": 2020, "value": 10}],                                   # not after the base year
    [{"year": 2025, "value": 10}, {"year": 2024, "value": 20}],      # out of order
    [{"year": 2025, "value": 120}],                                  # above 100 %
])
def test_bad_targets_are_refused(milestones: list[dict[str, float]]) -> None:
    with pytest.raises(ValidationError):
        TargetSpec.model_validate({"kind": "reduction_pct", "base_year": 2020, "base_value": 1.0,
                                   "milestones": milestones})
    with pytest.raises(TargetError):
        progress(REDUCTION, 2026, actual_to_date=-1.0, projected=1.0)


def test_verified_savings_worked_case() -> None:
    s = verified_savings([10.0, 12.0], [8.0, 13.0], [0.5, 0.6])
    assert (s.periods, s.expected_energy, s.actual_energy, s.savings_energy) == (2, 22.0, 21.0, 1.0)
    assert s.savings_co2e_kg == pytest.approx(2.0 * 0.5 - 1.0 * 0.6)
    assert s.savings_pct == pytest.approx(100.0 / 22.0)
    assert verified_savings([], [], 0.5).savings_pct is None
    with pytest.raises(TargetError):
        verified_savings([1.0], [1.0, 2.0], 0.5)

