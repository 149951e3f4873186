"""Counter arithmetic: worked sequences, and property tests over thousands of generated readings with wraps,
resets, replacements, transient zeros, backward steps, spikes, clock repeats and gaps: the total counted
equals the energy the meter really registered."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from calc.counters import CounterPolicy, CounterTracker, Event, counter_delta
from calc.schema import Flag


def test_stateless_delta_rollover_and_reset() -> None:
    assert counter_delta(65530, 4, 16) == (10.0, Flag.ROLLOVER)
    assert counter_delta(100, 4, 16) == (4.0, Flag.RESET)
    assert counter_delta(100, 150, 16, 0.01) == (0.5, None)


def _events(policy: CounterPolicy, readings: list[tuple[int, float]]) -> list[tuple[Event, float]]:
    _, steps = CounterTracker(policy).run(readings)
    return [(s.event, s.delta) for s in steps]


POLICY = CounterPolicy(width_bits=16, max_rate_per_s=10.0, expected_interval_s=1.0)


def test_worked_sequence() -> None:
    readings = [(1000, 0), (1005, 1), (0, 2), (1015, 3),          # transient zero: counted from 1005
                (1010, 4), (1020, 5),                               # backward glitch, comes back
                (3, 6), (12, 7),                                    # reset to zero: 3 + 9 counted
                (40_000, 8), (20, 9),                               # spike, back in line: 8 counted
                (30_000, 10), (30_007, 11)]                         # replacement (jump up): baseline
    assert _events(POLICY, readings) == [
        (Event.FIRST, 0.0), (Event.NORMAL, 5.0), (Event.HELD, 0.0), (Event.TRANSIENT, 10.0),
        (Event.HELD, 0.0), (Event.TRANSIENT, 5.0), (Event.HELD, 0.0), (Event.RESET, 12.0),
        (Event.SPIKE, 0.0), (Event.TRANSIENT, 8.0), (Event.SPIKE, 0.0), (Event.REPLACEMENT, 7.0)]


def test_rollover_is_counted_once_confirmed() -> None:
    assert _events(POLICY, [(65530, 0), (2, 1), (9, 2)]) == [
        (Event.FIRST, 0.0), (Event.HELD, 0.0), (Event.ROLLOVER, 15.0)]


def test_gap_is_reported_with_its_length_and_clock_repeats_ignored() -> None:
    tracker = CounterTracker(POLICY)
    _, steps = tracker.run([(0, 0), (5, 1), (5, 1), (100, 31)])
    assert [s.event for s in steps] == [Event.FIRST, Event.NORMAL, Event.CLOCK, Event.NORMAL]
    assert steps[3].gap_s == 30 and Flag.GAP in steps[3].flags and steps[3].delta == 95
    assert Flag.CLOCK in steps[2].flags


def test_replacement_reports_the_uncounted_baseline() -> None:
    _, steps = CounterTracker(POLICY).run([(50_000, 0), (50_005, 1), (9_000, 2), (9_004, 3)])
    assert steps[-1].event is Event.REPLACEMENT and steps[-1].uncounted == 9_000 and steps[-1].delta == 4


def test_scale_applies_to_every_delta() -> None:
    policy = CounterPolicy(width_bits=32, scale=0.01, max_rate_per_s=None)
    assert _events(policy, [(100, 0), (250, 1)]) == [(Event.FIRST, 0.0), (Event.NORMAL, 1.5)]


# ---- property tests -----------------------------------------------------------------------------------

ANOMALIES = ("zero", "back", "spike", "reset", "replace", "clock", "gap")


@dataclass
class Meter:
    """A simulated meter: the true register, the readings it produced and the energy it registered."""

    modulus: int
    rate: float            # max counts per second
    value: int
    t: float = 0.0
    truth: int = 0
    wrapped: bool = False  # the last consumption went past the register's top
    readings: list[tuple[int, float]] = field(default_factory=list)

    def consume(self, data: st.DataObject, dt: float) -> None:
        used = data.draw(st.integers(0, int(self.rate * dt)))
        self.wrapped = self.value + used >= self.modulus
        self.value = (self.value + used) % self.modulus
        self.truth += used
        self.t += dt

    def read(self, value: int | None = None) -> None:
        self.readings.append((self.value if value is None else value, self.t))


def _distinct(new: int, old: int, modulus: int, margin: int) -> bool:
    distance = abs(new - old)
    return distance >= margin and modulus - distance >= margin


def _margin(meter: Meter) -> int:
    return int(meter.rate * 1.5 * 120) + 1  # more than any plausible step, gaps included


@st.composite
def sequences(draw: st.DrawFn, with_rate_limit: bool) -> tuple[CounterPolicy, Meter]:
    width = draw(st.sampled_from([16, 24, 32]))
    rate = draw(st.integers(1, 60))
    meter = Meter(1 << width, float(rate), draw(st.integers(0, (1 << width) - 1)))
    data = draw(st.data())
    meter.read()
    kinds = draw(st.lists(st.sampled_from(("normal", *ANOMALIES)), min_size=1, max_size=60))
    margin = _margin(meter)
    for kind in kinds:
        # A restart must be visible (value above any plausible step) and must not pass for a wrap: with a
        # rate limit a wrap is at most `margin` long; without one, under a quarter of the range.
        top = meter.modulus - margin if with_rate_limit else 3 * meter.modulus // 4 - margin
        safe = margin < meter.value < top
        # Known limit, documented in calc.counters: a glitch within one reading of a wrap is not resolved
        # (the wrap is itself held for confirmation, and one pending reading is all the tracker keeps).
        clear = not meter.wrapped and meter.value < meter.modulus - margin
        if kind == "gap":
            meter.consume(data, draw(st.floats(5, 60)))
            meter.read()
        elif kind in ("zero", "back", "spike") and not clear:
            meter.consume(data, 1.0)
            meter.read()
            continue
        elif kind == "zero":
            meter.consume(data, 1.0)
            meter.read(0)
        elif kind == "back" and meter.value > 0:
            meter.consume(data, 1.0)
            meter.read(max(0, meter.value - draw(st.integers(1, 10 * rate + 5))))
        elif kind == "clock":
            meter.readings.append((draw(st.integers(0, meter.modulus - 1)), meter.t))  # repeats the last time
        elif kind == "spike" and with_rate_limit:
            meter.consume(data, 1.0)
            meter.read((meter.value + draw(st.integers(margin, meter.modulus // 2 - margin))) % meter.modulus)
        elif kind == "reset" and safe:
            meter.value = 0  # restarts right after the last reading; what it registers next is counted
            meter.consume(data, 1.0)
            meter.read()
        elif kind == "replace" and safe and with_rate_limit and _distinct(
                new := draw(st.integers(margin, meter.modulus - margin)), meter.value, meter.modulus, margin):
            # A new meter, read before any load: its first value is a baseline. It must not look like a
            # restart from zero (value > margin) nor like a plausible step or wrap from the old reading.
            meter.value = new
            meter.t += 1.0
            meter.read()
        else:
            meter.consume(data, 1.0)
            meter.read()
            continue
        for _ in range(2):  # each anomaly is followed by good readings that explain it
            meter.consume(data, 1.0)
            meter.read()
    # Closing reading with no load: it confirms a wrap still held (wraps count one reading late, so that
    # a glitch to zero near the register's top cannot pass for one).
    meter.t += 1.0
    meter.read()
    policy = CounterPolicy(width_bits=width, max_rate_per_s=float(rate) if with_rate_limit else None,
                           expected_interval_s=1.0)
    return policy, meter


@settings(max_examples=2000, deadline=None)
@given(sequences(with_rate_limit=True))
def test_total_equals_ground_truth_with_rate_limit(case: tuple[CounterPolicy, Meter]) -> None:
    policy, meter = case
    _, steps = CounterTracker(policy).run(meter.readings)
    assert sum(s.delta for s in steps) == meter.truth
    assert all(s.delta >= 0 for s in steps)


@settings(max_examples=1000, deadline=None)
@given(sequences(with_rate_limit=False))
def test_total_equals_ground_truth_without_rate_limit(case: tuple[CounterPolicy, Meter]) -> None:
    policy, meter = case
    _, steps = CounterTracker(policy).run(meter.readings)
    assert sum(s.delta for s in steps) == meter.truth


@settings(max_examples=300, deadline=None)
@given(sequences(with_rate_limit=True))
def test_gaps_are_reported_with_their_length(case: tuple[CounterPolicy, Meter]) -> None:
    policy, meter = case
    _, steps = CounterTracker(policy).run(meter.readings)
    times = [t for _, t in meter.readings]
    for i, s in enumerate(steps[1:], start=1):
        if s.event is Event.CLOCK:
            continue
        previous = max(t for t in times[:i])
        interval = times[i] - previous
        assert (s.gap_s is not None) == (interval > 3.0)
        if s.gap_s is not None:
            assert s.gap_s == interval
