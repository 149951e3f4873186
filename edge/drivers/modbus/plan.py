"""Coalescing: a meter's Modbus points grouped into as few register reads as the protocol allows (pure).

Neighbouring points of the same function are merged while the request stays within `max_registers`
(the protocol caps a read at 125 registers) and the unused registers between them stay within `max_gap`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from edge.points import Function, Point


@dataclass(frozen=True, slots=True)
class ReadBlock:
    """One read request: function, start address, register count, and where each point sits in it."""

    function: Function
    address: int
    count: int
    points: tuple[tuple[Point, int], ...]  # (point, offset of its first register in the block)


def plan_reads(points: Iterable[Point], max_gap: int = 0, max_registers: int = 125) -> list[ReadBlock]:
    """Group points into read blocks; every point lands in exactly one block."""
    if not 1 <= max_registers <= 125:
        raise ValueError("max_registers must be within 1..125")
    blocks: list[ReadBlock] = []
    by_function: dict[str, list[Point]] = {}
    for point in points:
        if point.address is None:
            raise ValueError(f"point {point.quantity!r} has no Modbus address")
        by_function.setdefault(point.function, []).append(point)
    for function, group in sorted(by_function.items()):
        group.sort(key=lambda p: (p.address or 0, -p.registers))
        start = end = -1
        members: list[tuple[Point, int]] = []
        for point in group:
            addr = point.address or 0
            stop = addr + point.registers
            if members and addr - end <= max_gap and max(end, stop) - start <= max_registers:
                end = max(end, stop)
                members.append((point, addr - start))
                continue
            if members:
                blocks.append(ReadBlock(function, start, end - start, tuple(members)))  # type: ignore[arg-type]
            start, end, members = addr, stop, [(point, 0)]
        if members:
            blocks.append(ReadBlock(function, start, end - start, tuple(members)))  # type: ignore[arg-type]
    return blocks
