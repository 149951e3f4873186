"""The simulators' OPC UA steam flow computer: mass flow, totaliser, pressure and temperature of one steam meter.

Same address space as opcua_gas (namespace urn:carbonwatch:simulators, node ids `s=<meter id>.<Name>`), with
mass units.
"""

from __future__ import annotations

from calc.devicemap import DeviceMap, DevicePoint

MAP = DeviceMap(
    name="opcua_steam",
    device="carbonwatch simulated steam flow computer (OPC UA)",
    source="simulators/opcua.py address space",
    protocol="opcua",
    namespace="urn:carbonwatch:simulators",
    points=(
        DevicePoint("mass_flow", "kg/h", "rate", node="Flow", ua_unit=("E93", "kg/h")),
        DevicePoint("mass", "kg", "counter", kind="counter", node="Totaliser", ua_unit=("KGM", "kg")),
        DevicePoint("pressure", "bar", "pressure", node="Pressure", ua_unit=("BAR", "bar")),
        DevicePoint("temperature", "degC", "temperature", node="Temperature", ua_unit=("CEL", "°C")),
    ),
    counter="mass",
    rate_unit="kg/h",
    rate_key="kg_h",
    counts_per_rate_hour=10.0,  # the simulator counts 0.1 kg ...
    count_size=0.1,  # ... and the totaliser shows kg
)
