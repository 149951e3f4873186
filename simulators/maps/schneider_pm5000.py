"""Schneider Electric PowerLogic PM5000 series (PM5100/PM5300/PM5500): holding registers, function 3.

Source: Schneider Electric, "PM5000 series register list" (the Modbus register list published with the
PM5300/PM5500 user manuals), cross-checked with the PM3200 user manual DOCA0006EN (same register
numbering for the 64-bit energies): register numbers are 1-based, protocol address = number - 1.
  3054/3056/3058  Active Power A/B/C         FLOAT32  kW   (words big-endian)
  3060            Active Power Total         FLOAT32  kW
  3204            Active Energy Delivered (Into Load)   INT64  Wh  (4 registers, most significant first)
  3208            Active Energy Received (Out of Load)  INT64  Wh
INT64 0x8000000000000000 and FLOAT32 NaN are the meter's "not available" values.
"""

from __future__ import annotations

from simulators.maps.base import INT64_NOT_AVAILABLE, DeviceValues, ModbusMap, Point, encode
from simulators.profiles import unit_normal

POINTS = (
    Point("active_power_a", 3053, "float32", "kW", "active_power_a", "3054"),
    Point("active_power_b", 3055, "float32", "kW", "active_power_b", "3056"),
    Point("active_power_c", 3057, "float32", "kW", "active_power_c", "3058"),
    Point("active_power", 3059, "float32", "kW", "active_power", "3060"),
    Point("active_energy_import", 3203, "int64", "Wh", "active_energy_import", "3204"),
    Point("active_energy_export", 3207, "int64", "Wh", "active_energy_export", "3208"),
)

MAP = ModbusMap(
    name="schneider_pm5000",
    device="Schneider Electric PowerLogic PM5000 series",
    source="PM5000 series Modbus register list (PM5300/PM5500 user manual); PM3200 manual DOCA0006EN",
    function_code=3,
    points=POINTS,
    rate_unit="kW",
    counter_point="active_energy_import",
    count_unit="Wh",
    width_bits=63,  # a non-negative INT64 counter
)


def render(values: DeviceValues) -> dict[int, int]:
    """Address -> word for every point, from the live values."""
    split = [1.0 / 3.0 + 0.02 * unit_normal(values.seed, values.key + "/phase", values.step * 3 + i)
             for i in range(3)]
    total = sum(split)
    power = values.rate
    phase = [power * s / total for s in split]
    out: dict[int, int] = {}
    floats = dict(zip(("active_power_a", "active_power_b", "active_power_c"), phase, strict=True))
    floats["active_power"] = power
    ints = {"active_energy_import": values.counter, "active_energy_export": 0}
    for p in POINTS:
        if p.dtype == "float32":
            value: float | int = float("nan") if values.nan else floats[p.name]
        else:
            value = INT64_NOT_AVAILABLE if values.nan else ints[p.name]
        for i, word in enumerate(encode(p, value)):
            out[p.address + i] = word
    return out
