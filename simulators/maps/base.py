"""What a register map is: its points (address, type, word order, unit) and how live values become words.

Addresses here are protocol addresses (0-based), as sent on the wire; manuals that number registers
from 1 (40001, 3204) are converted once, in each map module, and the manual's number is kept beside it.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import Literal

DataType = Literal["float32", "int64", "uint32"]
WordOrder = Literal["big", "little"]  # big: most significant word first
REGISTERS = {"float32": 2, "int64": 4, "uint32": 2}

NAN_FLOAT32 = math.nan
INT64_NOT_AVAILABLE = -0x8000000000000000  # Schneider: 0x8000000000000000 means "not available"


@dataclass(frozen=True)
class Point:
    """One value of a device's register map."""

    name: str
    address: int              # protocol address (0-based)
    dtype: DataType
    unit: str                 # pint-parsable unit of the decoded value ("" for counts)
    quantity: str             # what it measures (carbonwatch quantity names where one exists)
    manual_ref: str           # the register number as the manual writes it
    word_order: WordOrder = "big"

    @property
    def count(self) -> int:
        return REGISTERS[self.dtype]


def encode(point: Point, value: float | int) -> list[int]:
    """Words of `value` for `point` (bytes within a word are big-endian, as Modbus sends them)."""
    if point.dtype == "float32":
        raw = struct.pack(">f", float(value))
    elif point.dtype == "int64":
        raw = struct.pack(">q", int(value))
    else:
        raw = struct.pack(">I", int(value) & 0xFFFFFFFF)
    words = [int.from_bytes(raw[i:i + 2], "big") for i in range(0, len(raw), 2)]
    return words if point.word_order == "big" else words[::-1]


def decode(point: Point, words: list[int]) -> float | int:
    """Inverse of encode: the value of `point` from its words (used by tests and by the README's check)."""
    if len(words) != point.count:
        raise ValueError(f"{point.name}: expected {point.count} registers, got {len(words)}")
    ordered = words if point.word_order == "big" else words[::-1]
    raw = b"".join(w.to_bytes(2, "big") for w in ordered)
    if point.dtype == "float32":
        return float(struct.unpack(">f", raw)[0])
    if point.dtype == "int64":
        return int(struct.unpack(">q", raw)[0])
    return int(struct.unpack(">I", raw)[0])


@dataclass(frozen=True)
class DeviceValues:
    """The live values a map renders: counter in counts (already wrapped), rate in the map's rate unit."""

    counter: int
    rate: float
    step: int                          # simulated step index, seeds derived quantities' noise
    seed: int
    key: str
    nan: bool = False
    garbage: bool = False
    extra: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ModbusMap:
    """A device's Modbus map: the function code that reads it and its points."""

    name: str
    device: str
    source: str
    function_code: Literal[3, 4]
    points: tuple[Point, ...]
    rate_unit: str                    # unit of the profile's rate (kW, m3/h)
    counter_point: str                # name of the point that carries the counter
    count_unit: str                   # unit of one count of the internal counter ("Wh", "pulse")
    width_bits: int | None            # counter modulus, None when the register does not wrap

    def point(self, name: str) -> Point:
        for p in self.points:
            if p.name == name:
                return p
        raise KeyError(name)

    def ranges(self) -> list[tuple[int, int]]:
        """Contiguous (address, count) ranges that the device answers; other addresses are illegal."""
        spans = sorted((p.address, p.address + p.count) for p in self.points)
        merged: list[list[int]] = []
        for lo, hi in spans:
            if merged and lo <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        return [(lo, hi - lo) for lo, hi in merged]
