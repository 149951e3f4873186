"""The counter faults of issue 14 (transient_zero, garbage_high, replacement), set over HTTP or from the plant file,
seen by real Modbus and OPC UA clients: a glitch lasts exactly its reads, a new meter's register continues from its
counter_start, and the ground truth (`produced`) goes on through all of them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asyncua import Client
from pymodbus.client import AsyncModbusTcpClient

from calc.devices.adam6051_counter import MAP as ADAM
from calc.devices.eastron_sdm630 import MAP as SDM630
from calc.devices.schneider_pm5000 import MAP as PM5000
from calc.registers import decode
from deploy.services import free_port
from simulators.opcua import NAMESPACE
from simulators.plant import SimulatedPlant
from tests.simulators.conftest import eventually, meter, opcua_gateway, opcua_meter, plant_config

pytestmark = pytest.mark.integration

ENERGY, POWER = PM5000.point("active_energy_import"), PM5000.point("active_power")
SDM_ENERGY = SDM630.point("active_energy_import")
PULSES = ADAM.point("pulse_count")


class Rig:
    def __init__(self, plant: SimulatedPlant, http: httpx.AsyncClient, client: AsyncModbusTcpClient) -> None:
        self.plant, self.http, self.client = plant, http, client

    async def fault(self, meter_id: str, fault: str, **params: Any) -> dict[str, Any]:
        r = await self.http.post("/faults", json={"meter": meter_id, "fault": fault} | params)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    async def counter(self, unit: int, point: Any = ENERGY, fc: int = 3) -> float | int:
        call = self.client.read_holding_registers if fc == 3 else self.client.read_input_registers
        r = await call(point.address, count=point.registers, device_id=unit)
        assert not r.isError(), r
        return decode(point, list(r.registers))

    async def truth(self, meter_id: str) -> dict[str, Any]:
        meters: dict[str, Any] = (await self.http.get("/truth")).json()["meters"]
        body: dict[str, Any] = meters[meter_id]
        return body


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    """A paused plant (the counters stand still, so every read can be compared with the truth exactly)."""
    port = free_port()
    config = plant_config(
        [meter("pm", 1, "schneider_pm5000", sim={"counter_start": 5_000_000}),
         meter("sdm", 2, "eastron_sdm630", sim={"counter_start": 7_000_000}),
         meter("gas", 3, "adam6051_counter", sim={"counter_start": 123_456})],
        gateways=[{"id": "gw1", "kind": "modbus_tcp", "port": port}], acceleration=600.0)
    async with SimulatedPlant(config, paused=True) as plant, \
            httpx.AsyncClient(base_url=plant.control_url, timeout=5) as http:
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0)
        assert await client.connect()
        try:
            yield Rig(plant, http, client)
        finally:
            client.close()


async def test_transient_zero_reads_zero_for_its_reads_then_the_truth(rig: Rig) -> None:
    true = await rig.counter(1)
    assert true == 5_000_000
    listed = await rig.fault("pm", "transient_zero", reads=2)
    assert listed["faults"] == [{"fault": "transient_zero", "delay_ms": 2000.0, "code": 4, "counts_before_wrap": 100,
                                 "status": "BadSensorFailure", "seconds": 3600.0, "reads": 2, "counts": None,
                                 "counter_start": None}]
    power = await rig.counter(1, POWER)  # a read that does not touch the counter register does not count
    assert power > 0
    assert [await rig.counter(1) for _ in range(4)] == [0, 0, true, true]
    assert (await rig.truth("pm"))["faults"] == []  # cleared itself after its reads
    # default one read; the other meters behind the gateway are untouched
    await rig.fault("sdm", "transient_zero")
    await rig.fault("gas", "transient_zero")
    assert await rig.counter(3, PULSES) == 0
    assert await rig.counter(3, PULSES) == 123_456
    assert [await rig.counter(2, SDM_ENERGY, fc=4) for _ in range(2)] == [0.0, 7000.0]


async def test_garbage_high_is_one_clean_high_read(rig: Rig) -> None:
    await rig.fault("pm", "garbage_high")
    assert await rig.counter(1) == 5_000_000 + 2**40
    assert await rig.counter(1) == 5_000_000
    await rig.fault("pm", "garbage_high", counts=2**50, reads=2)
    assert [await rig.counter(1) for _ in range(3)] == [5_000_000 + 2**50] * 2 + [5_000_000]
    # a register that wraps: 3/8 of its range ahead (over a quarter: never a plausible forward step)
    await rig.fault("gas", "garbage_high")
    assert await rig.counter(3, PULSES) == 123_456 + 3 * 2**29
    assert await rig.counter(3, PULSES) == 123_456
    await rig.fault("sdm", "garbage_high", counts=10**9)
    assert await rig.counter(2, SDM_ENERGY, fc=4) == pytest.approx(1_007_000.0)
    assert await rig.counter(2, SDM_ENERGY, fc=4) == 7000.0


async def test_replacement_continues_from_counter_start_and_the_truth_goes_on(rig: Rig) -> None:
    before = (await rig.truth("pm"))["counters"]["active_energy_import"]
    await rig.fault("pm", "replacement", counter_start=42)
    assert await rig.counter(1) == 42
    at_swap = await rig.truth("pm")
    assert at_swap["faults"] == []  # one-shot
    assert at_swap["counters"]["active_energy_import"]["produced"] == before["produced"]
    rig.plant.resume()
    try:
        async def moved() -> bool:
            return int(await rig.counter(1)) > 42 + 1000
        for _ in range(500):
            if await moved():
                break
        else:
            raise AssertionError("the new counter did not move")
    finally:
        rig.plant.pause()
    after = (await rig.truth("pm"))["counters"]["active_energy_import"]
    assert await rig.counter(1) == 42 + after["produced"] - before["produced"]  # the register counts the new energy
    assert after["counts"] == 42 + after["produced"] - before["produced"]


async def test_counter_fault_requests_are_checked(rig: Rig) -> None:
    missing = await rig.http.post("/faults", json={"meter": "pm", "fault": "replacement"})
    assert missing.status_code == 422 and "counter_start" in missing.text
    for bad in ({"reads": 0}, {"counts": 0}, {"reads": "many"}):
        r = await rig.http.post("/faults", json={"meter": "pm", "fault": "garbage_high"} | bad)
        assert r.status_code == 422, (bad, r.text)


async def test_counter_faults_from_the_plant_file() -> None:
    port = free_port()
    config = plant_config([meter("pm", 1, "schneider_pm5000", sim={
        "counter_start": 1000, "faults": [{"fault": "transient_zero", "reads": 1},
                                          {"fault": "replacement", "counter_start": 77}]})],
        gateways=[{"id": "gw1", "kind": "modbus_tcp", "port": port}])
    async with SimulatedPlant(config, paused=True):
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0)
        await client.connect()
        try:
            reads = [decode(ENERGY, list((await client.read_holding_registers(ENERGY.address, count=4,
                                                                         device_id=1)).registers)) for _ in range(2)]
        finally:
            client.close()
    assert reads == [0, 77]


class _Changes:
    """Every value change of the subscribed Totaliser, in order."""

    def __init__(self) -> None:
        self.values: list[float] = []

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        self.values.append(float(val))


async def test_opcua_totaliser_glitches_for_its_publish_cycles_and_is_replaced() -> None:
    """One publish cycle of the server is one read: a subscription sampling faster than PUBLISH_S sees each."""
    config = plant_config([opcua_meter("boiler-gas", "gas", counter_start=9_000_000)],
                          gateways=[opcua_gateway(security=["None"])], acceleration=600.0)
    async with SimulatedPlant(config, paused=True) as plant:
        endpoint = f"opc.tcp://127.0.0.1:{config.gateways[0].port}/carbonwatch/sim"  # type: ignore[union-attr]
        async with Client(endpoint, timeout=10) as client:
            idx = await client.get_namespace_index(NAMESPACE)
            node = client.get_node(f"ns={idx};s=boiler-gas.Totaliser")
            changes = _Changes()
            sub = await client.create_subscription(20, changes)
            await sub.subscribe_data_change(node, queuesize=100)

            async def seen(n: int) -> list[float] | None:
                return changes.values if len(changes.values) >= n else None

            await eventually(lambda: seen(1), what="the first value")
            assert changes.values == [pytest.approx(9000.0)]  # litres -> m3
            plant.set_fault("boiler-gas", spec("garbage_high", counts=10**12))
            plant.set_fault("boiler-gas", spec("transient_zero", reads=1))
            # transient_zero wins while both are on; each acts for its own reads
            await eventually(lambda: seen(4), what="the glitches")
            plant.set_fault("boiler-gas", spec("replacement", counter_start=1500))
            await eventually(lambda: seen(5), what="the new meter")
            assert changes.values == [pytest.approx(v) for v in (9000.0, 0.0, 9000.0 + 10**9, 9000.0, 1.5)]
            assert plant.truth()["meters"]["boiler-gas"]["counters"]["volume"]["produced_counts"] == 0


def spec(kind: str, **params: Any) -> Any:
    from simulators.faults import FaultSpec

    return FaultSpec.model_validate({"fault": kind} | params)
