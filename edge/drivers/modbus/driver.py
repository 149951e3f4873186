"""Modbus driver (TCP, RTU on a serial port, RTU over TCP): coalesced reads, timeouts, jittered retries, reconnect.

One pymodbus client per gateway and one lock around it: a serial bus carries one request at a time,
and so does a pymodbus client. A device error (exception code) and a transport error (timeout, lost
connection) are told apart and become bad-quality values with a reason; nothing here raises to the caller.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self

from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from calc.registers import decode_block
from calc.schema import Quality
from edge.config import MeterDevice, ModbusRtuGateway, ModbusRtuTcpGateway, ModbusTcpGateway
from edge.drivers import PointValue, bad_values
from edge.drivers.modbus.plan import ReadBlock, plan_reads
from edge.drivers.modbus.tcp import LeanTcpClient
from edge.errors import DeviceError, TransportError
from link.backoff import backoff_delay

log = logging.getLogger(__name__)

ModbusGateway = ModbusTcpGateway | ModbusRtuTcpGateway | ModbusRtuGateway

EXCEPTION_NAMES = {
    1: "illegal function", 2: "illegal data address", 3: "illegal data value", 4: "device failure",
    5: "acknowledge", 6: "device busy", 10: "gateway path unavailable", 11: "gateway target failed to respond",
}
ILLEGAL_ADDRESS = 2


class ModbusDriver:
    """Reads the meters behind one Modbus gateway or serial bus."""

    def __init__(self, gateway: ModbusGateway, rng: random.Random | None = None) -> None:
        self.gateway = gateway
        self._rng = rng or random.Random()
        self._client: Any = None
        self._lock = asyncio.Lock()
        self._waiting = 0  # reads waiting for the lock
        self._plans: dict[str, tuple[list[ReadBlock], list[int]]] = {}
        self._no_gap: set[str] = set()
        self._connect_failures = 0
        self._next_connect = 0.0
        self.requests = 0  # counters for the bench and status
        self.errors = 0

    def _make_client(self) -> Any:
        gw = self.gateway
        common: dict[str, Any] = {"timeout": gw.timeout_s, "retries": 0, "reconnect_delay": 0.0}
        if isinstance(gw, ModbusTcpGateway):  # the lean client: a fraction of pymodbus' CPU per request
            return LeanTcpClient(gw.host, gw.port, gw.timeout_s)
        if isinstance(gw, ModbusRtuTcpGateway):
            return AsyncModbusTcpClient(gw.host, port=gw.port, framer=FramerType.RTU, **common)
        return AsyncModbusSerialClient(gw.device, framer=FramerType.RTU, baudrate=gw.baudrate, parity=gw.parity,
                                       stopbits=gw.stopbits, bytesize=gw.bytesize, **common)

    async def __aenter__(self) -> Self:
        self._client = self._make_client()  # inside the running loop, as pymodbus requires
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def plan(self, meter: MeterDevice) -> list[ReadBlock]:
        """The meter's read blocks (coalesced within max_gap, unless the device refused a gap)."""
        return self._planned(meter)[0]

    def _planned(self, meter: MeterDevice) -> tuple[list[ReadBlock], list[int]]:
        """The meter's read blocks, and where each of its points (in `all_points` order) sits among the
        blocks' points taken one block after another."""
        planned = self._plans.get(meter.id)
        if planned is None:
            gap = 0 if meter.id in self._no_gap else self.gateway.max_gap
            blocks = plan_reads(meter.all_points, gap, self.gateway.max_registers)
            where = {id(p): i for i, p in enumerate(p for block in blocks for p, _ in block.points)}
            planned = self._plans[meter.id] = (blocks, [where[id(p)] for p in meter.all_points])
        return planned

    async def _ensure_connected(self) -> None:
        if self._client.connected:
            return
        now = time.monotonic()
        if now < self._next_connect:
            raise TransportError(f"not connected to {self._where()} (next attempt in {self._next_connect - now:.1f} s)")
        try:
            ok = await asyncio.wait_for(self._client.connect(), self.gateway.timeout_s + 1.0)
        except (TimeoutError, OSError, ModbusException) as exc:
            ok = False
            log.debug("connect to %s failed: %s", self._where(), exc)
        if not ok:
            delay = backoff_delay(self._connect_failures, max(self.gateway.backoff_s, 0.1),
                                  max(self.gateway.backoff_max_s, 0.1), self._rng)
            self._connect_failures += 1
            self._next_connect = time.monotonic() + delay
            raise TransportError(f"cannot connect to {self._where()}")
        self._connect_failures = 0

    def _where(self) -> str:
        gw = self.gateway
        return f"{gw.id} ({gw.device})" if isinstance(gw, ModbusRtuGateway) else f"{gw.id} ({gw.host}:{gw.port})"

    async def _request(self, block: ReadBlock, unit_id: int) -> Sequence[int]:
        """One read with a timeout; raises DeviceError or TransportError."""
        await self._ensure_connected()
        call = (self._client.read_holding_registers if block.function == "holding"
                else self._client.read_input_registers)
        self.requests += 1
        try:  # pymodbus times the request out itself (timeout_s); no second timer around it
            response = await call(block.address, count=block.count, device_id=unit_id)
        except ModbusException as exc:  # ModbusIOException (no response), ConnectionException
            text = str(exc)
            reason = "timeout: no response" if "No response" in text or "retries" in text else f"transport: {text}"
            raise TransportError(reason[:200]) from exc
        if response.isError():
            code = getattr(response, "exception_code", 0)
            raise DeviceError(f"exception code {code} ({EXCEPTION_NAMES.get(code, 'unknown')})")
        registers: list[int] = response.registers
        if len(registers) != block.count:
            raise TransportError(f"asked {block.count} registers, got {len(registers)}")
        return registers

    async def _read_block(self, block: ReadBlock, unit_id: int) -> Sequence[int]:
        """A request with capped, jittered retries after transport errors (a device refusal is final)."""
        attempt = 0
        while True:
            try:
                return await self._request(block, unit_id)
            except TransportError:
                self.errors += 1
                if attempt >= self.gateway.retries or not self._client.connected:
                    raise
                await asyncio.sleep(backoff_delay(attempt, self.gateway.backoff_s, self.gateway.backoff_max_s,
                                                  self._rng))
                attempt += 1

    async def read(self, meter: MeterDevice) -> list[PointValue]:
        if self._client is None:
            return bad_values(meter, "driver not started")
        read: list[tuple[ReadBlock, Sequence[int]] | list[PointValue]] = []  # registers, or values already
        self._waiting += 1
        try:
            await self._lock.acquire()
        finally:
            self._waiting -= 1
        try:
            blocks, order = self._planned(meter)
            for block in blocks:
                try:
                    read.append((block, await self._read_block(block, meter.unit_id)))
                except DeviceError as exc:
                    gappy = sum(p.registers for p, _ in block.points) < block.count
                    if gappy and exc.reason.startswith(f"exception code {ILLEGAL_ADDRESS}"):
                        # the device does not serve the unused registers between points: read them apart
                        self._no_gap.add(meter.id)
                        self._plans.pop(meter.id, None)
                        apart: dict[int, PointValue] = {}
                        for sub in plan_reads([p for p, _ in block.points], 0, self.gateway.max_registers):
                            apart.update((id(v.point), v) for v in await self._read_points(sub, meter.unit_id))
                        read.append([apart[id(p)] for p, _ in block.points])
                    else:
                        read.append(self._bad(block, exc.reason))
                except TransportError as exc:
                    read.append(self._bad(block, exc.reason))
        finally:
            self._lock.release()
        if self._waiting:
            # the next meter on this gateway sends its request first; this one is decoded meanwhile
            await asyncio.sleep(0)
        got: list[PointValue] = []  # block after block, each in its points' order
        for item in read:
            got += item if isinstance(item, list) else self._decode(*item)
        return [got[i] for i in order]

    async def _read_points(self, block: ReadBlock, unit_id: int) -> list[PointValue]:
        try:
            registers = await self._read_block(block, unit_id)
        except (DeviceError, TransportError) as exc:
            return self._bad(block, exc.reason)
        return self._decode(block, registers)

    @staticmethod
    def _bad(block: ReadBlock, reason: str) -> list[PointValue]:
        return [PointValue(p, None, Quality.BAD, reason) for p, _ in block.points]

    @staticmethod
    def _decode(block: ReadBlock, registers: Sequence[int]) -> list[PointValue]:
        raws = decode_block(block.points, registers)
        return [PointValue(point, raw) for (point, _), raw in zip(block.points, raws, strict=True)]
