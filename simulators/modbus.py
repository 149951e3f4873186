"""Modbus servers for the simulated meters: one per gateway (TCP port or RTU serial line), one unit id per meter.

Values are rendered from the live meter state on every request (pymodbus 3.16 SimDevice action), so a
client sees them move. Faults act here as a device would show them: exception responses, silence,
late answers, frozen, NaN or random registers; a request that covers the counter register counts as one
read for the read-limited faults (transient_zero, garbage_high).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from functools import partial

from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from calc.devicemap import DeviceMap
from calc.devices import device_map
from simulators.config import ModbusRtuGateway, ModbusTcpGateway
from simulators.faults import FaultKind
from simulators.maps import DeviceValues, render
from simulators.meter import MeterSim

log = logging.getLogger(__name__)

CATCH_ALL_UNIT = 0  # pymodbus SimCore: device 0 answers for unit ids no other device claims


class ModbusGateway:
    """Serves the meters behind one gateway; `elapsed_s` gives the simulated time to integrate up to."""

    def __init__(self, gateway: ModbusTcpGateway | ModbusRtuGateway, meters: list[MeterSim],
                 elapsed_s: Callable[[], float], seed: int) -> None:
        self.gateway = gateway
        self.meters = {m.meter.unit_id: m for m in meters if m.meter.unit_id is not None}
        # per meter: its device map and the registers [lo, hi) of its counter
        self._maps: dict[str, tuple[DeviceMap, int, int]] = {}
        for m in meters:
            device = device_map(m.meter.map)
            if not device.has_counter:  # a sensor: no counter register for read-limited faults to act on
                self._maps[m.id] = (device, -1, -1)
                continue
            lo = device.counter_point.address
            assert lo is not None
            self._maps[m.id] = (device, lo, lo + device.counter_point.registers)
        self._elapsed_s = elapsed_s
        self._seed = seed
        self._random = random.Random(f"{seed}|garbage|{gateway.id}")
        self._server: ModbusTcpServer | ModbusSerialServer | None = None
        self.requests = 0
        self._rendered: dict[str, tuple[DeviceValues, dict[int, int]]] = {}  # per meter: its last values, words

    @property
    def serial(self) -> bool:
        return isinstance(self.gateway, ModbusRtuGateway)

    def _devices(self) -> list[SimDevice]:
        devices = []
        for unit_id, meter in self.meters.items():
            mmap = device_map(meter.meter.map)
            blocks = [SimData(address=a, count=n, datatype=DataType.REGISTERS) for a, n in mmap.ranges()]
            devices.append(SimDevice(id=unit_id, simdata=blocks, action=partial(self._action, meter)))
        # an unknown unit id: a TCP gateway answers 0x0B (target device failed to respond), a serial line is silent
        devices.append(SimDevice(id=CATCH_ALL_UNIT, simdata=[SimData(0, count=65535, datatype=DataType.REGISTERS)],
                                 action=self._unknown_unit))
        return devices

    async def _unknown_unit(self, *_: object) -> ExcCodes | None:
        return ExcCodes.GATEWAY_NO_RESPONSE

    async def _action(self, meter: MeterSim, function_code: int, start_address: int, address: int, count: int,
                      registers: list[int], set_values: list[int] | list[bool] | None) -> ExcCodes | None:
        self.requests += 1
        faults = meter.faults
        if FaultKind.OFFLINE in faults:
            return ExcCodes.GATEWAY_NO_RESPONSE  # on a silent line trace_packet drops it
        if (slow := faults.get(FaultKind.SLOW)) is not None:
            await asyncio.sleep(slow.delay_ms / 1000.0)
        if (exc := faults.get(FaultKind.EXCEPTION)) is not None:
            return ExcCodes(exc.code)
        mmap, counter_lo, counter_hi = self._maps[meter.id]
        if set_values is not None:
            return ExcCodes.ILLEGAL_FUNCTION  # a meter's measurements are read-only
        if function_code != mmap.function_code:
            return ExcCodes.ILLEGAL_ADDRESS if function_code in (3, 4) else ExcCodes.ILLEGAL_FUNCTION
        meter.advance(self._elapsed_s())
        if address < counter_hi and counter_lo < address + count:
            counts, rate = meter.read_counter()  # a read of the counter register: read-limited faults act on it
        else:
            counts, rate = meter.shown()
        values = DeviceValues(counter=counts, rate=rate, step=meter.steps, seed=self._seed, key=meter.id,
                              nan=FaultKind.NAN in faults, temperature_c=meter.temperature_c,
                              export_counter=meter.exported)
        last = self._rendered.get(meter.id)
        if last is not None and last[0] == values:  # a map read in several requests renders once per state
            words = last[1]
        else:
            words = render(mmap, values)
            self._rendered[meter.id] = (values, words)
        if FaultKind.GARBAGE in faults:
            words = {a: self._random.getrandbits(16) for a in words}
        for addr in range(address, address + count):
            if addr in words:
                registers[addr - start_address] = words[addr]
        return None

    def _silent(self, unit_id: int) -> bool:
        meter = self.meters.get(unit_id)
        if meter is None:
            return self.serial
        if FaultKind.TIMEOUT in meter.faults:
            return True
        if FaultKind.OFFLINE in meter.faults:
            return self.serial or getattr(self.gateway, "offline_response", "") == "silent"
        return False

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        if not sending or not data:
            return data
        unit_id = data[0] if self.serial else (data[6] if len(data) > 6 else -1)
        return b"" if self._silent(unit_id) else data

    async def start(self) -> None:
        gw = self.gateway
        devices = self._devices()
        if isinstance(gw, ModbusTcpGateway):
            self._server = ModbusTcpServer(devices, address=(gw.host, gw.port), trace_packet=self._trace_packet)
        else:
            self._server = ModbusSerialServer(devices, framer=FramerType.RTU, port=gw.device, baudrate=gw.baudrate,
                                              parity=gw.parity, stopbits=gw.stopbits,
                                              trace_packet=self._trace_packet)
        await self._server.serve_forever(background=True)
        log.info("modbus gateway %s serving %d meters", gw.id, len(self.meters))

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.shutdown()  # type: ignore[no-untyped-call]
