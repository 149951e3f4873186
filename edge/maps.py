"""Built-in register-map templates: the points of common meters, from the manufacturers' published maps.

Register numbers in manuals are often 1-based (PM5000: "register 3204" is protocol address 3203); the
addresses below are protocol addresses. A meter names a template with `map = "..."`.
"""

from __future__ import annotations

from edge.points import DataType, Point

_F32 = DataType.F32

# Schneider Electric PowerLogic PM5000 series (PM5100/5300/5500), holding registers (function 3),
# big-endian words. Manual register N is protocol address N - 1. INT64 0x8000000000000000 and float NaN
# mean "not available". The energies are signed INT64 that never go negative: they wrap at 2**63.
INT64_NA = -(1 << 63)
SCHNEIDER_PM5000: tuple[Point, ...] = (
    Point(quantity="active_power_a", unit="kW", address=3053, function="holding", type=_F32),  # reg 3054
    Point(quantity="active_power_b", unit="kW", address=3055, function="holding", type=_F32),  # reg 3056
    Point(quantity="active_power_c", unit="kW", address=3057, function="holding", type=_F32),  # reg 3058
    # "Active Power Total", register 3060, FLOAT32, kW
    Point(quantity="active_power", unit="kW", address=3059, function="holding", type=_F32),
    # "Active Energy Delivered (Into Load)", register 3204, INT64, Wh
    Point(quantity="active_energy_import", unit="Wh", kind="counter", address=3203, function="holding",
          type=DataType.I64, counter_width=63, not_available=INT64_NA),
    # "Active Energy Received (Out of Load)", register 3208, INT64, Wh
    Point(quantity="active_energy_export", unit="Wh", kind="counter", address=3207, function="holding",
          type=DataType.I64, counter_width=63, not_available=INT64_NA),
)

# Eastron SDM630 (Modbus v2), input registers (function 4), IEEE-754 float32, big-endian words;
# manual register 3xxxx is protocol address xxxx - 1.
SDM630: tuple[Point, ...] = (
    Point(quantity="voltage_l1", unit="V", address=0x0000, function="input", type=_F32),
    Point(quantity="voltage_l2", unit="V", address=0x0002, function="input", type=_F32),
    Point(quantity="voltage_l3", unit="V", address=0x0004, function="input", type=_F32),
    Point(quantity="current_l1", unit="A", address=0x0006, function="input", type=_F32),
    Point(quantity="current_l2", unit="A", address=0x0008, function="input", type=_F32),
    Point(quantity="current_l3", unit="A", address=0x000A, function="input", type=_F32),
    Point(quantity="active_power_l1", unit="W", address=0x000C, function="input", type=_F32),
    Point(quantity="active_power_l2", unit="W", address=0x000E, function="input", type=_F32),
    Point(quantity="active_power_l3", unit="W", address=0x0010, function="input", type=_F32),
    Point(quantity="active_power", unit="W", address=0x0034, function="input", type=_F32),
    Point(quantity="frequency", unit="Hz", address=0x0046, function="input", type=_F32),
    Point(quantity="active_energy_import", unit="kWh", kind="counter", address=0x0048, function="input",
          type=_F32),
    Point(quantity="active_energy_export", unit="kWh", kind="counter", address=0x004A, function="input",
          type=_F32),
)

# Advantech ADAM-6051 digital input in counter mode (a gas or water meter's pulse output), holding
# registers (function 3): channel 0's 32-bit counter at 40001 (low word) and 40002 (high word), so the
# least significant word comes first; it wraps at 2**32. A failed module reads 0xFFFF 0xFFFF. The pulse
# weight is the meter's `pulse_m3` (the point's scale), so the decoded value is m3.
ADAM6051_COUNTER: tuple[Point, ...] = (
    Point(quantity="volume", unit="m**3", kind="counter", address=0, function="holding", type=DataType.U32,
          word_order="little", counter_width=32, not_available=0xFFFFFFFF),
)

# The simulators' OPC UA flow computers (simulators/opcua.py): variables under Objects/Meters/<meter id>,
# node ids `s=<meter id>.<Name>` in namespace urn:carbonwatch:simulators (its index is looked up by URI at
# connect time). `{meter}` in a node id is replaced by the meter's id.
SIM_NS = "urn:carbonwatch:simulators"


def _node(name: str) -> str:
    return f"nsu={SIM_NS};s={{meter}}.{name}"


OPCUA_GAS: tuple[Point, ...] = (
    Point(quantity="volume_flow", unit="m**3/h", node=_node("Flow")),
    Point(quantity="volume", unit="m**3", kind="counter", node=_node("Totaliser")),
    Point(quantity="pressure", unit="bar", node=_node("Pressure")),
    Point(quantity="temperature", unit="degC", node=_node("Temperature")),
)
OPCUA_STEAM: tuple[Point, ...] = (
    Point(quantity="mass_flow", unit="kg/h", node=_node("Flow")),
    Point(quantity="mass", unit="kg", kind="counter", node=_node("Totaliser")),
    Point(quantity="pressure", unit="bar", node=_node("Pressure")),
    Point(quantity="temperature", unit="degC", node=_node("Temperature")),
)

TEMPLATES: dict[str, tuple[Point, ...]] = {
    "schneider_pm5000": SCHNEIDER_PM5000,
    "eastron_sdm630": SDM630,
    "sdm630": SDM630,
    "adam6051_counter": ADAM6051_COUNTER,
    "opcua_gas": OPCUA_GAS,
    "opcua_steam": OPCUA_STEAM,
}
#: templates whose scale is the meter's pulse weight (`pulse_m3`)
PULSE_TEMPLATES = frozenset({"adam6051_counter"})


def template(name: str) -> tuple[Point, ...]:
    """The points of a built-in map; KeyError lists the known names."""
    try:
        return TEMPLATES[name]
    except KeyError:
        raise KeyError(f"unknown register map {name!r}; known: {', '.join(sorted(TEMPLATES))}") from None
