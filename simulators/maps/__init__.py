"""How the simulated meters show their live state in a device's points, by the declarations in calc/devices.

Each declared point says what it shows (`DevicePoint.shows`): the counter, the rate or a phase's share of it,
voltage, current, frequency, pressure, temperature, or zero; this module turns one meter's live values into
every point's value and, for Modbus maps, into register words with the one codec (calc.registers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

from calc.devicemap import DeviceMap, DevicePoint
from calc.devices import MAPS
from calc.registers import MANUAL_NAMES, encode
from calc.units import conversion_factor
from simulators.profiles import unit_normal

POWER_FACTOR = 0.92
NOMINAL_VOLTAGE_V = 230.0
NOMINAL_FREQUENCY_HZ = 50.0


@dataclass(frozen=True)
class DeviceValues:
    """The live values a map renders: counter in counts (already wrapped), rate in the map's rate unit."""

    counter: int
    rate: float
    step: int                          # simulated step index, seeds derived quantities' noise
    seed: int
    key: str
    nan: bool = False
    pressure_bar: float = 0.0          # the meter's `sim` gauge pressure and line temperature (flow computers)
    temperature_c: float = 0.0
    export_counter: int = 0            # a grid meter's export register, in counts (0: nothing generated behind it)


def _factor(from_unit: str, to_unit: str) -> float:
    return 1.0 if from_unit == to_unit else conversion_factor(from_unit, to_unit)


class _Frame:
    """One step of one meter: the noisy phase split, voltages and the rate in W, computed once when asked."""

    def __init__(self, device: DeviceMap, values: DeviceValues) -> None:
        self.device, self.v = device, values

    @cached_property
    def split(self) -> tuple[list[float], float]:
        v = self.v
        split = [1.0 / 3.0 + 0.02 * unit_normal(v.seed, v.key + "/phase", v.step * 3 + i) for i in range(3)]
        return split, sum(split)

    @cached_property
    def volts(self) -> list[float]:
        v = self.v
        return [NOMINAL_VOLTAGE_V + 1.5 * unit_normal(v.seed, v.key + "/v", v.step * 3 + i) for i in range(3)]

    def phase_rate(self, phase: int, unit: str) -> float:
        split, total = self.split
        return self.v.rate * _factor(self.device.rate_unit, unit) * split[phase] / total

    def value(self, point: DevicePoint) -> float | int:
        v, shows = self.v, point.shows
        if shows == "counter":
            size = self.device.count_size
            return v.counter if self.device.pulse_scaled or size == 1 else v.counter * size
        if shows == "export_counter":
            return v.export_counter * self.device.count_size
        if shows == "rate":
            return v.rate * _factor(self.device.rate_unit, point.unit)
        if shows == "phase_rate":
            return self.phase_rate(point.phase, point.unit)
        if shows == "voltage":
            return self.volts[point.phase] * _factor("V", point.unit)
        if shows == "current":
            amps = self.phase_rate(point.phase, "W") / (self.volts[point.phase] * POWER_FACTOR)
            return amps * _factor("A", point.unit)
        if shows == "frequency":
            hertz = NOMINAL_FREQUENCY_HZ + 0.02 * unit_normal(v.seed, v.key + "/f", v.step)
            return hertz * _factor("Hz", point.unit)
        if shows == "pressure":
            bar = v.pressure_bar * (1.0 + 0.005 * unit_normal(v.seed, v.key + "/p", v.step))
            return bar * _factor("bar", point.unit)
        if shows == "temperature":
            assert point.unit == "degC", "temperatures are declared in degC (an offset unit)"
            return v.temperature_c + 0.2 * unit_normal(v.seed, v.key + "/t", v.step)
        return 0 if point.is_integer else 0.0


def values_of(device: DeviceMap, values: DeviceValues) -> dict[str, float | int]:
    """Every point's value (in the point's unit, before the edge's scale) by the point's label."""
    frame = _Frame(device, values)
    return {p.label: frame.value(p) for p in device.points}


def _not_a_number(point: DevicePoint) -> float | int:
    """What the nan fault shows: the device's "not available" pattern, NaN for floats, all ones otherwise."""
    if point.not_available is not None:
        return point.not_available
    return -1 if point.is_integer else math.nan


def render(device: DeviceMap, values: DeviceValues) -> dict[int, int]:
    """Address -> word for every register of a Modbus map, from the live values."""
    frame = _Frame(device, values)
    out: dict[int, int] = {}
    for p in device.points:
        assert p.address is not None
        value = _not_a_number(p) if values.nan else frame.value(p)
        for i, word in enumerate(encode(p, value), start=p.address):
            out[i] = word
    return out


def layout_table(name: str) -> str:
    """The map's register layout as a Markdown table (the README holds these; a test keeps them equal)."""
    device = MAPS[name]
    rows = ["| point | manual register | protocol address | registers | type | word order | unit |",
            "|---|---|---|---|---|---|---|"]
    for p in device.points:
        assert p.address is not None
        order = "most significant first" if p.word_order == "big" else "least significant first"
        unit = "count" if device.pulse_scaled and p.kind == "counter" else p.unit
        rows.append(f"| {p.label} | {p.manual_ref} | {p.address} (0x{p.address:04X}) | {p.registers} "
                    f"| {MANUAL_NAMES[p.type]} | {order} | {unit} |")
    return "\n".join(rows)
