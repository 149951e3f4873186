"""The simulators' OPC UA outdoor temperature sensor (a weather station's air temperature, a Double).

Same address space as the flow computers (namespace urn:carbonwatch:simulators, node ids `s=<id>.<Name>`);
EngineeringUnits UN/CEFACT CEL (degree Celsius). A sensor without a counter.
"""

from __future__ import annotations

from calc.devicemap import DeviceMap, DevicePoint

MAP = DeviceMap(
    name="opcua_outdoor_temperature",
    device="carbonwatch simulated outdoor temperature sensor (OPC UA)",
    source="simulators/opcua.py address space",
    protocol="opcua",
    namespace="urn:carbonwatch:simulators",
    points=(
        DevicePoint("outdoor_temperature", "degC", "temperature", node="Temperature", ua_unit=("CEL", "°C")),
    ),
    counter=None,
)
