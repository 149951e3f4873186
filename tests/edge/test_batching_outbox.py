"""Batching polls into messages, and the outbox's replay of a backlog beside fresh messages (real SQLite spool,
a fake publisher passed in as a parameter: no broker is involved in these unit tests)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from calc.schema import Flag, decode
from edge.batching import Batcher
from edge.drivers import PointValue
from edge.maps import SCHNEIDER_PM5000
from edge.outbox import Outbox
from edge.readings import MeterTracker, Poll
from edge.spool import Outgoing, Spool, SpoolRow

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
ENERGY = SCHNEIDER_PM5000[4]


def poll(i: int, energy: int) -> Poll:
    return Poll("m", T0 + timedelta(seconds=i), (PointValue(ENERGY, energy),))


def batcher(max_polls: int, clock: list[float] | None = None) -> Batcher:
    now = clock if clock is not None else [0.0]
    return Batcher({"m": MeterTracker("m")}, {"m": "t/m"}, "edge", {}, {}, max_polls, 10.0, lambda: now[0])


def test_polls_are_batched_per_meter_with_one_seq_per_message() -> None:
    b = batcher(3)
    for i, e in enumerate((100, 150, 175)):
        b.add(poll(i, e))
    (out,) = b.due()
    message = decode(out.payload)
    assert (message.seq, [s.value for s in message.samples]) == (0, [100, 150, 175])
    assert [s.delta for s in message.samples] == [None, 50, 25]
    b.settle(out, kept=True)
    assert b.seqs == {"m": 1} and b.committed["m"]["active_energy_import"].raw == 175


def test_old_batches_are_due_and_stop_forces_the_rest() -> None:
    clock = [0.0]
    b = batcher(100, clock)
    b.add(poll(0, 10))
    assert b.due() == []
    clock[0] = 10.0
    assert len(b.due()) == 1
    b.add(poll(1, 20))
    assert len(b.due(force=True)) == 1


def test_refused_message_keeps_the_committed_baseline() -> None:
    b = batcher(1)
    b.add(poll(0, 1_000))
    (first,) = b.due()
    b.settle(first, kept=True)
    b.add(poll(1, 1_200))
    (refused,) = b.due()
    b.settle(refused, kept=False)  # spool full
    b.add(poll(2, 1_500))
    (after,) = b.due()
    sample = decode(after.payload).samples[0]
    assert sample.delta == 500 and Flag.FIRST not in sample.flags, "the refused reading's energy comes now"
    assert decode(after.payload).seq == 1, "a refused message uses no sequence number"


class FakePublisher:
    """What the outbox needs of a publisher; records what it was asked to publish."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.connected = True
        self.generation = 0
        self.sent: list[bytes] = []

    def publish(self, topic: str, payload: bytes) -> int:
        self.sent.append(payload)
        return len(self.sent)


def spool_with(tmp_path: Path, n: int) -> Spool:
    spool = Spool(tmp_path / "s.sqlite")
    spool.commit([Outgoing("m", "t", f"old{i}".encode(), i, {}) for i in range(n)])
    return spool


async def test_backlog_replays_in_order_beside_fresh_messages(tmp_path: Path) -> None:
    spool = spool_with(tmp_path, 10)
    publisher = FakePublisher(window=4)

    async def in_db(fn: Any, *args: Any) -> Any:
        return fn(*args)

    outbox = Outbox(spool, publisher, in_db, live_share=0.5)  # type: ignore[arg-type]
    await outbox._round()  # first round after start: resync, backlog only
    assert publisher.sent == [b"old0", b"old1", b"old2", b"old3"]
    ids = spool.commit([Outgoing("m", "t", f"new{i}".encode(), 10 + i, {}) for i in range(3)])
    outbox.added(SpoolRow(i, "t", f"new{n}".encode(), "m", 10 + n) for n, i in enumerate(ids) if i is not None)
    for mid in (1, 2, 3, 4):  # the broker acknowledges the first four
        outbox.on_ack(0, mid)
    await outbox._round()
    # half of the window goes to fresh messages while the backlog drains, each lane in its own order
    assert publisher.sent[4:] == [b"new0", b"new1", b"old4", b"old5"]
    assert sorted(outbox.take_acked()) == [r.id for r in spool.fetch(0, 4)]


async def test_after_a_new_client_unacknowledged_messages_are_sent_again(tmp_path: Path) -> None:
    spool = spool_with(tmp_path, 3)
    publisher = FakePublisher(window=10)

    async def in_db(fn: Any, *args: Any) -> Any:
        return fn(*args)

    outbox = Outbox(spool, publisher, in_db)  # type: ignore[arg-type]
    await outbox._round()
    assert publisher.sent == [b"old0", b"old1", b"old2"]
    outbox.on_ack(0, 1)
    spool.forget(outbox.take_acked())
    publisher.generation = 1  # the protocol fallback replaced the client: its in-flight messages are gone
    outbox.on_connection(True)
    await outbox._round()
    assert publisher.sent[3:] == [b"old1", b"old2"]
