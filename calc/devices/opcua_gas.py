"""The simulators' OPC UA gas flow computer: flow, totaliser, pressure and temperature of one gas meter.

Variables under Objects/Meters/<meter id>, node ids `s=<meter id>.<Name>` in namespace
urn:carbonwatch:simulators (its index is looked up by URI at connect time); each is a Double with an
EngineeringUnits property (UN/CEFACT codes).
"""

from __future__ import annotations

from calc.devicemap import DeviceMap, DevicePoint

MAP = DeviceMap(
    name="opcua_gas",
    device="carbonwatch simulated gas flow computer (OPC UA)",
    source="simulators/opcua.py address space",
    protocol="opcua",
    namespace="urn:carbonwatch:simulators",
    points=(
        DevicePoint("volume_flow", "m**3/h", "rate", node="Flow", ua_unit=("MQH", "m³/h")),
        DevicePoint("volume", "m**3", "counter", kind="counter", node="Totaliser", ua_unit=("MTQ", "m³")),
        DevicePoint("pressure", "bar", "pressure", node="Pressure", ua_unit=("BAR", "bar")),
        DevicePoint("temperature", "degC", "temperature", node="Temperature", ua_unit=("CEL", "°C")),
    ),
    counter="volume",
    rate_unit="m**3/h",
    rate_key="m3_h",
    counts_per_rate_hour=1000.0,  # the simulator counts litres ...
    count_size=0.001,  # ... and the totaliser shows m3
)
