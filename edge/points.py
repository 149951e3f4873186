"""Declarative point definitions (what a register or node means) and the one pure function that decodes them.

A point is a frozen model: where the value lives (Modbus address and function, or OPC UA node), its data
type, word and byte order, scale, unit and quantity, and whether it is a cumulative counter (with its width).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from calc.units import UnitError, check_dimension


class DataType(StrEnum):
    """Register data types; each maps to a struct code and a register count (Home Assistant style table)."""

    U16 = "u16"
    I16 = "i16"
    U32 = "u32"
    I32 = "i32"
    U64 = "u64"
    I64 = "i64"
    F32 = "f32"
    F64 = "f64"


#: data type -> (struct code, registers, is integer)
TYPE_TABLE: dict[DataType, tuple[str, int, bool]] = {
    DataType.U16: ("H", 1, True),
    DataType.I16: ("h", 1, True),
    DataType.U32: ("I", 2, True),
    DataType.I32: ("i", 2, True),
    DataType.U64: ("Q", 4, True),
    DataType.I64: ("q", 4, True),
    DataType.F32: ("f", 2, False),
    DataType.F64: ("d", 4, False),
}

Function = Literal["holding", "input"]
Order = Literal["big", "little"]
Kind = Literal["counter", "gauge"]


class Point(BaseModel):
    """One value of a meter: where it lives, how to decode it, and what it means (quantity and unit).

    `unit` is the unit of the decoded value after `scale` (e.g. a register of 0.1 kWh counts with
    scale 0.1 and unit "kWh"). Counters carry their register width for rollover arithmetic; a float
    counter has no width (a backward step is always a reset).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    quantity: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_]+$")
    unit: str = Field(min_length=1, max_length=32)
    kind: Kind = "gauge"
    # Modbus
    address: int | None = Field(default=None, ge=0, le=65535, description="protocol address (0-based)")
    function: Function = "holding"
    type: DataType = DataType.F32
    word_order: Order = "big"
    byte_order: Order = "big"
    # OPC UA
    node: str | None = Field(default=None, min_length=1, description="node id, e.g. ns=2;s=Meter1.Energy")
    # both
    scale: float = Field(default=1.0, allow_inf_nan=False)
    counter_width: int | None = Field(default=None, ge=8, le=64, description="bits, for rollover")
    not_available: int | None = Field(default=None, description="raw value the device sends for 'no value'")
    min: float | None = Field(default=None, allow_inf_nan=False, description="below this: bad, out of range")
    max: float | None = Field(default=None, allow_inf_nan=False, description="above this: bad, out of range")

    @field_validator("unit")
    @classmethod
    def _known_unit(cls, unit: str) -> str:
        try:
            check_dimension(unit, unit)
        except UnitError as exc:
            raise ValueError(f"unknown unit {unit!r}") from exc
        return unit

    @model_validator(mode="after")
    def _consistent(self) -> Point:
        if self.address is None and self.node is None:
            raise ValueError("a point needs a Modbus `address` or an OPC UA `node`")
        if self.address is not None and self.address + self.registers > 65536:
            raise ValueError(f"address {self.address} + {self.registers} registers runs past 65535")
        if self.counter_width is not None and self.kind != "counter":
            raise ValueError("counter_width is only meaningful for kind = 'counter'")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min is above max")
        return self

    @property
    def registers(self) -> int:
        return TYPE_TABLE[self.type][1]

    @property
    def is_integer(self) -> bool:
        return TYPE_TABLE[self.type][2]

    @property
    def width_bits(self) -> int | None:
        """Register width for counter arithmetic: explicit, else the integer type's width, else none."""
        if self.kind != "counter":
            return None
        if self.counter_width is not None:
            return self.counter_width
        if self.node is None and self.is_integer:
            return 16 * self.registers
        return None

    def unavailable(self, raw: int | float) -> str | None:
        """A reason when the raw value is the device's "not available" pattern, else None."""
        if self.not_available is not None and raw == self.not_available:
            return f"{self.quantity}: not available (device sent {raw})"
        return None

    def out_of_range(self, value: float) -> str | None:
        """A reason when the scaled value is not plausible, else None."""
        if math.isnan(value) or math.isinf(value):
            return f"{self.quantity}: not a number ({value})"
        if self.min is not None and value < self.min:
            return f"{self.quantity}: {value} {self.unit} below min {self.min}"
        if self.max is not None and value > self.max:
            return f"{self.quantity}: {value} {self.unit} above max {self.max}"
        return None


def raw_value(point: Point, registers: Sequence[int]) -> int | float:
    """Decode a point's registers to its raw (unscaled) number: an int for integer types, else a float."""
    decoder, count = _DECODERS[point.type]
    if len(registers) != count:
        raise ValueError(f"{point.quantity}: {point.type} needs {count} registers, got {len(registers)}")
    words = registers[::-1] if point.word_order == "little" else registers
    try:
        data = _WORDS[count].pack(*words)
    except struct.error:  # not 16-bit words: their low 16 bits count
        data = _WORDS[count].pack(*(w & 0xFFFF for w in words))
    if point.byte_order == "little":
        data = bytes(data[i ^ 1] for i in range(len(data)))  # swap the two bytes of each word
    value: int | float = decoder.unpack(data)[0]
    return value


#: data type -> (big-endian struct of the value, registers); register count -> struct of that many words
_DECODERS = {t: (struct.Struct(">" + code), count) for t, (code, count, _) in TYPE_TABLE.items()}
_WORDS = {count: struct.Struct(f">{count}H") for _, count, _ in TYPE_TABLE.values()}


def raw_values(points: Sequence[tuple[Point, int]], registers: Sequence[int]) -> list[int | float]:
    """`raw_value` of each (point, offset of its first register) in one block of registers."""
    return [raw_value(point, registers[offset:offset + _DECODERS[point.type][1]]) for point, offset in points]


def encode_value(point: Point, raw: int | float) -> list[int]:
    """Inverse of raw_value (used by tests and test servers to lay out registers)."""
    code, _, is_int = TYPE_TABLE[point.type]
    data = struct.pack(">" + code, int(raw) if is_int else float(raw))
    if point.byte_order == "little":
        data = b"".join(data[i + 1:i + 2] + data[i:i + 1] for i in range(0, len(data), 2))
    words = [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]
    if point.word_order == "little":
        words.reverse()
    return words


def scaled(point: Point, raw: int | float) -> float:
    return float(raw) * point.scale
