"""A small real Modbus server for the edge tests: pymodbus over a real socket, registers the test can change.

pymodbus 3.16 copies datastore values at start-up, so each device here serves its registers through a
SimDevice action that copies the test's current values into the response on every request.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from calc.registers import encode as encode_value
from edge.maps import template
from edge.points import Point


class Registers:
    """Register values of one device (protocol address -> 16-bit value), shared by holding and input reads."""

    def __init__(self, size: int = 4000) -> None:
        self.values = [0] * size
        self.reads = 0
        self.fail_with: ExcCodes | None = None  # answer every request with this exception code
        self.silent = False  # answer nothing (a dead device on a live bus)

    def set_point(self, point: Point, raw: int | float) -> None:
        assert point.address is not None
        for i, word in enumerate(encode_value(point, raw)):
            self.values[point.address + i] = word

    def set(self, quantity: str, raw: int | float, points: Iterable[Point]) -> None:
        self.set_point(next(p for p in points if p.quantity == quantity), raw)

    async def action(self, function_code: int, start_address: int, address: int, count: int,
                     registers: list[int], set_values: Any) -> ExcCodes | None:
        if self.silent:
            raise TimeoutError  # pymodbus drops the request: the client sees a timeout
        if self.fail_with is not None:
            return self.fail_with
        self.reads += 1
        registers[:len(self.values)] = self.values
        return None


class Meter(Registers):
    """A device laid out by one of the edge's built-in register maps."""

    def __init__(self, map_name: str, size: int = 4000) -> None:
        super().__init__(size)
        self.points = template(map_name)

    def put(self, quantity: str, raw: int | float) -> None:
        self.set(quantity, raw, self.points)


def devices(units: dict[int, Registers]) -> list[SimDevice]:
    out = []
    for unit_id, regs in units.items():
        block = SimData(0, count=len(regs.values), values=0, datatype=DataType.REGISTERS)
        out.append(SimDevice(unit_id, simdata=[block], action=regs.action))
    return out


async def start_tcp(units: dict[int, Registers], port: int, framer: FramerType = FramerType.SOCKET
                    ) -> ModbusTcpServer:
    server = ModbusTcpServer(devices(units), address=("127.0.0.1", port), framer=framer)
    await server.serve_forever(background=True)
    return server


async def start_serial(units: dict[int, Registers], port: str) -> ModbusSerialServer:
    server = ModbusSerialServer(devices(units), port=port, framer=FramerType.RTU, baudrate=115200)
    await server.serve_forever(background=True)
    return server
