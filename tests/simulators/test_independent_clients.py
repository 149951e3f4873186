"""Debian's mbpoll (an independent Modbus master) reads the float32 and int64 maps, over TCP and RTU."""

from __future__ import annotations

import re
import shutil

import pytest
from pymodbus.client import AsyncModbusSerialClient
from pymodbus.exceptions import ModbusException
from pymodbus.framer import FramerType

from calc.devices.adam6051_counter import MAP as ADAM
from calc.devices.eastron_sdm630 import MAP as SDM630
from calc.devices.schneider_pm5000 import MAP as PM5000
from calc.registers import decode
from deploy.services import free_port
from simulators.faults import FaultSpec
from simulators.plant import SimulatedPlant
from tests.simulators.conftest import meter, plant_config, run_tool
from tests.socat import Socat

pytestmark = pytest.mark.integration

MBPOLL = shutil.which("mbpoll") or "mbpoll-not-installed"
LINE = re.compile(r"^\[(\d+)\]:\s+(\S+)", re.MULTILINE)


def values(output: str) -> dict[int, str]:
    return {int(ref): text for ref, text in LINE.findall(output)}


def int64_from_hex(words: list[str]) -> int:
    raw = b"".join(int(w, 16).to_bytes(2, "big") for w in words)
    return int.from_bytes(raw, "big", signed=True)


async def test_mbpoll_tcp_reads_pm5000_int64_and_sdm630_float32() -> None:
    port = free_port()
    config = plant_config([meter("pm", 1, "schneider_pm5000", sim={"counter_start": 98_765_432_100}),
                           meter("sdm", 2, "eastron_sdm630")],
                          gateways=[{"id": "gw1", "kind": "modbus_tcp", "port": port}], acceleration=600.0)
    async with SimulatedPlant(config) as plant:
        truth = plant.pause()  # values stand still while the external tool reads them
        # PM5000: 1-based register 3204, four 16-bit holding registers, most significant word first
        out = await run_tool(MBPOLL, "-m", "tcp", "-p", str(port), "-a", "1", "-t", "4:hex", "-r", "3204",
                             "-c", "4", "-1", "-o", "2", "127.0.0.1")
        words = values(out)
        assert sorted(words) == [3204, 3205, 3206, 3207]
        assert int64_from_hex([words[r] for r in range(3204, 3208)]) == \
            truth["meters"]["pm"]["counters"]["active_energy_import"]["value"] > 98_765_432_100
        # PM5000 power: float32 at register 3060, big-endian words
        out = await run_tool(MBPOLL, "-m", "tcp", "-p", str(port), "-a", "1", "-t", "4:float", "-B", "-r", "3060",
                             "-c", "1", "-1", "-o", "2", "127.0.0.1")
        assert float(values(out)[3060]) == pytest.approx(truth["meters"]["pm"]["power"]["value"], rel=1e-5)
        # SDM630: input registers, float32, PDU addresses 0x0034 (W) and 0x0048 (kWh)
        out = await run_tool(MBPOLL, "-m", "tcp", "-p", str(port), "-a", "2", "-t", "3:float", "-B", "-0",
                             "-r", str(0x34), "-c", "1", "-1", "-o", "2", "127.0.0.1")
        sdm = truth["meters"]["sdm"]
        assert float(values(out)[0x34]) == pytest.approx(sdm["power"]["value"] * 1000.0, rel=1e-5)
        out = await run_tool(MBPOLL, "-m", "tcp", "-p", str(port), "-a", "2", "-t", "3:float", "-B", "-0",
                             "-r", str(0x48), "-c", "2", "-1", "-o", "2", "127.0.0.1")
        kwh = values(out)
        assert float(kwh[0x48]) == pytest.approx(sdm["counters"]["active_energy_import"]["value"], abs=0.01)
        assert float(kwh[0x48]) > 0 and float(kwh[0x4A]) == 0.0


async def test_rtu_over_a_pty_pair_pymodbus_and_mbpoll(pty_pair: Socat) -> None:
    config = plant_config(
        [meter("pm", 1, "schneider_pm5000", gateway="line1"), meter("sdm", 2, "eastron_sdm630", gateway="line1"),
         meter("gas", 3, "adam6051_counter", gateway="line1")],
        gateways=[{"id": "line1", "kind": "modbus_rtu", "device": pty_pair.server, "baudrate": 19200}],
        acceleration=600.0)
    async with SimulatedPlant(config) as plant:
        client = AsyncModbusSerialClient(pty_pair.client, framer=FramerType.RTU, baudrate=19200, timeout=2,
                                         retries=1)
        assert await client.connect()
        try:
            truth = plant.pause()
            energy = PM5000.point("active_energy_import")
            r = await client.read_holding_registers(energy.address, count=energy.registers, device_id=1)
            assert not r.isError()
            assert decode(energy, r.registers) == truth["meters"]["pm"]["counters"]["active_energy_import"]["value"]
            power = SDM630.point("active_power")
            r = await client.read_input_registers(power.address, count=power.registers, device_id=2)
            assert decode(power, r.registers) == pytest.approx(truth["meters"]["sdm"]["power"]["value"] * 1000,
                                                               rel=1e-5)
            pulses = ADAM.point("pulse_count")
            r = await client.read_holding_registers(pulses.address, count=pulses.registers, device_id=3)
            assert decode(pulses, r.registers) == truth["meters"]["gas"]["counters"]["pulse_count"]["value"]
            # an offline meter on a serial line does not answer at all
            plant.set_fault("sdm", FaultSpec(fault="offline"))
            with pytest.raises(ModbusException):
                await client.read_input_registers(power.address, count=power.registers, device_id=2)
            plant.clear_fault("sdm")
        finally:
            client.close()
        # mbpoll as RTU master on the same line: the pymodbus client has let go of the pty
        out = await run_tool(MBPOLL, "-m", "rtu", "-b", "19200", "-P", "none", "-a", "2", "-t", "3:float", "-B",
                             "-0", "-r", str(0x48), "-c", "1", "-1", "-o", "2", pty_pair.client)
        assert float(values(out)[0x48]) == pytest.approx(
            truth["meters"]["sdm"]["counters"]["active_energy_import"]["value"], abs=0.01)
