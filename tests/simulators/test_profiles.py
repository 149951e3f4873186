"""Load profiles and counter integration: reproducible for a seed, shaped like a plant, nothing lost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from simulators.meter import MeterSim
from simulators.plant import SimulatedPlant
from tests.simulators.conftest import plant_config, pm5000_meter

DAY_S = 86_400


def simulate(seed: int, profile: str = "shift", days: float = 2.0, step_s: int = 10) -> MeterSim:
    config = plant_config([pm5000_meter("m1", 1, profile=profile, base_kw=50.0, peak_kw=400.0)],
                          seed=seed, step_s=step_s)
    plant = SimulatedPlant(config, serve_control=False, monotonic=lambda: 0.0)
    meter = plant.meters["m1"]
    meter.advance(days * DAY_S)
    return meter


def test_same_seed_same_counter_other_seed_other_counter() -> None:
    a, b, c = simulate(7), simulate(7), simulate(8)
    assert a.produced == b.produced and a.rate == b.rate
    assert [r.produced_counts for r in a.intervals] == [r.produced_counts for r in b.intervals]
    assert a.produced != c.produced


def test_integration_is_independent_of_how_often_it_is_read() -> None:
    once = simulate(3, days=1.0)
    config = plant_config([pm5000_meter("m1", 1, profile="shift", base_kw=50.0, peak_kw=400.0)], seed=3,
                          step_s=10)
    meter = SimulatedPlant(config, serve_control=False).meters["m1"]
    for elapsed in range(0, DAY_S + 1, 997):  # reads at odd moments
        meter.advance(elapsed)
    meter.advance(DAY_S)
    assert meter.produced == once.produced


def test_counter_equals_integral_of_the_quantised_power() -> None:
    meter = simulate(5, profile="continuous", days=0.5, step_s=60)
    # recompute independently: energy in W·s of every step, whole Wh counted, remainder carried
    total_mws = 0
    for k in range(meter.steps):
        t = meter.start + timedelta(seconds=60 * k)
        total_mws += round(meter.profile.rate(t, k) * 1000.0 * 1000.0) * 60
    assert meter.produced == total_mws // 3_600_000
    # ground-truth intervals add up to what the counter advanced, up to the open interval
    closed = sum(r.produced_counts for r in meter.intervals)
    assert 0 <= meter.produced - closed < 400 * 1000 / 4 + 1  # the open interval is < 15 min at peak


def test_shift_profile_has_nights_weekends_and_startup_peaks() -> None:
    meter = simulate(1, days=0.0)
    profile = meter.profile
    tz_offset = timedelta(hours=8)  # Asia/Shanghai

    def at(day: int, hour: float) -> float:  # 2026-03-02 is a Monday
        local = datetime(2026, 3, 2, tzinfo=UTC) + timedelta(days=day, hours=hour) - tz_offset
        return profile.shape(local)

    night, startup, running = at(0, 3.0), at(0, 6.05), at(0, 10.0)
    saturday = at(5, 10.0)
    assert night == profile.base == 50.0
    assert startup == profile.peak == 400.0
    assert night < running < startup
    assert saturday < running
    assert at(0, 14.1) == profile.peak  # the second shift starts with a peak too


def test_noise_is_bounded_and_deterministic() -> None:
    meter = simulate(9, profile="continuous", days=0.0)
    t = datetime(2026, 3, 2, 6, tzinfo=UTC)
    rates = [meter.profile.rate(t, k) for k in range(2000)]
    assert rates == [meter.profile.rate(t, k) for k in range(2000)]
    shape = meter.profile.shape(t)
    mean = sum(rates) / len(rates)
    assert abs(mean - shape) < 0.01 * shape
    assert min(rates) >= 0 and max(rates) > shape  # noise goes both ways
