"""The Modbus driver's order of work on a shared gateway (pure: a fake client records what happens when)."""

from __future__ import annotations

import asyncio
from typing import Any

from calc.registers import encode as encode_value
from edge.config import MeterDevice, ModbusTcpGateway
from edge.drivers.modbus.driver import ModbusDriver
from edge.maps import SCHNEIDER_PM5000


class Registers:
    def __init__(self, registers: list[int]) -> None:
        self.registers = registers

    def isError(self) -> bool:  # pymodbus' name
        return False


class RecordingClient:
    """Answers every read with the PM5000's registers for power 42.5 kW, after a pause, and logs requests."""

    connected = True

    def __init__(self, log: list[str]) -> None:
        self.log = log
        words: dict[int, int] = {}
        for point in SCHNEIDER_PM5000:
            assert point.address is not None
            value = 1_000 if point.kind == "counter" else 42.5
            words.update(enumerate(encode_value(point, value), start=point.address))
        self.words = words

    async def read_holding_registers(self, address: int, count: int, device_id: int) -> Registers:
        self.log.append(f"request unit {device_id} @{address}")
        await asyncio.sleep(0.001)
        return Registers([self.words.get(a, 0) for a in range(address, address + count)])

    def close(self) -> None:
        pass


async def test_the_next_meter_is_asked_before_the_last_one_is_decoded() -> None:
    log: list[str] = []
    gateway = ModbusTcpGateway(id="gw", kind="modbus_tcp")
    meters = [MeterDevice(id=f"m{u}", area="a", gateway="gw", unit_id=u, map="schneider_pm5000") for u in (1, 2)]
    driver = ModbusDriver(gateway)
    driver._client = RecordingClient(log)
    decode = driver._decode

    def logged_decode(*args: Any) -> Any:
        log.append("decode")
        return decode(*args)

    driver._decode = logged_decode  # type: ignore[method-assign]
    first, second = await asyncio.gather(driver.read(meters[0]), driver.read(meters[1]))
    # both blocks of meter 1 are read, then meter 2's first request goes out before meter 1 is decoded
    assert log[:4] == ["request unit 1 @3053", "request unit 1 @3203", "request unit 2 @3053", "decode"]
    assert [v.raw for v in first] == [v.raw for v in second] == [42.5] * 4 + [1_000] * 2
    assert [v.point.quantity for v in first] == [p.quantity for p in meters[0].all_points]


async def test_a_lone_meter_does_not_wait_for_a_turn_of_the_loop() -> None:
    log: list[str] = []
    driver = ModbusDriver(ModbusTcpGateway(id="gw", kind="modbus_tcp"))
    driver._client = RecordingClient(log)
    meter = MeterDevice(id="m1", area="a", gateway="gw", unit_id=1, map="schneider_pm5000")
    values = await driver.read(meter)
    assert driver._waiting == 0 and len(values) == len(SCHNEIDER_PM5000)


async def test_a_read_cancelled_while_waiting_for_the_gateway_leaves_no_waiter_behind() -> None:
    driver = ModbusDriver(ModbusTcpGateway(id="gw", kind="modbus_tcp"))
    driver._client = RecordingClient([])
    meter = MeterDevice(id="m1", area="a", gateway="gw", unit_id=1, map="schneider_pm5000")
    await driver._lock.acquire()
    waiting = asyncio.create_task(driver.read(meter))
    await asyncio.sleep(0)
    assert driver._waiting == 1
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    driver._lock.release()
    assert driver._waiting == 0 and not driver._lock.locked()
