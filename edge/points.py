"""Declarative point definitions (what a register or node means); calc.registers decodes their registers.

A point is a frozen model: where the value lives (Modbus address and function, or OPC UA node), its data
type, word and byte order, scale, unit and quantity, and whether it is a cumulative counter (with its width).
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from calc.devicemap import counter_width_bits
from calc.registers import DataType, Order, is_integer, register_count
from calc.units import known_unit

__all__ = ["DataType", "Function", "Kind", "Order", "Point", "scaled"]

Function = Literal["holding", "input"]
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
        return known_unit(unit)

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
        return register_count(self.type)

    @property
    def is_integer(self) -> bool:
        return is_integer(self.type)

    @property
    def width_bits(self) -> int | None:
        """Register width for counter arithmetic (calc.devicemap.counter_width_bits)."""
        return counter_width_bits(self.kind, self.counter_width, self.node, self.type)

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


def scaled(point: Point, raw: int | float) -> float:
    return float(raw) * point.scale
