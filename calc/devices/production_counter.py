"""A production line's piece counter as a PLC serves it over Modbus: uint32 count and float32 rate, function 3.

Source: carbonwatch's simulated production counter (simulators/maps renders it), laid out as a PLC's counter
block usually is (a DINT/UDINT production count, e.g. PackML's ProdProcessedCount, and a float rate in holding
registers, most significant word first). The count wraps at 2**32; a failed PLC input reads 0xFFFFFFFF. One
count is one piece; a plant counting tonnes or m2 sets the point's scale and unit inline (docs/config-reference.md).
"""

from __future__ import annotations

from calc.devicemap import DeviceMap, DevicePoint
from calc.registers import DataType

ALL_ONES = 0xFFFFFFFF

MAP = DeviceMap(
    name="production_counter",
    device="PLC production counter (pieces), carbonwatch simulated",
    source="simulators/maps rendering of a PLC counter block (UDINT count, REAL rate; words big-endian)",
    protocol="modbus",
    function="holding",
    points=(
        DevicePoint("production", "count", "counter", kind="counter", address=0, type=DataType.U32,
                    counter_width=32, not_available=ALL_ONES, manual_ref="40001-40002", name="pieces"),
        DevicePoint("production_rate", "count/h", "rate", address=2, manual_ref="40003-40004"),
    ),
    counter="production",
    rate_unit="count/h",
    rate_key="per_h",
    counts_per_rate_hour=1.0,  # one count per piece
    count_size=1.0,
)
