"""A gas meter's pulse output counted by an Advantech ADAM-6051 (counter mode): uint32 in holding registers.

Source: Advantech ADAM-6000 series user manual, Modbus address mapping of the ADAM-6050/6051 digital
input channels in counter mode: channel n's 32-bit counter is at 4X registers 40001+2n and 40002+2n,
"Counter(dec) = (value of 40002) x 65536 + (value of 40001)": low word first, read with function 3.
The counter counts pulses from 0 to 4294967295 and wraps to 0; a failed module reads 0xFFFF 0xFFFF.
The gas meter's pulse weight (m3 per pulse, the scale factor) is a property of the installation, set per
meter as `pulse_m3` in the plant file: volume = counter x pulse_m3. Channels 1..3 are served and read 0
(nothing wired); the edge reads channel 0 only.
"""

from __future__ import annotations

from calc.devicemap import DeviceMap, DevicePoint
from calc.registers import DataType

ALL_ONES = 0xFFFFFFFF


def _unwired(channel: int) -> DevicePoint:
    return DevicePoint(f"counter_ch{channel}", "count", "zero", kind="counter", address=2 * channel,
                       type=DataType.U32, word_order="little", counter_width=32, not_available=ALL_ONES,
                       manual_ref=f"{40001 + 2 * channel}-{40002 + 2 * channel}", polled=False)


MAP = DeviceMap(
    name="adam6051_counter",
    device="Advantech ADAM-6051 pulse counter (gas meter pulse output on channel 0)",
    source="Advantech ADAM-6000 series user manual, ADAM-6050/6051 Modbus mapping (counter mode)",
    protocol="modbus",
    function="holding",
    points=(
        DevicePoint("volume", "m**3", "counter", kind="counter", address=0, type=DataType.U32, word_order="little",
                    counter_width=32, not_available=ALL_ONES, manual_ref="40001-40002", name="pulse_count"),
        *(_unwired(n) for n in range(1, 4)),
    ),
    counter="volume",
    rate_unit="m**3/h",
    rate_key="m3_h",
    pulse_scaled=True,
)
