"""A real pymodbus client reads the simulated PM5000 meters over TCP and sees what /truth says."""

from __future__ import annotations

import time

import httpx
import pytest
from pymodbus.client import AsyncModbusTcpClient

from calc.devices.schneider_pm5000 import MAP as PM5000
from calc.registers import decode
from simulators.config import ModbusTcpGateway
from simulators.plant import SimulatedPlant
from tests.simulators.conftest import eventually, plant_config, pm5000_meter

pytestmark = pytest.mark.integration

ENERGY = PM5000.point("active_energy_import")
POWER = PM5000.point("active_power")


async def read_pm5000(client: AsyncModbusTcpClient, unit_id: int) -> tuple[int, float]:
    energy = await client.read_holding_registers(ENERGY.address, count=ENERGY.registers, device_id=unit_id)
    power = await client.read_holding_registers(POWER.address, count=POWER.registers, device_id=unit_id)
    assert not energy.isError() and not power.isError(), (energy, power)
    return int(decode(ENERGY, energy.registers)), float(decode(POWER, power.registers))


def gateway_port(plant: SimulatedPlant) -> int:
    gw = plant.config.gateways[0]
    assert isinstance(gw, ModbusTcpGateway)
    return gw.port


async def test_registers_decode_to_the_truth_over_http() -> None:
    config = plant_config([pm5000_meter("press-1", 1, counter_start=5_000_000_123),
                           pm5000_meter("press-2", 2, base_kw=10.0, peak_kw=20.0)], acceleration=3600.0)
    async with SimulatedPlant(config) as plant, httpx.AsyncClient(base_url=plant.control_url, timeout=5) as http:
        assert (await http.get("/healthz")).json() == {"ok": True}
        client = AsyncModbusTcpClient("127.0.0.1", port=gateway_port(plant), timeout=3)
        await client.connect()
        try:
            async def some_energy() -> bool | None:
                truth = (await http.get("/truth")).json()
                return True if truth["meters"]["press-2"]["counters"]["active_energy_import"]["produced"] else None

            await eventually(some_energy, what="energy produced")
            truth = (await http.post("/pause")).json()
            assert truth["paused"] is True
            for meter_id, unit_id in (("press-1", 1), ("press-2", 2)):
                energy_wh, power_kw = await read_pm5000(client, unit_id)
                state = truth["meters"][meter_id]
                counter = state["counters"]["active_energy_import"]
                assert counter["unit"] == "Wh" and state["power"]["unit"] == "kW"
                assert energy_wh == counter["value"]
                assert power_kw == pytest.approx(state["power"]["value"], rel=1e-6)  # float32 on the wire
            # two meters behind one gateway are two devices, with their own values
            assert truth["meters"]["press-1"]["counters"]["active_energy_import"]["value"] >= 5_000_000_123
            assert 8.0 < truth["meters"]["press-2"]["power"]["value"] < 25.0
        finally:
            client.close()


async def test_value_read_twice_moves() -> None:
    config = plant_config([pm5000_meter("m1", 1)], acceleration=600.0)
    async with SimulatedPlant(config) as plant:
        client = AsyncModbusTcpClient("127.0.0.1", port=gateway_port(plant), timeout=3)
        await client.connect()
        try:
            first, _ = await read_pm5000(client, 1)

            async def moved() -> int | None:
                value, _ = await read_pm5000(client, 1)
                return value if value != first else None

            second = await eventually(moved, what="counter moving")
            assert second > first
        finally:
            client.close()


async def test_pause_freezes_and_truth_difference_is_the_counter_advance() -> None:
    config = plant_config([pm5000_meter("m1", 1)], acceleration=1200.0)
    async with SimulatedPlant(config, paused=True) as plant:
        client = AsyncModbusTcpClient("127.0.0.1", port=gateway_port(plant), timeout=3)
        await client.connect()
        try:
            start_wh, _ = await read_pm5000(client, 1)  # read while still paused: at 1200x a read after the
            at_resume = plant.resume()                    # resume may already see the counter move on
            assert start_wh == at_resume["meters"]["m1"]["counters"]["active_energy_import"]["value"]

            async def advanced() -> bool | None:
                value, _ = await read_pm5000(client, 1)
                return True if value > start_wh + 50 else None

            await eventually(advanced, what="counter advancing")
            at_pause = plant.pause()
            frozen = await read_pm5000(client, 1)
            # while paused, every read for half a second returns the same counter and power
            until = time.monotonic() + 0.5
            while time.monotonic() < until:
                assert await read_pm5000(client, 1) == frozen
            before = at_resume["meters"]["m1"]["counters"]["active_energy_import"]
            after = at_pause["meters"]["m1"]["counters"]["active_energy_import"]
            assert frozen[0] == after["value"]
            assert after["value"] - before["value"] == after["produced"] - before["produced"] > 0
        finally:
            client.close()


async def test_an_idle_pause_reads_zero_power_and_a_plain_pause_keeps_the_gauge() -> None:
    """`POST /pause?idle=true` stops the line (the gauge reads 0, the counter stands still); a plain pause freezes
    the gauge at its load; the resume brings the load back."""
    config = plant_config([pm5000_meter("m1", 1, base_kw=10.0, peak_kw=20.0)], acceleration=60.0)
    async with SimulatedPlant(config, paused=True) as plant, \
            httpx.AsyncClient(base_url=plant.control_url, timeout=5) as http:
        client = AsyncModbusTcpClient("127.0.0.1", port=gateway_port(plant), timeout=3)
        await client.connect()
        try:
            counter, loaded_kw = await read_pm5000(client, 1)
            assert loaded_kw > 1.0  # frozen, still showing its load
            idle = (await http.post("/pause", params={"idle": "true"})).raise_for_status().json()
            assert idle["meters"]["m1"]["power"]["value"] == 0.0
            assert await read_pm5000(client, 1) == (counter, 0.0)
            (await http.post("/resume")).raise_for_status()
            assert (await read_pm5000(client, 1))[1] > 1.0
            plain = (await http.post("/pause")).raise_for_status().json()
            assert plain["meters"]["m1"]["power"]["value"] > 1.0
            assert (await read_pm5000(client, 1))[1] == pytest.approx(plain["meters"]["m1"]["power"]["value"],
                                                                      rel=1e-6)
        finally:
            client.close()


async def test_unknown_unit_and_wrong_function_are_refused_like_a_gateway() -> None:
    config = plant_config([pm5000_meter("m1", 1)])
    async with SimulatedPlant(config) as plant:
        client = AsyncModbusTcpClient("127.0.0.1", port=gateway_port(plant), timeout=3)
        await client.connect()
        try:
            unknown = await client.read_holding_registers(ENERGY.address, count=4, device_id=9)
            assert unknown.isError() and unknown.exception_code == 0x0B
            unmapped = await client.read_holding_registers(100, count=2, device_id=1)
            assert unmapped.isError() and unmapped.exception_code == 0x02
            wrong_fc = await client.read_input_registers(ENERGY.address, count=4, device_id=1)
            assert wrong_fc.isError() and wrong_fc.exception_code == 0x02
        finally:
            client.close()
