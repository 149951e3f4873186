"""What a device map declares: a meter's points (where, how encoded, what they mean) and what the simulator shows.

One declaration per device lives in `calc/devices/<name>.py`; the edge reads by it (edge/maps.py) and the
simulators render by it (simulators/maps), both through the one codec in calc.registers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from calc.registers import DataType, Order, is_integer, register_count

Kind = Literal["counter", "gauge"]
Function = Literal["holding", "input"]
Speaks = Literal["modbus", "opcua"]
#: what the simulator puts in a point (simulators/maps renders each): the meter's counter and rate, a phase's share
#: of the rate (`phase`), voltage, current (from the phase power and voltage), frequency, gauge pressure and line
#: temperature (from the meter's `sim` table), the export counter (a grid meter with on-site generation behind it:
#: what the generation sent to the grid; zero without), or zero (a register that carries nothing here)
Shows = Literal["counter", "rate", "phase_rate", "voltage", "current", "frequency", "pressure", "temperature",
                "export_counter", "zero"]


def counter_width_bits(kind: str, counter_width: int | None, node: str | None, type_: DataType) -> int | None:
    """A counter point's modulus in bits: explicit (`counter_width`), else a Modbus integer type's width, else
    none (a float register, an OPC UA variable, or not a counter). One rule for the declarations and the edge's
    inline points."""
    if kind != "counter":
        return None
    if counter_width is not None:
        return counter_width
    if node is None and is_integer(type_):
        return 16 * register_count(type_)
    return None


@dataclass(frozen=True, slots=True)
class DevicePoint:
    """One value of a device: where it lives (Modbus address or OPC UA variable), its encoding and its meaning.

    `unit` is the unit of the value as the edge reports it, after the meter's scale (for a pulse counter, the
    pulse weight `pulse_m3` makes counts into m3). `name` is the device's own name for it (the manual's, the
    simulator's truth); it defaults to the quantity.
    """

    quantity: str
    unit: str
    shows: Shows
    kind: Kind = "gauge"
    # Modbus
    address: int | None = None       # protocol address (0-based)
    type: DataType = DataType.F32
    word_order: Order = "big"        # big: most significant word first
    byte_order: Order = "big"
    manual_ref: str = ""             # the register as the manual numbers it ("3204", "40001-40002")
    # OPC UA
    node: str | None = None          # variable name under the meter: node id s=<meter id>.<node>
    ua_unit: tuple[str, str] | None = None  # EngineeringUnits: (UN/CEFACT common code, display name)
    # both
    counter_width: int | None = None  # bits, for rollover (None: an integer type's width, a float's none)
    not_available: int | None = None  # raw value the device sends for "no value" (also the simulator's nan fault)
    phase: int = 0                   # which phase (0, 1, 2) a per-phase point is
    polled: bool = True              # False: the device serves it but the edge does not read it (an unwired input)
    name: str = ""

    @property
    def label(self) -> str:
        """The device's name for the point (manual, simulator truth), else its quantity."""
        return self.name or self.quantity

    @property
    def registers(self) -> int:
        return register_count(self.type)

    @property
    def is_integer(self) -> bool:
        return is_integer(self.type)

    @property
    def width_bits(self) -> int | None:
        """The counter's modulus in bits (see `counter_width_bits`)."""
        return counter_width_bits(self.kind, self.counter_width, self.node, self.type)


@dataclass(frozen=True, slots=True)
class DeviceMap:
    """A device's map: its points and how the simulator's counter and load profile relate to them.

    A sensor without a counter (an outdoor temperature transmitter) has `counter` None and no rate: the
    simulator shows its gauges only (their values come from the meter's `sim` table).

    The simulator integrates its profile (in `rate_unit`, named `base_<rate_key>`/`peak_<rate_key>` in a
    meter's `sim` table) into an integer counter: `counts_per_rate_hour` counts per (rate unit x hour), each
    count worth `count_size` in the counter point's unit. A `pulse_scaled` map counts pulses instead: the
    meter's `pulse_m3` is both the edge's scale and the simulator's count size, and these two are unused.
    """

    name: str
    device: str
    source: str
    protocol: Speaks
    points: tuple[DevicePoint, ...]
    counter: str | None              # quantity of the point that carries the cumulative counter (None: a sensor)
    rate_unit: str = ""
    rate_key: str = ""
    counts_per_rate_hour: float = 1.0
    count_size: float = 1.0
    pulse_scaled: bool = False
    function: Function = "holding"   # Modbus: which registers (holding: function 3, input: function 4)
    namespace: str = ""              # OPC UA: namespace URI of the variables
    aliases: tuple[str, ...] = ()    # other names a plant file may use for it

    @property
    def function_code(self) -> int:
        return 3 if self.function == "holding" else 4

    @property
    def has_counter(self) -> bool:
        return self.counter is not None

    @property
    def counter_point(self) -> DevicePoint:
        """The counter's point; KeyError for a sensor without one."""
        if self.counter is None:
            raise KeyError(f"{self.name} is a sensor without a counter")
        return self.point(self.counter)

    @property
    def width_bits(self) -> int | None:
        return self.counter_point.width_bits if self.counter is not None else None

    def point(self, name: str) -> DevicePoint:
        """A point by its quantity or its device name; KeyError names the map."""
        for p in self.points:
            if name in (p.quantity, p.label):
                return p
        raise KeyError(f"{self.name} has no point {name!r}")

    def ranges(self) -> list[tuple[int, int]]:
        """Contiguous (address, count) ranges that the device answers; other addresses are illegal."""
        spans = sorted((p.address, p.address + p.registers) for p in self.points if p.address is not None)
        merged: list[list[int]] = []
        for lo, hi in spans:
            if merged and lo <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        return [(lo, hi - lo) for lo, hi in merged]
