"""Pure tests of the counter tracker: first reading, deltas, rollover, reset, stuck, bad values, clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from calc.schema import Flag, Quality
from edge.drivers import PointValue
from edge.maps import ADAM6051_COUNTER, SCHNEIDER_PM5000, SDM630
from edge.points import Point
from edge.readings import MeterState, MeterTracker, Poll
from edge.wire import EdgeSample

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
POWER, ENERGY = SCHNEIDER_PM5000[3], SCHNEIDER_PM5000[4]
assert (POWER.quantity, ENERGY.quantity) == ("active_power", "active_energy_import")


class Feed:
    """Feeds polls to a tracker, adopting each new state as the agent does."""

    def __init__(self, tracker: MeterTracker) -> None:
        self.tracker = tracker
        self.state: MeterState = {}
        self.t = T0

    def poll(self, energy: int | None, power_kw: float = 100.0, step_s: float = 10.0,
             reason: str | None = None) -> dict[str, EdgeSample]:
        self.t += timedelta(seconds=step_s)
        values = (PointValue(POWER, power_kw),
                  PointValue(ENERGY, energy, Quality.GOOD if energy is not None else Quality.BAD, reason))
        samples, self.state = self.tracker.track(Poll("m", self.t, values), self.state)
        return {s.quantity: s for s in samples}


def test_first_reading_is_a_baseline_then_deltas_follow() -> None:
    feed = Feed(MeterTracker("m"))
    first = feed.poll(1_000_000)["active_energy_import"]
    assert (first.delta, first.flags, first.value) == (None, (Flag.FIRST,), 1_000_000)
    second = feed.poll(1_000_250, step_s=9.0)["active_energy_import"]
    assert (second.delta, second.interval_s, second.flags) == (250, 9.0, ())
    assert second.quality == Quality.GOOD


def test_rollover_of_a_63_bit_counter_counts_the_wrapped_energy() -> None:
    feed = Feed(MeterTracker("m"))
    top = 2**63
    feed.poll(top - 40)
    wrapped = feed.poll(60)["active_energy_import"]
    assert wrapped.delta == 100
    assert wrapped.flags == (Flag.ROLLOVER,)


def test_reset_counts_the_new_reading_and_is_uncertain() -> None:
    feed = Feed(MeterTracker("m"))
    feed.poll(5_000_000)
    reset = feed.poll(300)["active_energy_import"]
    assert (reset.delta, reset.flags, reset.quality) == (300, (Flag.RESET,), Quality.UNCERTAIN)
    assert "reset" in (reset.reason or "")


def test_bad_reading_keeps_the_baseline_so_no_energy_is_lost() -> None:
    feed = Feed(MeterTracker("m"))
    feed.poll(1_000)
    bad = feed.poll(None, reason="timeout: no response")["active_energy_import"]
    assert (bad.quality, bad.reason, bad.delta) == (Quality.BAD, "timeout: no response", None)
    back = feed.poll(1_500)["active_energy_import"]
    assert (back.delta, back.interval_s) == (500, 20.0)


def test_not_available_pattern_is_bad_not_a_reset() -> None:
    feed = Feed(MeterTracker("m"))
    feed.poll(1_000)
    na = feed.poll(-(2**63))["active_energy_import"]
    assert na.quality == Quality.BAD and "not available" in (na.reason or "")
    assert Flag.RESET not in na.flags
    assert feed.poll(1_100)["active_energy_import"].delta == 100


def test_a_gauges_not_available_pattern_and_range_are_told_apart() -> None:
    power = Point(quantity="active_power", unit="kW", address=0, type="i16", not_available=-32768, max=500.0)
    tracker = MeterTracker("m")
    [na], _ = tracker.track(Poll("m", T0, (PointValue(power, -32768),)), {})
    assert (na.quality, na.value) == (Quality.BAD, -32768.0)
    assert na.reason == "active_power: not available (device sent -32768)"
    [high], _ = tracker.track(Poll("m", T0, (PointValue(power, 600),)), {})
    assert (high.quality, high.value) == (Quality.BAD, 600.0)
    assert high.reason == "out of range: active_power: 600.0 kW above max 500.0"


def test_stuck_counter_with_power_is_flagged_after_n_polls() -> None:
    feed = Feed(MeterTracker("m", stuck_after=3))
    feed.poll(10_000)
    flags = [feed.poll(10_000, power_kw=100.0)["active_energy_import"].flags for _ in range(4)]
    assert [Flag.STUCK in f for f in flags] == [False, False, True, True]
    moving = feed.poll(10_500)["active_energy_import"]
    assert Flag.STUCK not in moving.flags and moving.delta == 500


def test_still_counter_without_power_is_not_stuck() -> None:
    feed = Feed(MeterTracker("m", stuck_after=2))
    feed.poll(10_000, power_kw=0.0)
    assert all(Flag.STUCK not in feed.poll(10_000, power_kw=0.0)["active_energy_import"].flags
               for _ in range(5))


def test_still_counter_at_low_power_within_resolution_is_not_stuck() -> None:
    # 0.1 kW for 1 s is 0.03 Wh: a 1 Wh counter legitimately stands still for many polls
    feed = Feed(MeterTracker("m", stuck_after=2))
    feed.poll(10_000, power_kw=0.1, step_s=1.0)
    assert all(Flag.STUCK not in feed.poll(10_000, power_kw=0.1, step_s=1.0)["active_energy_import"].flags
               for _ in range(5))


def test_spike_beyond_max_power_is_flagged() -> None:
    feed = Feed(MeterTracker("m", max_power_kw=500.0))
    feed.poll(0)
    # 10 kWh in 10 s is 3600 kW
    spike = feed.poll(10_000)["active_energy_import"]
    assert Flag.SPIKE in spike.flags and spike.quality == Quality.UNCERTAIN


def test_clock_going_back_keeps_baseline_and_flags() -> None:
    feed = Feed(MeterTracker("m"))
    feed.poll(1_000)
    back = feed.poll(1_200, step_s=-5.0)["active_energy_import"]
    assert back.flags == (Flag.CLOCK,) and back.delta is None
    assert feed.poll(1_300, step_s=20.0)["active_energy_import"].delta == 300


def test_float_counter_and_scaled_pulse_counter() -> None:
    imp = next(p for p in SDM630 if p.quantity == "active_energy_import")
    tracker = MeterTracker("sdm")
    _, state = tracker.track(Poll("sdm", T0, (PointValue(imp, 100.5),)), {})
    s2, state = tracker.track(Poll("sdm", T0 + timedelta(seconds=5), (PointValue(imp, 101.25),)), state)
    assert s2[0].delta == 0.75 and s2[0].unit == "kWh"
    pulse = ADAM6051_COUNTER[0].model_copy(update={"scale": 0.01})
    tracker = MeterTracker("gas")
    _, state = tracker.track(Poll("gas", T0, (PointValue(pulse, 2**32 - 10),)), {})
    (wrapped,), _ = tracker.track(Poll("gas", T0 + timedelta(seconds=5), (PointValue(pulse, 15),)), state)
    assert wrapped.flags == (Flag.ROLLOVER,)
    assert wrapped.delta is not None and abs(wrapped.delta - 0.25) < 1e-12 and wrapped.unit == "m**3"


def test_track_does_not_mutate_the_given_state() -> None:
    tracker = MeterTracker("m")
    state: MeterState = {}
    tracker.track(Poll("m", T0, (PointValue(ENERGY, 5),)), state)
    assert state == {}
