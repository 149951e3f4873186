"""The lean Modbus TCP client (edge.drivers.modbus.tcp) against the simulators' pymodbus server: the same
registers as pymodbus' own client for every block of every map, device refusals as exception codes, a
timed-out request's late reply never taken for the next request, a lost connection failing what waits.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusIOException

from deploy.services import free_port
from edge.config import ModbusTcpGateway, parse_config
from edge.drivers.modbus.driver import ModbusDriver
from edge.drivers.modbus.plan import plan_reads
from edge.drivers.modbus.tcp import LeanTcpClient
from edge.maps import TEMPLATES
from simulators.config import parse_config as sim_parse_config
from simulators.faults import FaultKind, FaultSpec
from simulators.plant import SimulatedPlant

pytestmark = pytest.mark.integration

# the Modbus maps of the agent's meters, with what the simulator needs to show each
SIMS: dict[str, dict[str, Any]] = {
    "schneider_pm5000": {"carrier": "electricity", "sim": {"profile": "continuous", "base_kw": 50.0, "peak_kw": 90.0}},
    "eastron_sdm630": {"carrier": "electricity", "sim": {"profile": "continuous", "base_kw": 20.0, "peak_kw": 40.0}},
    "adam6051_counter": {"carrier": "natural_gas", "pulse_m3": 0.01,
                         "sim": {"profile": "continuous", "base_m3_h": 20.0, "peak_m3_h": 60.0}},
}
MODBUS_MAPS = sorted(SIMS)


def plant_dict(port: int, tmp_path: Path) -> dict[str, Any]:
    meters = []
    for unit, name in enumerate(MODBUS_MAPS, start=1):
        meters.append({"id": f"m{unit}", "area": "a", "gateway": "gw1", "unit_id": unit, "map": name, **SIMS[name]})
    return {"site": {"id": "lean", "region": "CN", "timezone": "UTC", "start": "2026-01-01T00:00:00Z"},
            "gateways": [{"id": "gw1", "kind": "modbus_tcp", "host": "127.0.0.1", "port": port, "timeout_s": 0.5}],
            "meters": meters,
            "simulator": {"seed": 3, "acceleration": 60.0, "control_url": f"http://127.0.0.1:{free_port()}"},
            "mqtt": {"url": "mqtt://127.0.0.1:1"}, "edge": {"agent": "lean", "state_dir": str(tmp_path)}}


@pytest.fixture
async def plant(tmp_path: Path) -> AsyncIterator[tuple[SimulatedPlant, dict[str, Any], int]]:
    port = free_port()
    data = plant_dict(port, tmp_path)
    sim = SimulatedPlant(sim_parse_config(data, "<test>"), paused=True, serve_control=False)  # values stand still
    await sim.start()
    try:
        yield sim, data, port
    finally:
        await sim.stop()


async def test_reads_the_same_registers_as_pymodbus_for_every_block_of_every_map(
        plant: tuple[SimulatedPlant, dict[str, Any], int]) -> None:
    _, _, port = plant
    lean = LeanTcpClient("127.0.0.1", port, 2.0)
    reference = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0)
    assert await lean.connect() and await reference.connect()
    try:
        compared = 0
        for unit, name in enumerate(MODBUS_MAPS, start=1):
            for block in plan_reads(TEMPLATES[name], max_gap=0):
                ours = await (lean.read_holding_registers if block.function == "holding"
                              else lean.read_input_registers)(block.address, count=block.count, device_id=unit)
                theirs = await (reference.read_holding_registers if block.function == "holding"
                                else reference.read_input_registers)(block.address, count=block.count,
                                                                     device_id=unit)
                assert not ours.isError() and not theirs.isError()
                assert ours.registers == theirs.registers, (name, block.address)
                assert len(ours.registers) == block.count
                compared += 1
        assert compared >= len(MODBUS_MAPS)
        unknown = await lean.read_holding_registers(0, count=1, device_id=99)  # no meter there: the gateway says
        assert unknown.isError() and unknown.exception_code == 0x0B
    finally:
        lean.close()
        reference.close()
    assert not lean.connected


async def test_refusals_timeouts_and_late_replies(plant: tuple[SimulatedPlant, dict[str, Any], int]) -> None:
    sim, data, port = plant
    sdm = MODBUS_MAPS.index("eastron_sdm630") + 1
    lean = LeanTcpClient("127.0.0.1", port, 0.3)
    assert await lean.connect()
    try:
        good = await lean.read_input_registers(0, count=18, device_id=sdm)
        refused = await lean.read_input_registers(20, count=2, device_id=sdm)  # a gap the SDM630 does not serve
        assert refused.isError() and refused.exception_code == 2
        assert (await lean.read_holding_registers(0, count=2, device_id=sdm)).exception_code == 2  # wrong function

        sim.set_fault(f"m{sdm}", FaultSpec(fault=FaultKind.SLOW, delay_ms=900))
        with pytest.raises(ModbusIOException, match="No response"):
            await lean.read_input_registers(0, count=18, device_id=sdm)
        sim.clear_fault(f"m{sdm}")
        lean.timeout = 5.0
        # asked before the late reply to the timed-out request (18 registers) comes: that one is dropped by its id
        other = await lean.read_input_registers(0x46, count=6, device_id=sdm)
        assert not other.isError() and len(other.registers) == 6
        lean.timeout = 0.3
        assert (await lean.read_input_registers(0, count=18, device_id=sdm)).registers == good.registers

        sim.set_fault(f"m{sdm}", FaultSpec(fault=FaultKind.TIMEOUT))  # silent
        with pytest.raises(ModbusIOException, match="No response"):
            await lean.read_input_registers(0, count=18, device_id=sdm)
        sim.clear_fault(f"m{sdm}")
        assert lean.connected

        # through the driver: the reasons the agent publishes
        config = parse_config(data, "<test>")
        gateway = config.gateway("gw1")
        assert isinstance(gateway, ModbusTcpGateway)
        async with ModbusDriver(gateway) as driver:
            assert isinstance(driver._client, LeanTcpClient)
            sim.set_fault(f"m{sdm}", FaultSpec(fault=FaultKind.EXCEPTION, code=4))
            values = await driver.read(config.meters[sdm - 1])
            assert {v.reason for v in values} == {"exception code 4 (device failure)"}
            sim.set_fault(f"m{sdm}", FaultSpec(fault=FaultKind.TIMEOUT))
            values = await driver.read(config.meters[sdm - 1])
            assert {v.reason for v in values} == {"timeout: no response"}
            sim.clear_fault(f"m{sdm}")
            values = await driver.read(config.meters[sdm - 1])
            assert all(v.raw is not None and v.reason is None for v in values)
    finally:
        lean.close()


async def test_a_lost_or_refused_connection(tmp_path: Path) -> None:
    port = free_port()
    assert not await LeanTcpClient("127.0.0.1", port, 0.5).connect()  # nothing listens

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(12)  # takes one request, answers nothing, hangs up
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", port)
    try:
        lean = LeanTcpClient("127.0.0.1", port, 5.0)
        assert await lean.connect()
        with pytest.raises(ConnectionException, match="lost"):
            await lean.read_input_registers(0, count=2, device_id=1)
        assert not lean.connected
        with pytest.raises(ConnectionException, match="not connected"):
            await lean.read_input_registers(0, count=2, device_id=1)
    finally:
        server.close()
        await server.wait_closed()
