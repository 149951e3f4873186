"""The Modbus register map of the SCADA figures (a stable contract, documented in docs/scada.md): a header at 0 and
one 32-register block per boundary from address 100 (site, then areas, then meters in plant-file order).

32-bit values are big-endian with the high word first (ABCD; mbpoll: -B). Floats are IEEE 754 float32, unknown
values are NaN. Counters are unsigned 32-bit in 0.1 kg CO2e that wrap modulo 2**32. `render` is pure; the words
come from the one register codec (calc/registers.py) that the edge and the simulators use.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from calc.registers import DataType, Order, decode, encode
from calc.schema import Quality
from scada.figures import FIGURES, BoundaryKind, Snapshot

MAP_VERSION = 1
FIRST_BLOCK = 100
BLOCK_SIZE = 32
COUNTER_KG = 0.1          # one counter step, kg CO2e
NAN_WORDS = (0x7FC0, 0x0000)

# header: address -> meaning
HEADER = {
    0: "map version (uint16)",
    1: "number of blocks (uint16)",
    2: "registers per block (uint16)",
    3: "address of the first block (uint16)",
    4: "update counter, uint32 (4-5): +1 on every recompute",
    6: "snapshot time, uint32 (6-7): Unix seconds",
    8: "number of areas (uint16)",
    9: "number of meters (uint16)",
}
# block offsets: name -> (offset, type)
BLOCK = {
    "CO2eRate": (0, "float32"),               # kg CO2e/h
    "TodayCO2e": (2, "float32"),              # kg CO2e since local midnight
    "MonthCO2e": (4, "float32"),              # kg CO2e since the 1st of the month, local time
    "TodayNetBalance": (6, "float32"),        # kg CO2e, today − offsets of today (site only)
    "MonthNetBalance": (8, "float32"),        # kg CO2e, month − offsets of the month (site only)
    "AllowanceRemaining": (10, "float32"),    # kg CO2e, NaN when no allowance applies now
    "TodayCO2eCounter": (12, "uint32"),       # 0.1 kg CO2e
    "MonthCO2eCounter": (14, "uint32"),       # 0.1 kg CO2e
    "AlertState": (16, "uint16"),             # 0 none, 1 acknowledged, 2 firing
    "ActiveAlerts": (17, "uint16"),           # open alerts targeting this boundary
    "QualityBits": (18, "uint16"),            # bit n set: figure n of FIGURES is not Good
    "SourceTime": (20, "uint32"),             # Unix seconds of the latest sample behind the figures
    "TodayKgce": (22, "float32"),             # kg of standard coal equivalent (GB/T 2589) since local midnight
    "MonthKgce": (24, "float32"),             # kgce since the 1st of the month
    "TodayIntensity": (26, "float32"),        # kg CO2e per unit of product today (site, area); NaN: none
    "TodayKgceIntensity": (28, "float32"),    # kgce per unit of product today; NaN: no production
}


class WordLayout(NamedTuple):
    """How the map's 32-bit values lie in registers, as the one register codec (calc.registers) reads it."""

    type: DataType
    word_order: Order = "big"
    byte_order: Order = "big"


FLOAT32 = WordLayout(DataType.F32)   # ABCD
UINT32 = WordLayout(DataType.U32)    # ABCD


def float_words(value: float | None) -> tuple[int, int]:
    if value is None or math.isnan(value):
        return NAN_WORDS
    hi, lo = encode(FLOAT32, value)
    return hi, lo


def uint32_words(value: int) -> tuple[int, int]:
    """The words of `value` modulo 2**32."""
    hi, lo = encode(UINT32, value)
    return hi, lo


def words_to_float(hi: int, lo: int) -> float:
    return float(decode(FLOAT32, (hi, lo)))


def counter(kg: float | None) -> int:
    """A period total as a wrapping 32-bit counter in 0.1 kg (negative or unknown: 0)."""
    if kg is None or math.isnan(kg) or kg <= 0:
        return 0
    return math.floor(kg / COUNTER_KG + 1e-9) % 2**32


def register_count(blocks: int) -> int:
    return FIRST_BLOCK + BLOCK_SIZE * blocks


def block_address(index: int) -> int:
    return FIRST_BLOCK + BLOCK_SIZE * index


def render(snapshot: Snapshot) -> list[int]:
    """Every register of the map, from address 0."""
    items = list(snapshot.items.values())
    regs = [0] * register_count(len(items))
    regs[0], regs[1], regs[2], regs[3] = MAP_VERSION, len(items), BLOCK_SIZE, FIRST_BLOCK
    regs[4], regs[5] = uint32_words(snapshot.version)
    regs[6], regs[7] = uint32_words(int(snapshot.at.timestamp()))
    regs[8] = sum(1 for f in items if f.boundary.kind is BoundaryKind.AREA)
    regs[9] = sum(1 for f in items if f.boundary.kind is BoundaryKind.METER)
    for i, figs in enumerate(items):
        base = block_address(i)
        quality = 0
        latest = None
        for n, name in enumerate(FIGURES):
            fig = figs.figures[name]
            off = BLOCK[name][0]
            regs[base + off], regs[base + off + 1] = float_words(fig.value)
            if fig.quality is not Quality.GOOD:
                quality |= 1 << n
            if fig.ts is not None and (latest is None or fig.ts > latest):
                latest = fig.ts
        for name, source in (("TodayCO2eCounter", "TodayCO2e"), ("MonthCO2eCounter", "MonthCO2e")):
            off = BLOCK[name][0]
            regs[base + off], regs[base + off + 1] = uint32_words(counter(figs.figures[source].value))
        regs[base + BLOCK["AlertState"][0]] = int(figs.alert_state)
        regs[base + BLOCK["ActiveAlerts"][0]] = min(figs.active_alerts, 0xFFFF)
        regs[base + BLOCK["QualityBits"][0]] = quality
        off = BLOCK["SourceTime"][0]
        regs[base + off], regs[base + off + 1] = uint32_words(int(latest.timestamp()) if latest else 0)
    return regs
