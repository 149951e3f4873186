"""The one small interface every protocol driver implements, and the explicit table of drivers by gateway kind.

A driver serves one gateway (a TCP gateway, a serial bus, an OPC UA server). It is an async context
manager; `read(meter)` returns one PointValue per point of the meter and never raises for a device
problem: a failed read becomes a bad-quality value with a reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, Self

import msgspec

from calc.schema import Quality
from edge.points import Point

if TYPE_CHECKING:
    from edge.config import Gateway, MeterDevice


class PointValue(msgspec.Struct, frozen=True, gc=False):
    """What a driver got for one point: the raw number (None when nothing usable came back) and its quality.

    A msgspec struct, not a dataclass: one is made per point per poll, and a frozen dataclass costs ten
    times as much to build."""

    point: Point
    raw: int | float | None
    quality: Quality = Quality.GOOD
    reason: str | None = None
    source_ts: datetime | None = None  # the device's own timestamp when it has one (OPC UA)


class Driver(Protocol):
    """Reads meters behind one gateway."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None: ...

    async def read(self, meter: MeterDevice) -> list[PointValue]:
        """One value per point of `meter`, in the order of `meter.all_points`."""
        ...


def bad_values(meter: MeterDevice, reason: str, quality: Quality = Quality.BAD) -> list[PointValue]:
    return [PointValue(p, None, quality, reason) for p in meter.all_points]


def _modbus(gateway: Gateway, meters: Sequence[MeterDevice]) -> Driver:
    from edge.config import OpcUaGateway
    from edge.drivers.modbus.driver import ModbusDriver

    assert not isinstance(gateway, OpcUaGateway)
    return ModbusDriver(gateway)


def _opcua(gateway: Gateway, meters: Sequence[MeterDevice]) -> Driver:
    from edge.config import OpcUaGateway
    from edge.drivers.opcua.driver import OpcUaDriver

    assert isinstance(gateway, OpcUaGateway)
    driver: Driver = OpcUaDriver(gateway, meters)
    return driver


#: gateway kind -> driver factory (imports happen on use: an agent without OPC UA never loads asyncua)
DRIVERS: dict[str, Callable[[Gateway, Sequence[MeterDevice]], Driver]] = {
    "modbus_tcp": _modbus,
    "modbus_rtu_tcp": _modbus,
    "modbus_rtu": _modbus,
    "opcua": _opcua,
}


def make_driver(gateway: Gateway, meters: Sequence[MeterDevice]) -> Driver:
    """The driver for a gateway; `meters` are the meters behind it (an OPC UA driver subscribes to them)."""
    return DRIVERS[gateway.kind](gateway, meters)
