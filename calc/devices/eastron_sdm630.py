"""Eastron SDM630 (Modbus V2) three-phase meter: IEEE 754 float32 input registers, function 4.

Source: Eastron "SDM630 Modbus Protocol" (input register table; 30001 = protocol address 0x0000),
cross-checked with public drivers (Home Assistant / OpenEMS / EVerest SDM630 definitions).
Every value is a float32 in two registers, most significant word first (big-endian words and bytes).
The energy registers are float32 kWh, so their resolution falls as the count grows (as on the meter).
"""

from __future__ import annotations

from calc.devicemap import DeviceMap, DevicePoint

MAP = DeviceMap(
    name="eastron_sdm630",
    device="Eastron SDM630 Modbus V2",
    source="Eastron SDM630 Modbus Protocol, input registers (30001 = address 0x0000)",
    protocol="modbus",
    function="input",
    aliases=("sdm630",),
    points=(
        DevicePoint("voltage_l1", "V", "voltage", phase=0, address=0x0000, manual_ref="30001"),
        DevicePoint("voltage_l2", "V", "voltage", phase=1, address=0x0002, manual_ref="30003"),
        DevicePoint("voltage_l3", "V", "voltage", phase=2, address=0x0004, manual_ref="30005"),
        DevicePoint("current_l1", "A", "current", phase=0, address=0x0006, manual_ref="30007"),
        DevicePoint("current_l2", "A", "current", phase=1, address=0x0008, manual_ref="30009"),
        DevicePoint("current_l3", "A", "current", phase=2, address=0x000A, manual_ref="30011"),
        DevicePoint("active_power_l1", "W", "phase_rate", phase=0, address=0x000C, manual_ref="30013"),
        DevicePoint("active_power_l2", "W", "phase_rate", phase=1, address=0x000E, manual_ref="30015"),
        DevicePoint("active_power_l3", "W", "phase_rate", phase=2, address=0x0010, manual_ref="30017"),
        DevicePoint("active_power", "W", "rate", address=0x0034, manual_ref="30053"),  # "Total system power"
        DevicePoint("frequency", "Hz", "frequency", address=0x0046, manual_ref="30071"),
        DevicePoint("active_energy_import", "kWh", "counter", kind="counter", address=0x0048, manual_ref="30073"),
        DevicePoint("active_energy_export", "kWh", "export_counter", kind="counter", address=0x004A,
                    manual_ref="30075"),  # counts only with generation behind the meter (sim.generation)
    ),
    counter="active_energy_import",
    rate_unit="kW",
    rate_key="kw",
    counts_per_rate_hour=1000.0,  # the simulator counts Wh ...
    count_size=0.001,  # ... and the register shows kWh
)
