"""The one Modbus register codec: data types, word and byte order, words -> number (the edge) and back (the simulators).

A value of `registers` 16-bit words; bytes within a word are big-endian on the wire unless `byte_order` says
otherwise, and `word_order` says which word comes first ("big": most significant first).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from enum import StrEnum
from typing import Literal, Protocol


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
#: the names manuals and Modbus tools use for the types (README tables)
MANUAL_NAMES: dict[DataType, str] = {
    DataType.U16: "uint16", DataType.I16: "int16", DataType.U32: "uint32", DataType.I32: "int32",
    DataType.U64: "uint64", DataType.I64: "int64", DataType.F32: "float32", DataType.F64: "float64",
}

Order = Literal["big", "little"]


class Layout(Protocol):
    """How a value lies in registers: what the codec needs of a point (edge and simulator points both have it)."""

    @property
    def type(self) -> DataType: ...
    @property
    def word_order(self) -> Order: ...
    @property
    def byte_order(self) -> Order: ...


def register_count(data_type: DataType) -> int:
    return TYPE_TABLE[data_type][1]


def is_integer(data_type: DataType) -> bool:
    return TYPE_TABLE[data_type][2]


#: data type -> (big-endian struct of the value, registers); register count -> struct of that many words
_CODECS = {t: (struct.Struct(">" + code), count) for t, (code, count, _) in TYPE_TABLE.items()}
_WORDS = {count: struct.Struct(f">{count}H") for _, count, _ in TYPE_TABLE.values()}
_FLOATS = frozenset(t for t, (_, _, integer) in TYPE_TABLE.items() if not integer)
_UNSIGNED_MASK = {t: (1 << (16 * count)) - 1 for t, (code, count, _) in TYPE_TABLE.items() if code.isupper()}


def decode(layout: Layout, registers: Sequence[int]) -> int | float:
    """A value's registers -> its raw (unscaled) number: an int for integer types, else a float."""
    codec, count = _CODECS[layout.type]
    if len(registers) != count:
        raise ValueError(f"{layout.type} needs {count} registers, got {len(registers)}")
    words = registers[::-1] if layout.word_order == "little" else registers
    try:
        data = _WORDS[count].pack(*words)
    except struct.error:  # not 16-bit words: their low 16 bits count
        data = _WORDS[count].pack(*(w & 0xFFFF for w in words))
    if layout.byte_order == "little":
        data = bytes(data[i ^ 1] for i in range(len(data)))  # swap the two bytes of each word
    value: int | float = codec.unpack(data)[0]
    return value


def decode_block(layouts: Sequence[tuple[Layout, int]], registers: Sequence[int]) -> list[int | float]:
    """`decode` of each (layout, offset of its first register) in one block of registers."""
    return [decode(layout, registers[offset:offset + _CODECS[layout.type][1]]) for layout, offset in layouts]


def encode(layout: Layout, raw: int | float) -> list[int]:
    """Inverse of decode: the words of a raw number (an unsigned integer is taken modulo its width)."""
    data_type = layout.type
    codec, count = _CODECS[data_type]
    if data_type in _FLOATS:
        data = codec.pack(float(raw))
    else:
        mask = _UNSIGNED_MASK.get(data_type)
        data = codec.pack(int(raw) & mask if mask is not None else int(raw))
    if layout.byte_order == "little":
        data = bytes(data[i ^ 1] for i in range(len(data)))
    words = list(_WORDS[count].unpack(data))
    if layout.word_order == "little":
        words.reverse()
    return words
