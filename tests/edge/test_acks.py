"""End-to-end acknowledgement against a real Mosquitto, with an acker in ingest's place (tests/edge/helpers.py): a
message stays in the spool after the broker's PUBACK until ingest acknowledges it; an acknowledgement deletes exactly
the messages it names; what stays unacknowledged is published again, and no longer once acknowledged; a broker
killed -9 while ingest is away loses nothing; `confirm = "broker"` works without acks; a bad acknowledgement harms
nothing.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from calc import topics
from calc.acks import encode_acks
from deploy.services import Mosquitto, free_port
from edge.agent import Agent
from edge.config import parse_config
from tests.edge.helpers import Acker, Collector, eventually, unique_site
from tests.edge.modbus_server import Meter, start_tcp

pytestmark = pytest.mark.integration

START_WH = 3_000_000


@pytest.fixture
async def meter() -> AsyncIterator[tuple[int, Meter]]:
    port = free_port()
    device = Meter("schneider_pm5000")
    device.put("active_energy_import", START_WH)
    device.put("active_power", 12.5)
    server = await start_tcp({1: device}, port)
    yield port, device
    await server.shutdown()


def agent_for(site: str, modbus_port: int, url: str, state_dir: Path, **edge: Any) -> Agent:
    return Agent(parse_config({
        "site": {"id": site, "region": "CN", "start": "2026-01-01T00:00:00Z"},
        "gateways": [{"id": "gw", "kind": "modbus_tcp", "host": "127.0.0.1", "port": modbus_port}],
        "meters": [{"id": "m1", "area": "a", "carrier": "electricity", "gateway": "gw", "unit_id": 1,
                    "map": "schneider_pm5000", "interval_s": 0.1}],
        "mqtt": {"url": url},
        "edge": {"agent": "edge-ack", "state_dir": str(state_dir), "status_interval_s": 0.5} | edge,
    }, "<test>"))


class Running:
    """An agent on the test's loop; `close()` stops it and raises what it raised."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(agent.run(self.stop))

    async def until(self, condition: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
        await eventually(lambda: self.task.done() or condition(), timeout_s, what)
        if self.task.done():
            self.task.result()
            raise AssertionError(f"the agent stopped while waiting for {what}")

    async def close(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 10)


def spooled(state_dir: Path) -> set[int]:
    """The seqs of m1 in the spool, read through a connection of our own (as another process would)."""
    with sqlite3.connect(state_dir / "edge.sqlite") as db:
        return {seq for (seq,) in db.execute("SELECT seq FROM spool WHERE meter = 'm1'")}


def publish_ack(acker: Acker, site: str, payload: bytes) -> None:
    acker.client.publish(topics.edge_ack(site, "edge-ack"), payload, qos=1).wait_for_publish(5)


async def test_a_message_stays_after_its_puback_until_an_ack_deletes_exactly_it(
        meter: tuple[int, Meter], mqtt_url: str, tmp_path: Path) -> None:
    site, state = unique_site(), tmp_path / "state"
    acker = Acker(mqtt_url, site)
    acker.hold(lambda m: True)  # received, never acknowledged (by the acker's own loop)
    collector = Collector(mqtt_url, site)
    running = Running(agent_for(site, meter[0], mqtt_url, state, ack_timeout_s=600.0))
    outbox = running.agent.outbox
    try:
        await running.until(lambda: len(acker.seqs("m1")) >= 8, "eight messages at the broker's subscriber")
        await running.until(lambda: not outbox.inflight, "their PUBACKs", 10)
        held = set(acker.seqs("m1"))
        assert held <= spooled(state), "acknowledged by the broker, still in the spool"
        await running.until(lambda: any(s.get("awaiting_ack", 0) >= 8 for s in collector.statuses()),
                            "the status saying what awaits ingest")

        publish_ack(acker, site, encode_acks("edge-ack", {"m1": [1, 3, 4, 10**9], "other": [0]}))
        await running.until(lambda: not spooled(state) & {1, 3, 4}, "the acknowledged messages deleted")
        assert held - {1, 3, 4} <= spooled(state), "exactly those"
        assert outbox.acknowledged == 3 and not {1, 3, 4} & {s.seq for s in outbox.awaiting.values()}
    finally:
        await running.close()
        acker.close()
        collector.close()
    assert outbox.resent == 0


async def test_what_stays_unacknowledged_goes_again_until_it_is_acknowledged(
        meter: tuple[int, Meter], mqtt_url: str, tmp_path: Path) -> None:
    site, state = unique_site(), tmp_path / "state"
    acker = Acker(mqtt_url, site)
    acker.hold(lambda m: m.seq in (2, 3))  # ingest "failed" to store these two; it has all the others
    running = Running(agent_for(site, meter[0], mqtt_url, state, ack_timeout_s=0.5))
    try:
        await running.until(lambda: acker.copies("m1", 2) >= 3 and acker.copies("m1", 3) >= 3,
                            "seqs 2 and 3 published again, twice")
        assert {2, 3} <= spooled(state)
        acker.release()
        await running.until(lambda: not spooled(state) & {2, 3}, "2 and 3 acknowledged and deleted")
        copies = acker.copies("m1", 2), acker.copies("m1", 3)
        # another held message going again twice shows the resending went on for two timeouts after that
        later = max(acker.seqs("m1")) + 3
        acker.hold(lambda m: m.seq == later)
        await running.until(lambda: acker.copies("m1", later) >= 3, f"seq {later} published again, twice")
        assert (acker.copies("m1", 2), acker.copies("m1", 3)) == copies, "acknowledged: not published again"
    finally:
        await running.close()
        acker.close()


async def test_broker_killed_while_ingest_is_away_loses_nothing(meter: tuple[int, Meter], mosquitto: Mosquitto,
                                                                tmp_path: Path) -> None:
    port, device = meter
    site, state = unique_site(), tmp_path / "state"
    ackers = [Acker(mosquitto.url, site, client_id="ingest-1")]
    # a small window, so that the probe after the outage is only part of what awaits: the rest goes again once
    # ingest acknowledges the probe (later messages acknowledged)
    running = Running(agent_for(site, port, mosquitto.url, state, ack_timeout_s=1.0, publish_window=4))
    outbox = running.agent.outbox
    energy = START_WH
    try:
        await running.until(lambda: len(ackers[0].acked_seqs("m1")) >= 5 and not spooled(state) & {0, 1, 2},
                            "messages acknowledged and deleted")
        ackers[0].close()  # ingest goes away; its session keeps what arrives meanwhile, in the broker's memory
        first_unacked = max(ackers[0].acked_seqs("m1")) + 1
        for i in range(1, 4):
            energy += 250
            device.put("active_energy_import", energy)
            await running.until(lambda i=i: max(spooled(state)) >= first_unacked + 5 * i, "readings spooled")
        await running.until(lambda: max(s.seq for s in outbox.awaiting.values()) >= max(spooled(state)) - 2
                            and not outbox.inflight,
                            "the broker's PUBACKs (taken by the broker: in its memory only)")
        assert set(range(first_unacked, first_unacked + 15)) <= spooled(state), "kept: nobody acknowledged them"

        await asyncio.to_thread(mosquitto.kill)  # kill -9: the broker's queue for ingest is gone
        await asyncio.to_thread(mosquitto.start)
        energy += 1_000
        device.put("active_energy_import", energy)
        ackers.append(Acker(mosquitto.url, site, client_id="ingest-1"))  # the old session died with the broker

        def final_seq() -> int | None:
            return min((m.seq for m in ackers[1].readings("m1") for s in m.samples if s.value == energy), default=None)

        await running.until(lambda: final_seq() is not None, "a reading of the final counter", 30)
        last = final_seq() or 0
        await running.until(lambda: min(spooled(state), default=last + 1) > last,
                            f"everything up to seq {last} acknowledged and deleted", 60)
    finally:
        await running.close()
        for acker in ackers:
            acker.close()
    acked = ackers[0].acked_seqs("m1") | ackers[1].acked_seqs("m1")
    assert set(range(last + 1)) <= acked, "every seq acknowledged"
    readings = {m.seq: m for acker in ackers for m in acker.readings("m1")}  # one copy per seq
    assert outbox.resent > 0
    counted = sum(s.delta or 0 for seq in sorted(readings) if seq <= last for s in readings[seq].samples
                  if s.quantity == "active_energy_import")
    assert counted == energy - START_WH, "energy exact: lost nowhere, counted once"


async def test_confirm_broker_deletes_on_puback_without_acks(meter: tuple[int, Meter], mqtt_url: str,
                                                             tmp_path: Path) -> None:
    site, state = unique_site(), tmp_path / "state"
    collector = Collector(mqtt_url, site)
    running = Running(agent_for(site, meter[0], mqtt_url, state, confirm="broker"))
    try:
        assert running.agent.publisher.ack_topic is None, "nothing to listen to"
        await running.until(lambda: len(collector.messages("m1")) >= 10, "ten readings")
        await running.until(lambda: min(spooled(state) or {10**9}) > 5, "PUBACKed messages deleted")
    finally:
        await running.close()
        collector.close()
    assert running.agent.outbox.awaiting_ack == 0 and running.agent.acknowledged >= 10


async def test_a_bad_acknowledgement_harms_nothing(meter: tuple[int, Meter], mqtt_url: str, tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="edge.outbox")
    site, state = unique_site(), tmp_path / "state"
    acker = Acker(mqtt_url, site)
    acker.hold(lambda m: True)
    running = Running(agent_for(site, meter[0], mqtt_url, state, ack_timeout_s=600.0))
    try:
        await running.until(lambda: len(acker.seqs("m1")) >= 3, "readings")
        running.agent.outbox._bad_ack.interval_s = 0.0  # log every one of them here
        for payload in (b"\xff\xfe", b"{", b'{"v": 2, "agent": "edge-ack", "acks": {}}', b"[" * 50_000,
                        encode_acks("someone-else", {"m1": [0, 1, 2]}), b'{"v": 1, "agent": "edge-ack", '
                        b'"acks": {"m1": [[5, 2]]}}'):
            publish_ack(acker, site, payload)
        await running.until(lambda: len([r for r in caplog.records if "ignored" in r.getMessage()]) >= 6,
                            "each bad acknowledgement logged")
        assert {0, 1, 2} <= spooled(state), "nothing deleted by them"
        acker.release()
        await running.until(lambda: not spooled(state) & {0, 1, 2}, "a good acknowledgement still works")
    finally:
        await running.close()
        acker.close()
    reasons = " | ".join(r.getMessage() for r in caplog.records)
    assert "runs backwards" in reasons and "'someone-else'" in reasons and "recursion limit" in reasons
