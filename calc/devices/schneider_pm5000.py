"""Schneider Electric PowerLogic PM5000 series (PM5100/PM5300/PM5500): holding registers, function 3.

Source: Schneider Electric, "PM5000 series register list" (the Modbus register list published with the
PM5300/PM5500 user manuals), cross-checked with the PM3200 user manual DOCA0006EN (same register
numbering for the 64-bit energies): register numbers are 1-based, protocol address = number - 1.
  3054/3056/3058  Active Power A/B/C         FLOAT32  kW   (words big-endian)
  3060            Active Power Total         FLOAT32  kW
  3204            Active Energy Delivered (Into Load)   INT64  Wh  (4 registers, most significant first)
  3208            Active Energy Received (Out of Load)  INT64  Wh
INT64 0x8000000000000000 and FLOAT32 NaN are the meter's "not available" values. The energies are signed
INT64 that never go negative: they wrap at 2**63.
"""

from __future__ import annotations

from calc.devicemap import DeviceMap, DevicePoint
from calc.registers import DataType

INT64_NOT_AVAILABLE = -(1 << 63)  # 0x8000000000000000
_I64 = DataType.I64

MAP = DeviceMap(
    name="schneider_pm5000",
    device="Schneider Electric PowerLogic PM5000 series",
    source="PM5000 series Modbus register list (PM5300/PM5500 user manual); PM3200 manual DOCA0006EN",
    protocol="modbus",
    function="holding",
    points=(
        DevicePoint("active_power_a", "kW", "phase_rate", phase=0, address=3053, manual_ref="3054"),
        DevicePoint("active_power_b", "kW", "phase_rate", phase=1, address=3055, manual_ref="3056"),
        DevicePoint("active_power_c", "kW", "phase_rate", phase=2, address=3057, manual_ref="3058"),
        # "Active Power Total"
        DevicePoint("active_power", "kW", "rate", address=3059, manual_ref="3060"),
        # "Active Energy Delivered (Into Load)"
        DevicePoint("active_energy_import", "Wh", "counter", kind="counter", address=3203, manual_ref="3204",
                    type=_I64, counter_width=63, not_available=INT64_NOT_AVAILABLE),
        # "Active Energy Received (Out of Load)": nothing flows back in the simulated plant
        DevicePoint("active_energy_export", "Wh", "zero", kind="counter", address=3207, manual_ref="3208",
                    type=_I64, counter_width=63, not_available=INT64_NOT_AVAILABLE),
    ),
    counter="active_energy_import",
    rate_unit="kW",
    rate_key="kw",
    counts_per_rate_hour=1000.0,  # one count is 1 Wh
    count_size=1.0,
)
