"""Eastron SDM630 (Modbus V2) three-phase meter: IEEE 754 float32 input registers, function 4.

Source: Eastron "SDM630 Modbus Protocol" (input register table; 30001 = protocol address 0x0000),
cross-checked with public drivers (Home Assistant / OpenEMS / EVerest SDM630 definitions).
Every value is a float32 in two registers, most significant word first (big-endian words and bytes).
  0x0000/0x0002/0x0004  Phase 1/2/3 line to neutral volts   V
  0x0006/0x0008/0x000A  Phase 1/2/3 current                 A
  0x000C/0x000E/0x0010  Phase 1/2/3 active power            W
  0x0034                Total system power                  W
  0x0046                Frequency of supply voltages        Hz
  0x0048                Total import kWh                    kWh
  0x004A                Total export kWh                    kWh
The energy registers are float32 kWh, so their resolution falls as the count grows (as on the meter).
"""

from __future__ import annotations

from simulators.maps.base import DeviceValues, ModbusMap, Point, encode
from simulators.profiles import unit_normal

POINTS = (
    Point("voltage_l1", 0x0000, "float32", "V", "voltage_l1", "30001"),
    Point("voltage_l2", 0x0002, "float32", "V", "voltage_l2", "30003"),
    Point("voltage_l3", 0x0004, "float32", "V", "voltage_l3", "30005"),
    Point("current_l1", 0x0006, "float32", "A", "current_l1", "30007"),
    Point("current_l2", 0x0008, "float32", "A", "current_l2", "30009"),
    Point("current_l3", 0x000A, "float32", "A", "current_l3", "30011"),
    Point("active_power_l1", 0x000C, "float32", "W", "active_power_l1", "30013"),
    Point("active_power_l2", 0x000E, "float32", "W", "active_power_l2", "30015"),
    Point("active_power_l3", 0x0010, "float32", "W", "active_power_l3", "30017"),
    Point("active_power", 0x0034, "float32", "W", "active_power", "30053"),
    Point("frequency", 0x0046, "float32", "Hz", "frequency", "30071"),
    Point("active_energy_import", 0x0048, "float32", "kWh", "active_energy_import", "30073"),
    Point("active_energy_export", 0x004A, "float32", "kWh", "active_energy_export", "30075"),
)

MAP = ModbusMap(
    name="eastron_sdm630",
    device="Eastron SDM630 Modbus V2",
    source="Eastron SDM630 Modbus Protocol, input registers (30001 = address 0x0000)",
    function_code=4,
    points=POINTS,
    rate_unit="kW",
    counter_point="active_energy_import",
    count_unit="Wh",
    width_bits=None,  # float32 kWh: no integer wrap
)

POWER_FACTOR = 0.92


def values_of(values: DeviceValues) -> dict[str, float]:
    """Every point's value (SI units of the map) from the live rate (kW) and counter (Wh)."""
    n = values.step
    volts = [230.0 + 1.5 * unit_normal(values.seed, values.key + "/v", n * 3 + i) for i in range(3)]
    split = [1.0 / 3.0 + 0.02 * unit_normal(values.seed, values.key + "/phase", n * 3 + i) for i in range(3)]
    total_w = values.rate * 1000.0
    phase_w = [total_w * s / sum(split) for s in split]
    amps = [w / (v * POWER_FACTOR) for w, v in zip(phase_w, volts, strict=True)]
    out = {f"voltage_l{i + 1}": volts[i] for i in range(3)}
    out |= {f"current_l{i + 1}": amps[i] for i in range(3)}
    out |= {f"active_power_l{i + 1}": phase_w[i] for i in range(3)}
    out["active_power"] = total_w
    out["frequency"] = 50.0 + 0.02 * unit_normal(values.seed, values.key + "/f", n)
    out["active_energy_import"] = values.counter / 1000.0
    out["active_energy_export"] = 0.0
    return out


def render(values: DeviceValues) -> dict[int, int]:
    vals = values_of(values)
    out: dict[int, int] = {}
    for p in POINTS:
        value = float("nan") if values.nan else vals[p.name]
        for i, word in enumerate(encode(p, value)):
            out[p.address + i] = word
    return out
