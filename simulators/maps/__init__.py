"""Register maps of real devices, one module per device, looked up by the name used in plant files."""

from __future__ import annotations

from collections.abc import Callable

from simulators.maps import adam6051_counter, eastron_sdm630, schneider_pm5000
from simulators.maps.base import DeviceValues, ModbusMap

Renderer = Callable[[DeviceValues], dict[int, int]]

MODBUS_MAPS: dict[str, tuple[ModbusMap, Renderer]] = {
    schneider_pm5000.MAP.name: (schneider_pm5000.MAP, schneider_pm5000.render),
    eastron_sdm630.MAP.name: (eastron_sdm630.MAP, eastron_sdm630.render),
    adam6051_counter.MAP.name: (adam6051_counter.MAP, adam6051_counter.render),
}
