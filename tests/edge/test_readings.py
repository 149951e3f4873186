"""Pure tests of the meter tracker over calc.counters: first reading, deltas, deferred readings (transient, reset,
replacement, confirmed jump, rollover), stuck and its catch-up, gaps, bad values, clock, and the counter state in
the spool (a deferred reading survives it; an old spool's baselines carry on)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from calc.reading_codec import EdgeSample
from calc.schema import Flag, Quality
from edge.drivers import PointValue
from edge.maps import ADAM6051_COUNTER, SCHNEIDER_PM5000, SDM630
from edge.points import Point
from edge.readings import CounterState, MeterState, MeterTracker, Poll
from edge.spool import Outgoing, Spool

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

    def polls(self, energy: int | None, power_kw: float = 100.0, step_s: float = 10.0) -> list[EdgeSample]:
        """Every sample of the poll (a deferred reading comes out with the one after it)."""
        self.t += timedelta(seconds=step_s)
        values = (PointValue(POWER, power_kw), PointValue(ENERGY, energy))
        samples, self.state = self.tracker.track(Poll("m", self.t, values), self.state)
        return samples


def test_first_reading_is_a_baseline_then_deltas_follow() -> None:
    feed = Feed(MeterTracker("m"))
    first = feed.poll(1_000_000)["active_energy_import"]
    assert (first.delta, first.flags, first.value) == (None, (Flag.FIRST,), 1_000_000)
    second = feed.poll(1_000_250, step_s=9.0)["active_energy_import"]
    assert (second.delta, second.interval_s, second.flags) == (250, 9.0, ())
    assert second.quality == Quality.GOOD


def energy(samples: list[EdgeSample]) -> list[EdgeSample]:
    return [s for s in samples if s.quantity == "active_energy_import"]


def test_rollover_of_a_63_bit_counter_is_counted_once_the_next_reading_confirms_it() -> None:
    feed = Feed(MeterTracker("m"))
    top = 2**63
    feed.poll(top - 40)
    assert "active_energy_import" not in feed.poll(60), "a wrap waits for the next reading"
    wrapped, after = energy(feed.polls(70))
    assert (wrapped.value, wrapped.delta, wrapped.flags, wrapped.ts) == (60, 100, (Flag.ROLLOVER,), T0 + timedelta(
        seconds=20))
    assert (after.delta, after.interval_s) == (10, 10.0)


def test_reset_counts_the_held_reading_and_is_uncertain() -> None:
    feed = Feed(MeterTracker("m"))
    feed.poll(5_000_000)
    assert "active_energy_import" not in feed.poll(300)
    reset, after = energy(feed.polls(400))
    assert (reset.value, reset.delta, reset.flags, reset.quality) == (300, 300, (Flag.RESET,), Quality.UNCERTAIN)
    assert "reset" in (reset.reason or "") and after.delta == 100


def test_transient_zero_without_any_limit_counts_nothing_extra() -> None:
    # the case: on main a zero read added about the whole counter again
    feed = Feed(MeterTracker("m"))
    feed.poll(1_000_000)
    assert "active_energy_import" not in feed.poll(0)
    glitch, after = energy(feed.polls(1_000_100))
    assert (glitch.value, glitch.delta, glitch.quality, glitch.flags) == (0, None, Quality.BAD, (Flag.TRANSIENT,))
    assert "read 0 Wh" in (glitch.reason or "")
    assert (after.delta, after.interval_s, after.flags) == (100, 20.0, (Flag.TRANSIENT,))


def test_garbage_high_is_bridged_once_a_limit_is_learned() -> None:
    feed = Feed(MeterTracker("m"))
    raw = 1_000_000
    for _ in range(7):
        raw += 250
        feed.poll(raw)
    assert "active_energy_import" not in feed.poll(42_900_000_000)
    glitch, after = energy(feed.polls(raw + 500))
    assert (glitch.delta, Flag.TRANSIENT in glitch.flags, after.delta) == (None, True, 500)


def test_garbage_high_beyond_max_power_is_bridged() -> None:
    feed = Feed(MeterTracker("m", max_power_kw=500.0))
    feed.poll(0)
    assert "active_energy_import" not in feed.poll(10_000)  # 10 kWh in 10 s is 3600 kW
    glitch, after = energy(feed.polls(1_000))
    assert (glitch.delta, glitch.quality, after.delta, after.flags) == (None, Quality.BAD, 1_000, (Flag.TRANSIENT,))


def test_confirmed_jump_is_held_with_its_delta_for_an_engineer() -> None:
    feed = Feed(MeterTracker("m", max_power_kw=500.0))
    feed.poll(0)
    assert "active_energy_import" not in feed.poll(10_000)
    jump, after = energy(feed.polls(10_100))
    assert (jump.delta, jump.flags, jump.quality) == (10_000, (Flag.SPIKE, Flag.HELD), Quality.UNCERTAIN)
    assert "engineer" in (jump.reason or "") and after.delta == 100


def test_replacement_is_a_baseline_not_energy() -> None:
    feed = Feed(MeterTracker("m", max_power_kw=500.0))
    feed.poll(50_000_000)
    assert "active_energy_import" not in feed.poll(9_000_000)
    swap, after = energy(feed.polls(9_000_100))
    assert (swap.value, swap.delta, swap.flags) == (9_000_000, None, (Flag.REPLACEMENT,))
    assert "50000000 Wh" in (swap.reason or "") and after.delta == 100


def test_a_deferred_reading_is_in_the_state_and_survives_the_spool(tmp_path: Path) -> None:
    feed = Feed(MeterTracker("m"))
    feed.poll(1_000)
    feed.poll(0)
    state = feed.state["active_energy_import"]
    assert (state.raw, state.track and state.track.held_raw) == (1_000, 0)
    spool = Spool(tmp_path / "edge.sqlite")
    spool.commit([Outgoing("m", "t/m", b"{}", 0, feed.state)])
    spool.close()
    feed.state = Spool(tmp_path / "edge.sqlite").load_state()[0]["m"]
    assert feed.state["active_energy_import"] == state
    assert [s.delta for s in energy(feed.polls(1_050))] == [None, 50]


def test_an_old_spool_opens_and_its_baselines_carry_on(tmp_path: Path) -> None:
    path = tmp_path / "edge.sqlite"
    db = sqlite3.connect(path)
    db.executescript("CREATE TABLE counters (meter TEXT NOT NULL, quantity TEXT NOT NULL, raw TEXT NOT NULL, "
                     "ts TEXT NOT NULL, PRIMARY KEY (meter, quantity));")
    db.execute("INSERT INTO counters VALUES ('m', 'active_energy_import', '5000', ?)", (T0.isoformat(),))
    db.commit()
    db.close()
    feed = Feed(MeterTracker("m"))
    feed.state = Spool(path).load_state()[0]["m"]
    assert feed.state["active_energy_import"] == CounterState(5000, T0)
    after = feed.poll(5_400)["active_energy_import"]
    assert (after.delta, after.interval_s, after.flags) == (400, 10.0, ())


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


def test_stuck_counter_with_power_is_flagged_and_its_catch_up_spread_over_the_stuck_span() -> None:
    feed = Feed(MeterTracker("m", stuck_after=3, max_power_kw=500.0))
    feed.poll(10_000)
    flags = [feed.poll(10_000, power_kw=100.0)["active_energy_import"].flags for _ in range(4)]
    assert [Flag.STUCK in f for f in flags] == [False, False, True, True]
    # 1.5 kWh in 10 s is 540 kW, above 500 kW x 1.5? No; but over the 50 s since it last moved it is plainly fine
    moving = feed.poll(11_500)["active_energy_import"]
    assert (moving.delta, moving.interval_s, Flag.STUCK in moving.flags) == (1_500, 50.0, True)
    assert feed.poll(11_600)["active_energy_import"].flags == ()


def test_a_stuck_counter_that_moves_one_intervals_worth_is_not_a_catch_up() -> None:
    """Still while a stale gauge said 100 kW (the load stopped, e.g. a paused line), then it moves by what 100 kW
    gives in one 10 s interval: that energy belongs to this interval, not spread over the still span."""
    feed = Feed(MeterTracker("m", stuck_after=3, max_power_kw=500.0))
    feed.poll(10_000)
    flags = [feed.poll(10_000, power_kw=100.0)["active_energy_import"].flags for _ in range(4)]
    assert Flag.STUCK in flags[-1]
    moving = feed.poll(10_278, power_kw=100.0)["active_energy_import"]  # 100 kW x 10 s = 278 Wh
    assert (moving.delta, moving.interval_s, Flag.STUCK in moving.flags) == (278, 10.0, False)


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


def test_clock_going_back_is_ignored_and_the_next_reading_carries_the_energy() -> None:
    feed = Feed(MeterTracker("m"))
    feed.poll(1_000)
    assert "active_energy_import" not in feed.poll(1_200, step_s=-5.0)
    assert feed.poll(1_300, step_s=20.0)["active_energy_import"].delta == 300


def test_a_gap_is_flagged() -> None:
    feed = Feed(MeterTracker("m", interval_s=10.0))
    feed.poll(1_000)
    assert feed.poll(1_100)["active_energy_import"].flags == ()
    late = feed.poll(1_900, step_s=45.0)["active_energy_import"]
    assert (late.delta, late.interval_s, late.flags) == (800, 45.0, (Flag.GAP,))


def test_max_rate_per_h_limits_a_gas_counter() -> None:
    gas = Point(quantity="gas_volume", unit="m**3", kind="counter", address=0, type="u32", scale=0.01)
    tracker = MeterTracker("gas", max_rate_per_h=36.0)  # 0.01 m3/s: 1 count/s, 1.5 with the margin
    state: MeterState = {}
    out = []
    for i, raw in enumerate((1000, 1010, 1100, 1020)):
        samples, state = tracker.track(Poll("gas", T0 + timedelta(seconds=10 * i), (PointValue(gas, raw),)), state)
        out += samples
    assert [(round(s.value, 6), s.delta, s.flags) for s in out] == [
        (10.0, None, (Flag.FIRST,)), (10.1, 0.1, ()), (11.0, None, (Flag.TRANSIENT,)), (10.2, 0.1, (Flag.TRANSIENT,))]


def test_a_poll_in_doubt_of_its_time_flags_every_sample() -> None:
    tracker = MeterTracker("m")
    poll = Poll("m", T0, (PointValue(POWER, 10.0), PointValue(ENERGY, 5)), clock="clock: wall clock stepped")
    samples, _ = tracker.track(poll, {})
    assert all(Flag.CLOCK in s.flags and s.quality == Quality.UNCERTAIN and "stepped" in (s.reason or "")
               for s in samples)


def test_float_counter_and_scaled_pulse_counter() -> None:
    imp = next(p for p in SDM630 if p.quantity == "active_energy_import")
    tracker = MeterTracker("sdm")
    _, state = tracker.track(Poll("sdm", T0, (PointValue(imp, 100.5),)), {})
    s2, state = tracker.track(Poll("sdm", T0 + timedelta(seconds=5), (PointValue(imp, 101.25),)), state)
    assert s2[0].delta == 0.75 and s2[0].unit == "kWh"
    pulse = ADAM6051_COUNTER[0].model_copy(update={"scale": 0.01})
    tracker = MeterTracker("gas")
    _, state = tracker.track(Poll("gas", T0, (PointValue(pulse, 2**32 - 10),)), {})
    held, state = tracker.track(Poll("gas", T0 + timedelta(seconds=5), (PointValue(pulse, 15),)), state)
    assert held == []
    (wrapped, _), _ = tracker.track(Poll("gas", T0 + timedelta(seconds=10), (PointValue(pulse, 16),)), state)
    assert wrapped.flags == (Flag.ROLLOVER,)
    assert wrapped.delta is not None and abs(wrapped.delta - 0.25) < 1e-12 and wrapped.unit == "m**3"


def test_track_does_not_mutate_the_given_state() -> None:
    tracker = MeterTracker("m")
    state: MeterState = {}
    tracker.track(Poll("m", T0, (PointValue(ENERGY, 5),)), state)
    assert state == {}
