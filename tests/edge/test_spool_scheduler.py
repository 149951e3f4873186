"""The SQLite spool and state (real files), and the wall-clock scheduler with a fake clock."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from calc.schema import Quality
from edge.drivers import PointValue
from edge.maps import SCHNEIDER_PM5000
from edge.readings import CounterState, Poll
from edge.scheduler import MeterPoller, next_tick
from edge.spool import Outgoing, Spool

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


def out(meter: str, seq: int, raw: int) -> Outgoing:
    return Outgoing(meter, f"t/{meter}", f"{meter}:{seq}".encode(), seq,
                    {"active_energy_import": CounterState(raw, T0)})


def test_commit_persists_messages_state_and_seq(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite")
    ids = spool.commit([out("a", 0, 10), out("b", 0, 2**62 + 1), out("a", 1, 20)])
    assert all(ids) and ids == sorted(ids)
    spool.close()
    again = Spool(tmp_path / "s.sqlite")
    states, seqs = again.load_state()
    assert seqs == {"a": 2, "b": 1}
    assert states["a"]["active_energy_import"].raw == 20
    assert states["b"]["active_energy_import"].raw == 2**62 + 1  # 64-bit values survive exactly
    rows = again.fetch(0, 10)
    assert [r.payload for r in rows] == [b"a:0", b"b:0", b"a:1"]
    assert [r.id for r in rows] == ids
    assert again.size == 3
    again.forget([rows[0].id, rows[2].id])
    assert [r.payload for r in again.fetch(0, 10)] == [b"b:0"] and again.size == 1


def test_full_spool_drop_newest_refuses_and_keeps_the_baseline(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite", max_messages=10, policy="drop_newest")
    assert all(spool.commit([out("a", i, i) for i in range(10)]))
    assert spool.commit([out("a", 10, 999)]) == [None]
    states, seqs = spool.load_state()
    assert states["a"]["active_energy_import"].raw == 9 and seqs["a"] == 10
    assert spool.dropped == 1
    spool.close()
    assert Spool(tmp_path / "s.sqlite").dropped == 1  # the drop count is durable


def test_full_spool_drop_oldest_makes_room(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite", max_messages=10, policy="drop_oldest")
    spool.commit([out("a", i, i) for i in range(12)])
    assert spool.size == 10 and spool.dropped == 2
    assert [r.seq for r in spool.fetch(0, 100)] == list(range(2, 12))


def test_fetch_window_between_ids(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite")
    spool.commit([out("a", i, i) for i in range(6)])
    ids = [r.id for r in spool.fetch(0, 100)]
    assert [r.id for r in spool.fetch(ids[1], 2, upto_id=ids[4])] == ids[2:4]
    assert spool.max_id() == ids[-1]


@pytest.mark.parametrize(("now", "interval", "expected"), [
    (100.0, 10.0, 110.0), (100.3, 10.0, 110.0), (109.999, 10.0, 110.0), (0.05, 0.1, 0.1), (59.0, 60.0, 60.0),
])
def test_next_tick_is_the_next_multiple(now: float, interval: float, expected: float) -> None:
    assert next_tick(now, interval) == pytest.approx(expected)


class FakeClock:
    """Time moves only when the poller sleeps or a read takes time."""

    def __init__(self, start: float) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)  # let the test look in between


async def run_polls(poller: MeterPoller, count: int, polls: list[Poll]) -> None:
    """Run the poller until it has produced `count` polls (the fake clock never really sleeps)."""
    task = asyncio.create_task(poller.run())
    for _ in range(100_000):
        if len(polls) >= count or task.done():
            break
        await asyncio.sleep(0)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert len(polls) >= count


async def test_poller_ticks_on_wall_clock_multiples_without_drift() -> None:
    clock = FakeClock(1_000.37)
    polls: list[Poll] = []

    async def read() -> list[PointValue]:
        clock.now += 0.123  # each read takes time; the schedule must not drift by it
        return [PointValue(SCHNEIDER_PM5000[3], 1.0)]

    poller = MeterPoller("m", 2.0, read, polls.append, clock)
    await run_polls(poller, 5, polls)
    assert [p.ts.timestamp() for p in polls[:5]] == pytest.approx([1002.0, 1004.0, 1006.0, 1008.0, 1010.0])


async def test_overrun_skips_missed_ticks_and_dead_device_backs_off() -> None:
    clock = FakeClock(0.0)
    polls: list[Poll] = []

    async def slow_dead_read() -> list[PointValue]:
        clock.now += 2.5  # longer than the interval
        return [PointValue(SCHNEIDER_PM5000[3], None, Quality.BAD, "timeout")]

    class HighJitter(random.Random):
        """Jitter at the top of its range: with a random one, the read's own 3-tick overrun hides a backoff
        of at most 2 ticks (1 run in 80 drew only such), and the check below would fail by chance."""

        def randint(self, a: int, b: int) -> int:
            return b

    poller = MeterPoller("m", 1.0, slow_dead_read, polls.append, clock, backoff_max_ticks=4, rng=HighJitter())
    await run_polls(poller, 8, polls)
    times = [p.ts.timestamp() for p in polls[:8]]
    assert all(t == int(t) for t in times), "every poll starts on a whole tick"
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(g >= 3 for g in gaps), "a poll never starts before the previous one ended"
    assert max(gaps) > 3, "a device that keeps failing is polled less often"
    assert poller.overruns > 0


def test_ids_of_a_batch_are_its_own_after_acknowledged_rows_went_in_the_same_transaction(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite")
    first = spool.commit([out("a", 0, 1), out("b", 0, 1)])
    # the newest rows are deleted in the very transaction that inserts the next ones
    second = spool.commit([out("b", 1, 2), out("a", 1, 2), out("b", 2, 3)], acked=[i for i in first if i])
    rows = spool.fetch(0, 10)
    assert [r.id for r in rows] == second and min(i or 0 for i in second) > max(i or 0 for i in first)
    assert [(r.meter, r.seq, r.payload) for r in rows] == [("b", 1, b"b:1"), ("a", 1, b"a:1"), ("b", 2, b"b:2")]
    states, seqs = spool.load_state()
    assert seqs == {"a": 2, "b": 3}  # each meter's last message in the batch decides
    assert (states["a"]["active_energy_import"].raw, states["b"]["active_energy_import"].raw) == (2, 3)
    assert spool.size == 3


def test_a_failed_transaction_leaves_nothing_and_keeps_the_size(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite")
    spool.commit([out("a", 0, 1)])
    poisoned = Outgoing("a", "t/a", b"a:1", 1, {"active_energy_import": CounterState(object(), T0)})  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        spool.commit([out("b", 0, 1), poisoned])
    assert spool.size == 1 and [r.payload for r in spool.fetch(0, 10)] == [b"a:0"]
    assert spool.load_state()[1] == {"a": 1}
