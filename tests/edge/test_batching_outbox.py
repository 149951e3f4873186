"""Batching polls into messages, and the outbox: replay of a backlog beside fresh messages, confirmation by ingest's
acknowledgement, publishing again what is lost, backing off while ingest is silent (real SQLite spool, a fake
publisher and clock passed in as parameters: no broker is involved in these unit tests)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from calc.acks import encode_acks
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


async def in_db(fn: Any, *args: Any) -> Any:
    return fn(*args)


def spool_with(tmp_path: Path, n: int) -> Spool:
    spool = Spool(tmp_path / "s.sqlite")
    spool.commit([Outgoing("m", "t", f"old{i}".encode(), i, {}) for i in range(n)])
    return spool


def outbox_for(spool: Spool, window: int, clock: list[float] | None = None, **kwargs: Any
               ) -> tuple[Outbox, FakePublisher]:
    publisher = FakePublisher(window)
    now = clock if clock is not None else [0.0]
    kwargs = {"confirm": "ingest", "agent": "edge-1", "ack_timeout_s": 10.0} | kwargs
    return Outbox(spool, publisher, in_db, clock=lambda: now[0], **kwargs), publisher  # type: ignore[arg-type]


async def test_backlog_replays_in_order_beside_fresh_messages(tmp_path: Path) -> None:
    spool = spool_with(tmp_path, 10)
    outbox, publisher = outbox_for(spool, 4, live_share=0.5, confirm="broker")
    await outbox._round()  # first round after start: the whole spool is backlog
    assert publisher.sent == [b"old0", b"old1", b"old2", b"old3"]
    ids = spool.commit([Outgoing("m", "t", f"new{i}".encode(), 10 + i, {}) for i in range(3)], publishable=True)
    outbox.added([SpoolRow(i, "t", f"new{n}".encode(), "m", 10 + n) for n, i in enumerate(ids) if i is not None])
    for mid in (1, 2, 3, 4):  # the broker acknowledges the first four
        outbox.on_puback(0, mid)
    await outbox._round()
    # half of the window goes to fresh messages while the backlog drains, each lane in its own order
    assert publisher.sent[4:] == [b"new0", b"new1", b"old4", b"old5"]
    assert sorted(outbox.take_confirmed().ids) == [r.id for r in spool.fetch(0, 4)]


async def test_after_a_new_client_unacknowledged_messages_are_sent_again(tmp_path: Path) -> None:
    spool = spool_with(tmp_path, 3)
    outbox, publisher = outbox_for(spool, 10, confirm="broker")
    await outbox._round()
    assert publisher.sent == [b"old0", b"old1", b"old2"]
    outbox.on_puback(0, 1)
    spool.forget(outbox.take_confirmed())
    publisher.generation = 1  # the protocol fallback replaced the client: its in-flight messages are gone
    outbox.on_connection(True)
    await outbox._round()
    assert publisher.sent[3:] == [b"old1", b"old2"]


def acks(**seqs: list[int]) -> bytes:
    return encode_acks("edge-1", seqs)


async def test_only_ingest_confirms_a_message_whatever_the_order_of_ack_and_puback(tmp_path: Path) -> None:
    spool = spool_with(tmp_path, 5)
    outbox, _ = outbox_for(spool, 10)
    await outbox._round()
    for mid in (1, 2, 3):  # PUBACKs free the broker's window and confirm nothing
        outbox.on_puback(0, mid)
    assert not outbox.take_confirmed() and outbox.awaiting_ack == 5 and not outbox.inflight.keys() & {1, 2, 3}
    outbox.on_ack_message(acks(m=[1, 3, 4]))  # seq 4 acknowledged before its PUBACK
    for mid in (4, 5):
        outbox.on_puback(0, mid)
    confirmed = outbox.take_confirmed()
    assert confirmed.ranges == [("m", 1, 1), ("m", 3, 4)] and outbox.awaiting_ack == 2
    spool.forget(confirmed)
    outbox.deleted(confirmed)
    assert [r.seq for r in spool.fetch(0, 10)] == [0, 2]
    outbox.on_ack_message(acks(m=[3], other=[0]))  # again, or of what is not spooled: nothing changes
    assert outbox.awaiting_ack == 2 and outbox.acknowledged == 3


async def test_ack_window_bounds_what_awaits_ingest(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spool = spool_with(tmp_path, 10)
    outbox, publisher = outbox_for(spool, 100, ack_window=4)
    await outbox._round()
    for mid in range(1, 5):
        outbox.on_puback(0, mid)
    await outbox._round()
    assert publisher.sent == [b"old0", b"old1", b"old2", b"old3"], "the rest waits in the spool"
    assert any("await ingest's acknowledgement (ack_window)" in r.getMessage() for r in caplog.records)
    outbox.on_ack_message(acks(m=[0, 1]))
    await outbox._round()
    assert publisher.sent[4:] == [b"old4", b"old5"] and outbox.awaiting_ack == 4


async def test_lost_messages_go_again_once_later_ones_are_acknowledged(tmp_path: Path) -> None:
    clock = [0.0]
    spool = spool_with(tmp_path, 6)
    outbox, publisher = outbox_for(spool, 100, clock)
    await outbox._round()
    for mid in range(1, 7):
        outbox.on_puback(0, mid)
    clock[0] = 1.0
    outbox.on_ack_message(acks(m=[3, 4, 5]))  # ingest has the later ones: 0..2 were lost on the way
    clock[0] = 9.0
    await outbox._round()
    assert len(publisher.sent) == 6, "not before ack_timeout_s"
    clock[0] = 10.0
    await outbox._round()
    assert publisher.sent[6:] == [b"old0", b"old1", b"old2"] and outbox.resent == 3
    for mid in (7, 8, 9):
        outbox.on_puback(0, mid)
    outbox.on_ack_message(acks(m=[0, 1, 2]))
    clock[0] = 100.0
    await outbox._round()
    assert len(publisher.sent) == 9 and outbox.awaiting_ack == 0, "acknowledged: never again"


async def test_while_ingest_is_silent_only_a_probe_goes_again_ever_less_often(tmp_path: Path) -> None:
    clock = [0.0]
    spool = spool_with(tmp_path, 8)
    outbox, publisher = outbox_for(spool, 3, clock, ack_timeout_s=10.0)

    async def round_with_pubacks() -> bool:  # the broker acknowledges at once; ingest never does
        before = len(publisher.sent)
        await outbox._round()
        for mid in range(before + 1, len(publisher.sent) + 1):
            outbox.on_puback(0, mid)
        return len(publisher.sent) > before

    while len(publisher.sent) < 8:  # all eight published at 0 s
        assert await round_with_pubacks()
    sent_at: list[float] = []
    for t in range(1, 400):
        clock[0] = float(t)
        if await round_with_pubacks():
            sent_at.append(clock[0])
            assert not await round_with_pubacks(), "a probe is one round"
    assert len(publisher.sent) - 8 == 3 * len(sent_at), "a probe is a window's worth (3), not all 8"
    gaps = [b - a for a, b in itertools.pairwise([0.0, *sent_at])]
    assert gaps[:5] == [10.0, 20.0, 40.0, 80.0, 160.0] and set(gaps[5:]) <= {160.0}, "doubling, capped at 16x"
    outbox.on_ack_message(acks(m=[0]))
    assert outbox.timeout_s == 10.0, "acknowledged again: back to the plain timeout"


async def test_a_bad_acknowledgement_is_logged_and_changes_nothing(tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    spool = spool_with(tmp_path, 2)
    outbox, _ = outbox_for(spool, 10)
    await outbox._round()
    outbox._bad_ack.interval_s = 0.0  # every one of them logged here
    for payload in (b"", b"not json", b"[" * 100_000 + b"]" * 100_000, b'{"v": 1, "agent": "edge-1"}',
                    b'{"v": 1, "agent": "edge-1", "acks": {"m": [[2, 1]]}}', encode_acks("edge-2", {"m": [0, 1]})):
        outbox.on_ack_message(payload)
    assert outbox.awaiting_ack == 2 and not outbox.take_confirmed()
    reasons = [r.getMessage() for r in caplog.records if "ignored an acknowledgement" in r.getMessage()]
    assert len(reasons) == 6 and "runs backwards" in reasons[4] and "'edge-2'" in reasons[5]
    outbox.on_ack_message(acks(m=[0, 1]))
    assert outbox.awaiting_ack == 0
