"""A gas meter's pulse output counted by an Advantech ADAM-6051 (counter mode): uint32 in holding registers.

Source: Advantech ADAM-6000 series user manual, Modbus address mapping of the ADAM-6050/6051 digital
input channels in counter mode: channel n's 32-bit counter is at 4X registers 40001+2n and 40002+2n,
"Counter(dec) = (value of 40002) x 65536 + (value of 40001)": low word first, read with function 3.
The counter counts pulses from 0 to 4294967295 and wraps to 0. The gas meter's pulse weight (m3 per
pulse, the scale factor) is a property of the installation, set per meter as `pulse_m3` in the plant
file: volume = counter x pulse_m3. Channels 1..3 read 0 here (nothing wired); higher ones are not served.
"""

from __future__ import annotations

from simulators.maps.base import DeviceValues, ModbusMap, Point, encode

CHANNELS = 4  # channels 0..3 are served; channel 0 carries the gas meter
POINTS = tuple(
    Point(f"counter_ch{n}" if n else "pulse_count", 2 * n, "uint32", "", "pulse_count" if n == 0 else "unused",
          f"{40001 + 2 * n}-{40002 + 2 * n}", word_order="little")
    for n in range(CHANNELS)
)

MAP = ModbusMap(
    name="adam6051_counter",
    device="Advantech ADAM-6051 pulse counter (gas meter pulse output on channel 0)",
    source="Advantech ADAM-6000 series user manual, ADAM-6050/6051 Modbus mapping (counter mode)",
    function_code=3,
    points=POINTS,
    rate_unit="m**3/h",
    counter_point="pulse_count",
    count_unit="pulse",
    width_bits=32,
)


def render(values: DeviceValues) -> dict[int, int]:
    out: dict[int, int] = {}
    for p in POINTS:
        # an integer counter has no NaN: a failed counter module reads all ones
        value = 0xFFFFFFFF if values.nan else (values.counter if p.name == "pulse_count" else 0)
        for i, word in enumerate(encode(p, value)):
            out[p.address + i] = word
    return out
