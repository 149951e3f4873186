"""The agent end to end: a real pymodbus server, a real Mosquitto, readings checked as a subscriber sees them, and
an acker in ingest's place (QoS 1 and ingest's acknowledgement allow a message twice: the same seq)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from calc import topics
from calc.schema import Flag, Quality, ReadingMessage
from deploy.services import Mosquitto, free_port
from edge.agent import Agent
from edge.config import load_config
from tests.edge.helpers import Acker, Collector, eventually, unique_site, write_plant
from tests.edge.modbus_server import Meter, start_tcp

pytestmark = pytest.mark.integration

START_WH = 7_500_000_000  # 7.5 GWh: beyond 32 bits, so the INT64 words all matter


def gateway(port: int) -> str:
    return f'[[gateways]]\nid = "gw1"\nkind = "modbus_tcp"\nhost = "127.0.0.1"\nport = {port}\ntimeout_s = 0.5\n'


def pm5000(meter_id: str, unit: int, interval_s: float = 0.2) -> str:
    return (f'[[meters]]\nid = "{meter_id}"\narea = "pressing"\nline = "line-1"\ncarrier = "electricity"\n'
            f'max_power_kw = 50000.0\ngateway = "gw1"\nunit_id = {unit}\nmap = "schneider_pm5000"\n'
            f'interval_s = {interval_s}\nsim = {{ profile = "shift" }}\n')


def samples(messages: list[ReadingMessage], quantity: str) -> list:
    return [s for m in messages for s in m.samples if s.quantity == quantity]


def once(messages: list[ReadingMessage]) -> list[ReadingMessage]:
    """Each message once, in seq order (a message published again has the same seq)."""
    unique = {m.seq: m for m in messages}
    return [unique[seq] for seq in sorted(unique)]


class Running:
    """An agent running on the test's loop until stopped."""

    def __init__(self, config_path: Path) -> None:
        self.agent = Agent(load_config(config_path))
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(self.agent.run(self.stop))

    async def ready(self) -> None:
        await eventually(lambda: self.agent.ready.is_set() or self.task.done(), what="agent ready")
        if self.task.done():
            self.task.result()

    async def close(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 5)


@pytest.fixture
async def meters() -> AsyncIterator[tuple[int, dict[int, Meter]]]:
    port = free_port()
    units = {1: Meter("schneider_pm5000"), 2: Meter("schneider_pm5000")}
    for unit, meter in units.items():
        meter.put("active_energy_import", START_WH * unit)
        meter.put("active_power", 42.5 * unit)
    server = await start_tcp(units, port)
    yield port, units
    await server.shutdown()


async def test_readings_decode_and_deltas_add_up(meters: tuple[int, dict[int, Meter]], mqtt_url: str,
                                                 tmp_path: Path) -> None:
    port, units = meters
    site = unique_site()
    cfg = write_plant(tmp_path / "plant.toml", site, gateway(port), pm5000("press-1", 1) + pm5000("press-2", 2),
                      mqtt_url, tmp_path / "state")
    collector = Collector(mqtt_url, site)
    acker = Acker(mqtt_url, site)
    running = Running(cfg)
    try:
        await running.ready()
        await eventually(lambda: len(collector.messages("press-1")) >= 2, what="two readings of press-1")
        first = collector.messages("press-1")[0]
        energy = samples([first], "active_energy_import")[0]
        assert (energy.value, energy.unit, energy.delta, energy.flags) == (START_WH, "Wh", None, (Flag.FIRST,))
        power = samples([first], "active_power")[0]
        assert (power.value, power.unit, power.delta, power.quality) == (42.5, "kW", None, Quality.GOOD)
        assert energy.ts.utcoffset() is not None and energy.ts.utcoffset().total_seconds() == 0
        # press-2 is a different device behind the same gateway, with its own values and topic
        await eventually(lambda: len(collector.messages("press-2")) >= 1, what="press-2")
        assert samples(collector.messages("press-2")[:1], "active_power")[0].value == 85.0
        assert topics.reading(site, "pressing", "press-2") in collector.topics()

        # the meter counts on: each new counter value is seen by at least one poll
        for new_value in (START_WH + 1_000, START_WH + 1_250, START_WH + 1_257):
            units[1].put("active_energy_import", new_value)
            await eventually(lambda v=new_value: any(s.value == v for s in samples(collector.messages("press-1"),
                                                                                     "active_energy_import")),
                             what=f"counter at {new_value}")
        await eventually(lambda: running.agent.spool.size <= 2, what="acknowledged messages leaving the spool")
    finally:
        await running.close()
        acker.close()
    msgs = once(collector.messages("press-1"))
    energy_samples = samples(msgs, "active_energy_import")
    assert sum(s.delta or 0.0 for s in energy_samples) == 1_257
    assert all(s.interval_s and s.interval_s > 0 for s in energy_samples[1:])
    assert [m.seq for m in msgs] == list(range(len(msgs)))
    assert not collector.invalid
    # retained birth, then the offline status on a clean stop
    await eventually(lambda: any(s["status"] == "offline" for s in collector.statuses()), what="offline status")
    assert collector.statuses()[0]["status"] == "online"
    collector.close()


async def test_restart_neither_loses_nor_doubles_energy(meters: tuple[int, dict[int, Meter]], mqtt_url: str,
                                                        tmp_path: Path) -> None:
    port, units = meters
    site = unique_site()
    cfg = write_plant(tmp_path / "plant.toml", site, gateway(port), pm5000("press-1", 1), mqtt_url,
                      tmp_path / "state")
    collector = Collector(mqtt_url, site)
    acker = Acker(mqtt_url, site)
    running = Running(cfg)
    await running.ready()
    await eventually(lambda: len(collector.messages()) >= 3, what="three readings")
    units[1].put("active_energy_import", START_WH + 400)
    await eventually(lambda: samples(collector.messages(), "active_energy_import")[-1].value == START_WH + 400,
                     what="counter advance seen")
    await running.close()
    last_before = max(m.seq for m in collector.messages())
    # energy used while the agent is down must show up once, in the first reading after the restart
    units[1].put("active_energy_import", START_WH + 1_000)
    running = Running(cfg)
    try:
        await running.ready()
        await eventually(lambda: max(m.seq for m in collector.messages()) >= last_before + 3,
                         what="readings after restart")
    finally:
        await running.close()
        acker.close()
    msgs = once(collector.messages())
    first_after = samples([m for m in msgs if m.seq == last_before + 1], "active_energy_import")[0]
    assert Flag.FIRST not in first_after.flags
    assert first_after.delta == 600
    assert sum(s.delta or 0.0 for s in samples(msgs, "active_energy_import")) == 1_000
    assert [m.seq for m in msgs] == list(range(len(msgs))), "seq continues across the restart"
    collector.close()


async def test_full_spool_merges_what_was_never_published_and_loses_no_energy(
        meters: tuple[int, dict[int, Meter]], mosquitto: Mosquitto, tmp_path: Path) -> None:
    port, units = meters
    site = unique_site()
    cfg = write_plant(tmp_path / "plant.toml", site, gateway(port), pm5000("press-1", 1, interval_s=0.05),
                      mosquitto.url, tmp_path / "state", edge_extra="spool_max_messages = 10")
    await asyncio.to_thread(mosquitto.stop)  # the broker is away from the start: everything goes to the spool
    running = Running(cfg)
    await running.ready()
    energy = START_WH
    await eventually(lambda: running.agent.spool.compactions >= 1, what="a full spool, compacted")
    for _ in range(3):  # the meter keeps counting while the spool merges what it holds
        energy += 111
        units[1].put("active_energy_import", energy)
        compactions = running.agent.spool.compactions
        await eventually(lambda c=compactions: running.agent.spool.compactions > c + 2, what="more compactions")
    await running.close()
    spool = running.agent.spool
    assert spool.size <= 10 and spool.refused == 0 and running.agent.published == 0

    await asyncio.to_thread(mosquitto.start)
    collector = Collector(mosquitto.url, site)
    acker = Acker(mosquitto.url, site)
    running = Running(cfg)
    try:
        await running.ready()
        await eventually(lambda: any(s.value == energy for s in samples(collector.messages(), "active_energy_import")),
                         what="the spooled readings and a fresh one")
        await eventually(lambda: running.agent.spool.size <= 2, what="the merged readings acknowledged")
    finally:
        await running.close()
        acker.close()
        collector.close()
    msgs = once(collector.messages())
    seqs = [m.seq for m in msgs]
    assert len(seqs) < seqs[-1] + 1, "merged messages leave gaps in the sequence"
    # one poll per message (batch_polls = 1): a message with more power samples than energy samples is merged
    assert any(len(samples([m], "active_power")) > len(samples([m], "active_energy_import")) for m in msgs)
    counted = sum(s.delta or 0 for s in samples(msgs, "active_energy_import"))
    assert counted == energy - START_WH, "the energy of every merged reading arrived"
    power = samples(msgs, "active_power")
    assert len({s.ts for s in power}) == len(power)


async def test_a_transient_zero_is_bridged_not_counted(meters: tuple[int, dict[int, Meter]], mqtt_url: str,
                                                       tmp_path: Path) -> None:
    """The issue's case through the real agent: one zero read of the counter is published, with the next reading,
    as a bad glitch sample without energy; the next reading counts from the last good one."""
    port, units = meters
    site = unique_site()
    cfg = write_plant(tmp_path / "plant.toml", site, gateway(port), pm5000("press-1", 1), mqtt_url,
                      tmp_path / "state")
    collector = Collector(mqtt_url, site)
    acker = Acker(mqtt_url, site)
    running = Running(cfg)

    def deferred() -> bool:  # a poll whose counter reading awaits the next: its message has power only
        return any(not samples([m], "active_energy_import") for m in collector.messages())

    try:
        await running.ready()
        await eventually(lambda: len(collector.messages()) >= 2, what="two readings")
        units[1].put("active_energy_import", 0)
        await eventually(deferred, what="the zero read, deferred")
        units[1].put("active_energy_import", START_WH + 100)
        await eventually(lambda: any(s.value == START_WH + 100 for s in samples(collector.messages(),
                                                                                "active_energy_import")),
                         what="the counter back")
    finally:
        await running.close()
        acker.close()
        collector.close()
    energy = samples(once(collector.messages()), "active_energy_import")
    glitches = [s for s in energy if s.value == 0]
    # read zero more than once: the earlier zeros are given up (the next did not move on from them), the last is the
    # glitch the good reading explains
    assert glitches and all((s.delta, s.quality) == (None, Quality.BAD) for s in glitches)
    assert glitches[-1].flags == (Flag.TRANSIENT,)
    bridged = next(s for s in energy if s.value == START_WH + 100)
    assert bridged.delta == 100 and Flag.TRANSIENT in bridged.flags
    assert sum(s.delta or 0.0 for s in energy) == 100
    times = [s.ts for s in energy]
    assert times == sorted(times)
