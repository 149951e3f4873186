"""Modbus TCP server (pymodbus 3.16) of the register map in scada/registers.py: holding (FC 3) and input (FC 4)
registers hold the same read-only map; writes are refused. Values are rendered from the latest snapshot on each
request (a SimDevice action), since pymodbus' datastores copy values at start.
"""

from __future__ import annotations

import logging

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from scada.config import ModbusSettings
from scada.figures import Snapshot
from scada.registers import render

log = logging.getLogger("carbonwatch.scada.modbus")

CATCH_ALL_UNIT = 0        # pymodbus: device 0 answers for unit ids no other device claims
READ_CODES = (3, 4)


class ModbusSink:
    def __init__(self, settings: ModbusSettings, port: int | None = None) -> None:
        self.settings = settings
        self.port = port or settings.port
        self.words: list[int] = []
        self.requests = 0
        self._server: ModbusTcpServer | None = None

    async def _action(self, function_code: int, start_address: int, address: int, count: int,
                      registers: list[int], set_values: list[int] | list[bool] | None) -> ExcCodes | None:
        self.requests += 1
        if set_values is not None or function_code not in READ_CODES:
            return ExcCodes.ILLEGAL_FUNCTION       # the figures are computed, not set from outside
        words = self.words
        if address + count > len(words):
            return ExcCodes.ILLEGAL_ADDRESS
        for addr in range(address, address + count):
            registers[addr - start_address] = words[addr]
        return None

    async def _unknown_unit(self, *_: object) -> ExcCodes | None:
        return ExcCodes.GATEWAY_NO_RESPONSE

    async def start(self, snapshot: Snapshot) -> None:
        self.words = render(snapshot)
        devices = [
            SimDevice(id=self.settings.unit_id,
                      simdata=[SimData(0, count=len(self.words), datatype=DataType.REGISTERS)], action=self._action),
            SimDevice(id=CATCH_ALL_UNIT, simdata=[SimData(0, count=1, datatype=DataType.REGISTERS)],
                      action=self._unknown_unit),
        ]
        self._server = ModbusTcpServer(devices, address=(self.settings.host, self.port))
        await self._server.serve_forever(background=True)
        log.info("Modbus TCP server on %s:%d unit %d, %d registers", self.settings.host, self.port,
                 self.settings.unit_id, len(self.words))

    async def update(self, snapshot: Snapshot) -> None:
        words = render(snapshot)
        if len(words) == len(self.words):
            self.words = words
        else:   # the block count is fixed by the plant file; a mismatch is a bug, not data
            log.error("register map changed size (%d -> %d); keeping the old map", len(self.words), len(words))

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.shutdown()  # type: ignore[no-untyped-call]
