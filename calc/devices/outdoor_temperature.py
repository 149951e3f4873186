"""An outdoor temperature transmitter on RS-485 (Modbus): float32 degC in input registers, function 4.

Source: carbonwatch's simulated weather sensor (simulators/maps renders it), laid out as common RS-485
temperature transmitters serve a float reading (IEEE 754, most significant word first). A sensor without a
counter: the simulator shows the meter's `sim.weather` profile (a daily swing around a mean).
"""

from __future__ import annotations

from calc.devicemap import DeviceMap, DevicePoint

MAP = DeviceMap(
    name="outdoor_temperature",
    device="outdoor temperature transmitter, carbonwatch simulated",
    source="simulators/maps rendering of a float32 temperature input register (words big-endian)",
    protocol="modbus",
    function="input",
    points=(
        DevicePoint("outdoor_temperature", "degC", "temperature", address=0, manual_ref="30001-30002"),
    ),
    counter=None,
)
