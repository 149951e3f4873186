"""Built-in register-map templates: the points of common meters, from the manufacturers' published maps.

Register numbers in manuals are often 1-based (PM5000: "register 3204" is protocol address 3203); the
addresses below are protocol addresses. A meter names a template with `map = "..."`.
"""

from __future__ import annotations

from edge.points import DataType, Point

_F32 = DataType.F32

# Schneider Electric PowerLogic PM5000 series (PM5100/5300/5500), holding registers (function 3),
# big-endian words. Manual register N is protocol address N - 1.
SCHNEIDER_PM5000: tuple[Point, ...] = (
    # "Active Power Total", register 3060, FLOAT32, kW
    Point(quantity="active_power", unit="kW", address=3059, function="holding", type=_F32),
    # "Active Energy Delivered (Into Load)", register 3204, INT64, Wh
    Point(quantity="active_energy_import", unit="Wh", kind="counter", address=3203, function="holding",
          type=DataType.I64, counter_width=64),
)

# Eastron SDM630 (Modbus v2), input registers (function 4), IEEE-754 float32, big-endian words.
SDM630: tuple[Point, ...] = (
    Point(quantity="voltage_l1", unit="V", address=0x0000, function="input", type=_F32),
    Point(quantity="voltage_l2", unit="V", address=0x0002, function="input", type=_F32),
    Point(quantity="voltage_l3", unit="V", address=0x0004, function="input", type=_F32),
    Point(quantity="current_l1", unit="A", address=0x0006, function="input", type=_F32),
    Point(quantity="current_l2", unit="A", address=0x0008, function="input", type=_F32),
    Point(quantity="current_l3", unit="A", address=0x000A, function="input", type=_F32),
    Point(quantity="active_power", unit="W", address=0x0034, function="input", type=_F32),
    Point(quantity="active_energy_import", unit="kWh", kind="counter", address=0x0048, function="input",
          type=_F32),
    Point(quantity="active_energy_export", unit="kWh", kind="counter", address=0x004A, function="input",
          type=_F32),
)

TEMPLATES: dict[str, tuple[Point, ...]] = {
    "schneider_pm5000": SCHNEIDER_PM5000,
    "eastron_sdm630": SDM630,
    "sdm630": SDM630,
}


def template(name: str) -> tuple[Point, ...]:
    """The points of a built-in map; KeyError lists the known names."""
    try:
        return TEMPLATES[name]
    except KeyError:
        raise KeyError(f"unknown register map {name!r}; known: {', '.join(sorted(TEMPLATES))}") from None
