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


def layout_table(name: str) -> str:
    """The map's register layout as a Markdown table (the README holds these; a test keeps them equal)."""
    mmap, _ = MODBUS_MAPS[name]
    rows = ["| point | manual register | protocol address | registers | type | word order | unit |",
            "|---|---|---|---|---|---|---|"]
    for p in mmap.points:
        order = "most significant first" if p.word_order == "big" else "least significant first"
        rows.append(f"| {p.name} | {p.manual_ref} | {p.address} (0x{p.address:04X}) | {p.count} | {p.dtype} "
                    f"| {order} | {p.unit or 'count'} |")
    return "\n".join(rows)
