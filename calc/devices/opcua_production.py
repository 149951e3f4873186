"""The simulators' OPC UA production counter: a line's piece count (a Double totaliser, no wrap).

Variables under Objects/Meters/<id> in namespace urn:carbonwatch:simulators (node ids `s=<id>.<Name>`), as the
gas and steam flow computers; EngineeringUnits UN/CEFACT H87 (piece).
"""

from __future__ import annotations

from calc.devicemap import DeviceMap, DevicePoint

MAP = DeviceMap(
    name="opcua_production",
    device="carbonwatch simulated production counter (OPC UA)",
    source="simulators/opcua.py address space",
    protocol="opcua",
    namespace="urn:carbonwatch:simulators",
    points=(
        DevicePoint("production", "count", "counter", kind="counter", node="Count", ua_unit=("H87", "piece")),
    ),
    counter="production",
    rate_unit="count/h",
    rate_key="per_h",
    counts_per_rate_hour=1.0,
    count_size=1.0,
)
