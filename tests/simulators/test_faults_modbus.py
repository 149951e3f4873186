"""Each Modbus fault, set at run time over HTTP or from the plant file, seen by a real client as on a device."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from calc.devices.adam6051_counter import MAP as ADAM
from calc.devices.eastron_sdm630 import MAP as SDM630
from calc.devices.schneider_pm5000 import MAP as PM5000
from calc.registers import decode
from deploy.services import free_port
from simulators.plant import SimulatedPlant
from tests.simulators.conftest import eventually, meter, plant_config

pytestmark = pytest.mark.integration

ENERGY, POWER = PM5000.point("active_energy_import"), PM5000.point("active_power")
PULSES = ADAM.point("pulse_count")


class Rig:
    def __init__(self, plant: SimulatedPlant, http: httpx.AsyncClient, port: int) -> None:
        self.plant, self.http, self.port = plant, http, port

    async def client(self, timeout_s: float = 2.0) -> AsyncModbusTcpClient:
        client = AsyncModbusTcpClient("127.0.0.1", port=self.port, timeout=timeout_s, retries=0)
        assert await client.connect()
        return client

    async def fault(self, meter_id: str, fault: str, **params: Any) -> None:
        r = await self.http.post("/faults", json={"meter": meter_id, "fault": fault} | params)
        assert r.status_code == 200, r.text

    async def clear(self, meter_id: str, fault: str | None = None) -> None:
        params = {"meter": meter_id} | ({"fault": fault} if fault else {})
        r = await self.http.delete("/faults", params=params)
        assert r.status_code == 200, r.text

    async def truth(self, meter_id: str) -> dict[str, Any]:
        meters: dict[str, Any] = (await self.http.get("/truth")).json()["meters"]
        return meters[meter_id]


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    port = free_port()
    config = plant_config(
        [meter("pm", 1, "schneider_pm5000"), meter("sdm", 2, "eastron_sdm630"),
         meter("gas", 3, "adam6051_counter", sim={"base_m3_h": 2000.0, "peak_m3_h": 3000.0})],
        gateways=[{"id": "gw1", "kind": "modbus_tcp", "port": port}], acceleration=600.0)
    async with SimulatedPlant(config) as plant, httpx.AsyncClient(base_url=plant.control_url, timeout=5) as http:
        yield Rig(plant, http, port)


async def read(client: AsyncModbusTcpClient, unit: int, point: Any, fc: int = 3) -> Any:
    call = client.read_holding_registers if fc == 3 else client.read_input_registers
    return await call(point.address, count=point.registers, device_id=unit)


async def test_offline_behind_a_tcp_gateway_is_exception_0b(rig: Rig) -> None:
    client = await rig.client()
    await rig.fault("pm", "offline")
    r = await read(client, 1, ENERGY)
    assert r.isError() and r.exception_code == 0x0B
    assert not (await read(client, 3, PULSES)).isError()  # the other meters behind the gateway still answer
    await rig.clear("pm", "offline")
    assert not (await read(client, 1, ENERGY)).isError()
    client.close()


async def test_timeout_fault_never_answers(rig: Rig) -> None:
    client = await rig.client(timeout_s=0.5)
    await rig.fault("gas", "timeout")
    with pytest.raises(ModbusException):
        await read(client, 3, PULSES)
    client.close()
    await rig.clear("gas")
    client = await rig.client()
    assert not (await read(client, 3, PULSES)).isError()
    client.close()


async def test_slow_answer_is_late_but_right_and_times_out_a_hasty_client(rig: Rig) -> None:
    await rig.fault("pm", "slow", delay_ms=1500)
    hasty = await rig.client(timeout_s=0.3)
    with pytest.raises(ModbusException):
        await read(hasty, 1, ENERGY)
    hasty.close()
    patient = await rig.client(timeout_s=5.0)
    r = await read(patient, 1, ENERGY)
    assert not r.isError() and decode(ENERGY, r.registers) > 0
    patient.close()


@pytest.mark.parametrize("code", [4, 6])
async def test_exception_code(rig: Rig, code: int) -> None:
    client = await rig.client()
    await rig.fault("sdm", "exception", code=code)
    r = await read(client, 2, SDM630.point("active_power"), fc=4)
    assert r.isError() and r.exception_code == code
    client.close()


async def test_stuck_freezes_then_catches_up(rig: Rig) -> None:
    client = await rig.client()
    await rig.fault("pm", "stuck")
    stuck = decode(ENERGY, (await read(client, 1, ENERGY)).registers)

    async def produced_past_stuck() -> int | None:
        truth = await rig.truth("pm")
        produced = truth["counters"]["active_energy_import"]["produced"]
        return produced if produced > stuck + 100 else None

    await eventually(produced_past_stuck, what="energy produced while stuck")
    assert decode(ENERGY, (await read(client, 1, ENERGY)).registers) == stuck
    await rig.clear("pm", "stuck")
    assert decode(ENERGY, (await read(client, 1, ENERGY)).registers) > stuck + 100
    client.close()


async def test_counter_reset_restarts_the_register_not_the_truth(rig: Rig) -> None:
    client = await rig.client()
    await eventually(lambda: _above(rig, client, 1000), what="counter above 1000 Wh")
    rig.plant.pause()
    before = await rig.truth("pm")
    await rig.fault("pm", "counter_reset")
    assert decode(ENERGY, (await read(client, 1, ENERGY)).registers) == 0
    at_reset = await rig.truth("pm")
    assert at_reset["counters"]["active_energy_import"]["value"] == 0
    assert at_reset["counters"]["active_energy_import"]["produced"] == before["counters"]["active_energy_import"][
        "produced"]
    assert at_reset["faults"] == []  # one-shot: nothing left to clear
    rig.plant.resume()
    await eventually(lambda: _above(rig, client, 0), what="counting again from zero")
    rig.plant.pause()
    now = await rig.truth("pm")
    counter = now["counters"]["active_energy_import"]
    assert counter["value"] == counter["produced"] - before["counters"]["active_energy_import"]["produced"]
    client.close()


async def _above(rig: Rig, client: AsyncModbusTcpClient, wh: int) -> bool | None:
    return True if decode(ENERGY, (await read(client, 1, ENERGY)).registers) > wh else None


async def test_rollover_of_the_32_bit_pulse_counter(rig: Rig) -> None:
    client = await rig.client()
    rig.plant.pause()
    await rig.fault("gas", "rollover", counts_before_wrap=20)
    near = decode(PULSES, (await read(client, 3, PULSES)).registers)
    assert 2**32 - 20 <= near < 2**32
    t0 = await rig.truth("gas")
    rig.plant.resume()

    async def wrapped() -> int | None:
        value = int(decode(PULSES, (await read(client, 3, PULSES)).registers))
        return value if value < near else None

    await eventually(wrapped, what="counter wrapping")
    rig.plant.pause()
    after = decode(PULSES, (await read(client, 3, PULSES)).registers)
    t1 = await rig.truth("gas")
    produced = t1["counters"]["pulse_count"]["produced"] - t0["counters"]["pulse_count"]["produced"]
    assert (after - near) % 2**32 == produced > 20
    client.close()


async def test_nan_registers(rig: Rig) -> None:
    client = await rig.client()
    for meter_id in ("pm", "sdm", "gas"):
        await rig.fault(meter_id, "nan")
    assert math.isnan(decode(POWER, (await read(client, 1, POWER)).registers))
    assert decode(ENERGY, (await read(client, 1, ENERGY)).registers) == -(2**63)
    assert math.isnan(decode(SDM630.point("active_energy_import"),
                             (await read(client, 2, SDM630.point("active_energy_import"), fc=4)).registers))
    assert decode(PULSES, (await read(client, 3, PULSES)).registers) == 2**32 - 1
    client.close()


async def test_garbage_registers_change_while_the_plant_stands_still(rig: Rig) -> None:
    client = await rig.client()
    rig.plant.pause()
    clean = [(await read(client, 2, SDM630.point("voltage_l1"), fc=4)).registers for _ in range(3)]
    assert clean[0] == clean[1] == clean[2]
    await rig.fault("sdm", "garbage")
    noisy = [tuple((await read(client, 2, SDM630.point("voltage_l1"), fc=4)).registers) for _ in range(5)]
    assert len(set(noisy)) > 1
    client.close()


async def test_fault_requests_are_checked(rig: Rig) -> None:
    assert (await rig.http.post("/faults", json={"meter": "nope", "fault": "stuck"})).status_code == 404
    bad = await rig.http.post("/faults", json={"meter": "pm", "fault": "melting"})
    assert bad.status_code == 422 and "fault" in bad.text
    wrong_kind = await rig.http.post("/faults", json={"meter": "pm", "fault": "bad_status"})
    assert wrong_kind.status_code == 400 and "OPC UA" in wrong_kind.text
    no_wrap = await rig.http.post("/faults", json={"meter": "sdm", "fault": "rollover"})
    assert no_wrap.status_code == 400 and "does not wrap" in no_wrap.text
    bad_code = await rig.http.post("/faults", json={"meter": "pm", "fault": "exception", "code": 99})
    assert bad_code.status_code == 422
    await rig.fault("pm", "stuck")
    listed = (await rig.http.get("/faults")).json()["faults"]["pm"]
    assert [f["fault"] for f in listed] == ["stuck"]


async def test_faults_from_the_plant_file() -> None:
    port = free_port()
    config = plant_config([meter("pm", 1, "schneider_pm5000", sim={"faults": [{"fault": "exception", "code": 6}]}),
                           meter("gas", 2, "adam6051_counter", sim={"counter_start": 2**32 - 5})],
                          gateways=[{"id": "gw1", "kind": "modbus_tcp", "port": port}])
    async with SimulatedPlant(config, paused=True):
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0)
        await client.connect()
        r = await read(client, 1, ENERGY)
        assert r.isError() and r.exception_code == 6
        assert decode(PULSES, (await read(client, 2, PULSES)).registers) == 2**32 - 5
        client.close()
