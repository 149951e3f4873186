"""Eastron SDM630 (Modbus V2) wired as a PV generation meter on an inverter's output: the same registers as
calc/devices/eastron_sdm630.py, with the energy register 30073 counting the inverter's generation.

Source: Eastron "SDM630 Modbus Protocol" (input registers); a generation meter is the SDM630 on the PV feeder,
its CTs oriented so that the inverter's output counts on the "import" register (what the manual calls 30073).
"""

from __future__ import annotations

from dataclasses import replace

from calc.devicemap import DeviceMap
from calc.devices.eastron_sdm630 import MAP as SDM630

MAP = DeviceMap(
    name="eastron_sdm630_pv",
    device="Eastron SDM630 Modbus V2 as a PV generation meter",
    source=SDM630.source + "; 30073 carries the inverter's generation",
    protocol="modbus",
    function="input",
    aliases=("sdm630_pv",),
    points=tuple(replace(p, quantity="active_energy_generation") if p.quantity == "active_energy_import" else p
                 for p in SDM630.points if p.quantity != "active_energy_export"),
    counter="active_energy_generation",
    rate_unit="kW",
    rate_key="kw",
    counts_per_rate_hour=1000.0,  # the simulator counts Wh ...
    count_size=0.001,  # ... and the register shows kWh
)
