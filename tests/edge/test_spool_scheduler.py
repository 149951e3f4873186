"""The SQLite spool and state (real files), and the wall-clock scheduler with a fake clock."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from calc.reading_codec import EdgeSample, encode_reading
from calc.schema import Quality, decode
from edge.drivers import PointValue
from edge.maps import SCHNEIDER_PM5000
from edge.readings import CounterState, Poll
from edge.scheduler import MeterPoller, next_tick
from edge.spool import Confirmed, Outgoing, Spool

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
    again.forget(Confirmed(ids=[rows[0].id, rows[2].id]))
    assert [r.payload for r in again.fetch(0, 10)] == [b"b:0"] and again.size == 1


def reading(meter: str, seq: int, wh: int) -> Outgoing:
    """A message of one poll of a Wh counter that advanced by `seq + 1` Wh to `wh`."""
    ts = T0 + timedelta(seconds=seq + 1)
    payload = encode_reading(meter, seq, "edge-1", [
        EdgeSample(ts, "active_energy_import", float(wh), "Wh", float(seq + 1), 1.0),
        EdgeSample(ts, "active_power", 3.6 * (seq + 1), "kW")])
    return Outgoing(meter, f"t/{meter}", payload, seq, {"active_energy_import": CounterState(wh, ts)})


def spooled_energy(spool: Spool, meter: str) -> float:
    return sum(s.delta or 0.0 for r in spool.fetch(0, 10_000) if r.meter == meter
               for s in decode(r.payload).samples if s.quantity == "active_energy_import")


def test_full_spool_merges_never_published_messages_and_keeps_their_energy(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite", max_messages=10)
    wh = {"a": 1000, "b": 5000}
    for seq in range(5):
        batch = []
        for meter in wh:
            wh[meter] += seq + 1
            batch.append(reading(meter, seq, wh[meter]))
        assert all(spool.commit(batch))
    assert spool.size == 10 and spool.compactions == 0
    wh["a"] += 6
    assert all(spool.commit([reading("a", 5, wh["a"])])), "room made by merging, nothing refused"
    assert spool.size <= 10 and spool.compactions == 1 and spool.refused == 0
    assert spooled_energy(spool, "a") == sum(range(1, 7)) and spooled_energy(spool, "b") == sum(range(1, 6))
    seqs = [r.seq for r in spool.fetch(0, 100) if r.meter == "a"]
    assert seqs == sorted(seqs) and seqs[0] == 0 and seqs[-1] == 5 and len(seqs) < 6, "merged: gaps, no reuse"
    merged = decode(spool.fetch(0, 1)[0].payload)
    assert merged.seq == 0 and [s.delta for s in merged.samples if s.quantity == "active_energy_import"] == [3.0]
    spool.close()
    assert Spool(tmp_path / "s.sqlite").compactions == 1  # the count is durable


def test_full_spool_refuses_what_cannot_be_merged_and_keeps_the_baseline(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite", max_messages=10)
    assert all(spool.commit([reading("a", i, 1000 + i) for i in range(10)]))
    spool.take(0, 100, spool.max_id())  # all of them handed to the publisher: none may be merged now
    assert spool.commit([reading("a", 10, 1999), reading("b", 0, 5)]) == [None, None]
    states, seqs = spool.load_state()
    assert states["a"]["active_energy_import"].raw == 1009 and seqs == {"a": 10}, "baseline and seq unchanged"
    assert spool.refused == 2 and spool.compactions == 0 and spool.size == 10
    spool.close()
    assert Spool(tmp_path / "s.sqlite").refused == 2  # the count is durable


def test_the_fence_is_durable_and_only_rows_above_it_are_merged(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite", max_messages=16)
    assert spool.fence_step == 1
    spool.commit([reading("a", i, 100 + i) for i in range(6)])
    taken = spool.take(0, 4, spool.max_id())  # four go to the publisher
    assert spool.fence == taken[-1].id + spool.fence_step
    spool.close()
    spool = Spool(tmp_path / "s.sqlite", max_messages=16)  # as after kill -9: the fence was committed
    assert spool.fence == taken[-1].id + 1
    payloads = {r.id: r.payload for r in spool.fetch(0, 100)}
    for i in range(12):  # 18 > 16: merged above the fence only
        assert all(spool.commit([reading("a", 6 + i, 106 + i)]))
    after = {r.id: r.payload for r in spool.fetch(0, 100)}
    assert all(after[i] == payloads[i] for i in payloads if i <= spool.fence), "maybe published: untouched"
    assert spool.compactions >= 1 and spool.size <= 16 and spool.refused == 0
    assert spooled_energy(spool, "a") == sum(range(1, 19))
    # rows published in the writer's own transaction are fenced there, without a write of their own
    ids = spool.commit([reading("a", 18, 200)], publishable=True)
    assert spool.fence == ids[-1] + spool.fence_step  # type: ignore[operator]


def test_a_spool_of_an_agent_without_a_fence_counts_every_row_as_maybe_published(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    spool = Spool(path)
    spool.commit([reading("a", i, i) for i in range(3)])
    spool.close()
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM meta WHERE key = 'fence'")
    assert Spool(path).fence == 3


def test_confirmations_delete_exactly_the_named_rows(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite")
    ids = spool.commit([reading(m, i, i) for i in range(5) for m in ("a", "b")])
    spool.forget(Confirmed(ranges=[("a", 1, 3), ("b", 4, 4), ("c", 0, 99), ("b", 10, 20)]))
    assert [(r.meter, r.seq) for r in spool.fetch(0, 100)] == [("a", 0), ("b", 0), ("b", 1), ("b", 2), ("b", 3),
                                                                ("a", 4)]
    spool.forget(Confirmed(ids=[ids[0] or 0, ids[0] or 0]))
    assert spool.size == 5 == len(spool.fetch(0, 100))


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
    second = spool.commit([out("b", 1, 2), out("a", 1, 2), out("b", 2, 3)], Confirmed(ids=[i for i in first if i]))
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
