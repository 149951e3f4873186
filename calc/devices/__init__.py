"""The registry of device maps: every module in this package declares one `MAP` (calc.devicemap.DeviceMap).

Adding a device is adding its module here; the edge's templates, the simulators' maps and the plant-file
checks all derive from `DEVICE_MAPS`. Modules are found by listing the package, so none is named twice.
"""

from __future__ import annotations

import importlib
import pkgutil

from calc.devicemap import DeviceMap


def _discover() -> dict[str, DeviceMap]:
    found: dict[str, DeviceMap] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        device_map = getattr(module, "MAP", None)
        if not isinstance(device_map, DeviceMap):
            raise TypeError(f"{module.__name__} declares no MAP (a calc.devicemap.DeviceMap)")
        if device_map.name != info.name:
            raise ValueError(f"{module.__name__}: MAP.name is {device_map.name!r}, not the module's name")
        for name in (device_map.name, *device_map.aliases):
            if name in found:
                raise ValueError(f"device map name {name!r} is declared twice")
            found[name] = device_map
    return found


#: every map by its name and its aliases
DEVICE_MAPS: dict[str, DeviceMap] = _discover()
#: every map once, by its own name
MAPS: dict[str, DeviceMap] = {m.name: m for m in DEVICE_MAPS.values()}
MODBUS_MAPS: tuple[str, ...] = tuple(name for name, m in MAPS.items() if m.protocol == "modbus")
OPCUA_MAPS: tuple[str, ...] = tuple(name for name, m in MAPS.items() if m.protocol == "opcua")


def device_map(name: str) -> DeviceMap:
    """A map by name or alias; KeyError lists the known names."""
    try:
        return DEVICE_MAPS[name]
    except KeyError:
        raise KeyError(f"unknown register map {name!r}; known: {', '.join(sorted(DEVICE_MAPS))}") from None
