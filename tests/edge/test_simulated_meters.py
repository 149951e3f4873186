"""Against the simulators package (an independent implementation of the same manufacturer maps): each map
decodes to the simulator's values, and injected rollover, reset and stuck faults give the right energy and flags.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from calc.schema import Flag, ReadingMessage
from deploy.services import free_port
from edge.agent import Agent
from edge.config import ModbusTcpGateway, parse_config
from edge.drivers.modbus.driver import ModbusDriver
from simulators.config import parse_config as sim_parse_config
from simulators.faults import FaultKind, FaultSpec
from simulators.plant import SimulatedPlant
from tests.edge.helpers import Collector, eventually, unique_site

pytestmark = pytest.mark.integration

START = "2026-03-02T05:50:00Z"  # a Monday, mid-shift in Asia/Shanghai


def plant_dict(site: str, port: int, mqtt_url: str, state_dir: Path, acceleration: float = 60.0) -> dict[str, Any]:
    """One plant file read by both the simulators and the edge agent (max_power_kw allows for the acceleration:
    beyond it every reading would be implausible, held for an engineer)."""
    return {
        "site": {"id": site, "region": "CN", "timezone": "Asia/Shanghai", "start": "2026-01-01T00:00:00Z"},
        "gateways": [{"id": "gw1", "kind": "modbus_tcp", "host": "127.0.0.1", "port": port, "timeout_s": 0.5}],
        "meters": [
            {"id": "pm", "area": "pressing", "carrier": "electricity", "gateway": "gw1", "unit_id": 1,
             "map": "schneider_pm5000", "interval_s": 0.2, "max_power_kw": 50_000.0,
             "sim": {"profile": "continuous", "base_kw": 100.0, "peak_kw": 200.0}},
            {"id": "sdm", "area": "painting", "carrier": "electricity", "gateway": "gw1", "unit_id": 2,
             "map": "eastron_sdm630", "interval_s": 0.2, "max_power_kw": 50_000.0,
             "sim": {"profile": "continuous", "base_kw": 50.0, "peak_kw": 80.0}},
            {"id": "gas", "area": "utilities", "carrier": "natural_gas", "gateway": "gw1", "unit_id": 3,
             "map": "adam6051_counter", "pulse_m3": 0.01, "interval_s": 0.2,
             "sim": {"profile": "continuous", "base_m3_h": 20.0, "peak_m3_h": 60.0}},
        ],
        "simulator": {"seed": 7, "acceleration": acceleration, "start": START,
                      "control_url": f"http://127.0.0.1:{free_port()}"},
        "mqtt": {"url": mqtt_url},
        "edge": {"agent": "edge-sim", "state_dir": str(state_dir)},
    }


@pytest.fixture
async def plant(tmp_path: Path, mqtt_url: str, request: pytest.FixtureRequest) -> AsyncIterator[
        tuple[SimulatedPlant, dict[str, Any]]]:
    paused = getattr(request, "param", True)
    data = plant_dict(unique_site(), free_port(), mqtt_url, tmp_path / "state")
    sim = SimulatedPlant(sim_parse_config(data, "<test>"), paused=paused, serve_control=False)
    await sim.start()
    try:
        yield sim, data
    finally:
        await sim.stop()


async def test_each_map_decodes_to_the_simulators_values(plant: tuple[SimulatedPlant, dict[str, Any]]) -> None:
    sim, data = plant
    config = parse_config(data, "<test>")
    gateway = config.gateway("gw1")
    assert isinstance(gateway, ModbusTcpGateway)
    async with ModbusDriver(gateway) as driver:
        read = {m.id: {v.point.quantity: v for v in await driver.read(m)} for m in config.meters}
        truth = sim.truth()["meters"]
        assert driver.requests == 2 + 3 + 1  # PM5000: 2 coalesced reads, SDM630: 3, ADAM: 1

    pm, sdm, gas = truth["pm"], truth["sdm"], truth["gas"]
    assert all(v.raw is not None for values in read.values() for v in values.values())
    assert pm["counters"]["active_energy_import"]["unit"] == "Wh"
    assert read["pm"]["active_energy_import"].raw == pm["counters"]["active_energy_import"]["value"]
    assert read["pm"]["active_power"].raw == pytest.approx(pm["power"]["value"], rel=1e-6)
    phases = sum(float(read["pm"][f"active_power_{p}"].raw or 0) for p in "abc")
    assert phases == pytest.approx(pm["power"]["value"], rel=1e-5)

    assert sdm["counters"]["active_energy_import"]["unit"] == "kWh"
    assert read["sdm"]["active_energy_import"].raw == pytest.approx(
        sdm["counters"]["active_energy_import"]["value"], rel=1e-6, abs=1e-3)
    assert float(read["sdm"]["active_power"].raw or 0) / 1000 == pytest.approx(sdm["power"]["value"], rel=1e-6)

    counter = gas["counters"]["pulse_count"]
    assert counter["scale"] == {"value": 0.01, "unit": "m**3"}
    assert read["gas"]["volume"].raw == counter["counts"]
    assert read["gas"]["volume"].point.scale == 0.01


def energy(messages: list[ReadingMessage], quantity: str) -> list[Any]:
    return [s for m in messages for s in m.samples if s.quantity == quantity]


async def test_rollover_reset_and_stuck_give_the_right_energy(plant: tuple[SimulatedPlant, dict[str, Any]],
                                                              mqtt_url: str) -> None:
    sim, data = plant
    site = data["site"]["id"]
    counters = {"pm": "active_energy_import", "sdm": "active_energy_import", "gas": "volume"}
    truth_key = {"pm": "active_energy_import", "sdm": "active_energy_import", "gas": "pulse_count"}
    scale = {"pm": 1.0, "sdm": 0.001, "gas": 0.01}  # the published value of one count: Wh, kWh, m3
    # pm's counter is put just below its 63-bit maximum before the agent starts, so it wraps while watched.
    # The plant stays paused until the agent has its baselines, so each baseline is a known register value
    # with a known production behind it.
    before = sim.truth()["meters"]
    wrap_gap = 8_000
    sim.set_fault("pm", FaultSpec(fault=FaultKind.ROLLOVER, counts_before_wrap=wrap_gap))
    reference = {m: (before[m]["counters"][truth_key[m]]["produced_counts"],
                     before[m]["counters"][truth_key[m]]["counts"]) for m in counters}
    reference["pm"] = (reference["pm"][0], 2**63 - wrap_gap)
    collector = Collector(mqtt_url, site)
    agent = Agent(parse_config(data, "<test>"))
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))

    def seen(meter: str, n: int) -> bool:
        return len(collector.messages(meter)) >= n

    try:
        await eventually(lambda: all(seen(m, 1) for m in counters), what="a baseline of every meter")
        sim.resume()
        await eventually(lambda: all(seen(m, 3) for m in counters), what="three readings of every meter")
        # a reset loses what the meter counted between the last reading and the reset (the quality says
        # uncertain); to check the arithmetic exactly, the reset comes right after a reading of a paused plant
        counts = sim.pause()["meters"]["gas"]["counters"]["pulse_count"]["counts"]
        await eventually(lambda: energy(collector.messages("gas"), "volume")[-1].value
                         == pytest.approx(counts * 0.01, rel=1e-9), what="gas read while paused")
        sim.set_fault("gas", FaultSpec(fault=FaultKind.COUNTER_RESET))
        sim.resume()
        sim.set_fault("sdm", FaultSpec(fault=FaultKind.STUCK))
        await eventually(lambda: any(
            Flag.ROLLOVER in s.flags for s in energy(collector.messages("pm"), counters["pm"])),
                         what="a rollover flagged on pm")
        await eventually(lambda: any(Flag.RESET in s.flags for s in energy(collector.messages("gas"), "volume")),
                         what="a reset flagged on gas")
        await eventually(lambda: any(
            Flag.STUCK in s.flags for s in energy(collector.messages("sdm"), counters["sdm"])),
                         what="the stuck sdm flagged")
        sim.clear_fault("sdm")
        n_sdm = len(collector.messages("sdm"))
        await eventually(lambda: seen("sdm", n_sdm + 3), what="sdm moving again")
        truth = sim.pause()["meters"]
        for meter in counters:
            final = truth[meter]["counters"][truth_key[meter]]["counts"]
            await eventually(lambda m=meter, f=final: energy(collector.messages(m), counters[m])[-1].value
                             == pytest.approx(f * scale[m], rel=1e-6), what=f"{meter} reading its final counter")
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
        collector.close()

    for meter, quantity in counters.items():
        samples = energy(collector.messages(meter), quantity)
        assert samples[0].flags == (Flag.FIRST,)
        produced_at_baseline, register_at_baseline = reference[meter]
        assert samples[0].value == pytest.approx(register_at_baseline * scale[meter], rel=1e-6)
        produced_counts = truth[meter]["counters"][truth_key[meter]]["produced_counts"]
        measured = sum(s.delta or 0.0 for s in samples)
        expected = (produced_counts - produced_at_baseline) * scale[meter]
        tolerance = 2e-3 if meter == "sdm" else 1e-9  # float32 kWh registers are rounded
        assert measured == pytest.approx(expected, abs=tolerance), meter
        seqs = [m.seq for m in collector.messages(meter)]
        assert seqs == list(range(len(seqs)))
    assert any(Flag.ROLLOVER in s.flags for s in energy(collector.messages("pm"), "active_energy_import"))
    stuck = [s for s in energy(collector.messages("sdm"), "active_energy_import") if Flag.STUCK in s.flags]
    assert all(s.quality == "uncertain" for s in stuck)
    # still while stuck; the last is the catch-up: counted, spread over the time since the counter last moved
    assert all(s.delta == 0 for s in stuck[:-1]) and stuck[-1].delta and stuck[-1].interval_s
    assert stuck[-1].interval_s > 0.5
    assert not any(Flag.STUCK in s.flags for s in energy(collector.messages("pm"), "active_energy_import"))


async def test_a_device_refusing_the_gap_is_read_without_it(plant: tuple[SimulatedPlant, dict[str, Any]]) -> None:
    sim, data = plant
    data["gateways"][0]["max_gap"] = 20  # SDM630: 0x34..0x35 and 0x46..0x4B merge across 16 unserved registers
    config = parse_config(data, "<test>")
    sdm = next(m for m in config.meters if m.id == "sdm")
    gateway = config.gateway("gw1")
    assert isinstance(gateway, ModbusTcpGateway)
    async with ModbusDriver(gateway) as driver:
        assert [(b.address, b.count) for b in driver.plan(sdm)] == [(0, 18), (52, 24)]
        first = {v.point.quantity: v for v in await driver.read(sdm)}
        assert [(b.address, b.count) for b in driver.plan(sdm)] == [(0, 18), (52, 2), (70, 6)]
        second = {v.point.quantity: v for v in await driver.read(sdm)}
    truth = sim.truth()["meters"]["sdm"]
    for values in (first, second):
        assert all(v.raw is not None for v in values.values()), values
        assert values["active_energy_import"].raw == pytest.approx(
            truth["counters"]["active_energy_import"]["value"], rel=1e-6, abs=1e-3)
