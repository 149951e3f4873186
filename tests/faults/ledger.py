"""What each meter really advanced (the simulator's ground truth, as its register shows it) against what the store
counted, per meter, in the meter's unit and in kg CO2e; the expected CO2e comes from calc's own recipes.

A meter's truth in its unit is the change of the register the edge reads: Schneider PM5000 INT64 Wh, Eastron
SDM630 float32 kWh (so the float32 rounding of the register is part of the truth, as on the real meter), ADAM
pulses x pulse weight, the OPC UA totalisers (m3, kg). The comparison is exact to 1e-9 relative.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from calc.factors import default_factor_set
from calc.plant import Plant, parse_plant
from calc.plant_factors import plant_factors
from calc.recipes import recipe
from calc.table import DEFAULT_UNITS
from calc.units import conversion_factor

REL_TOL = 1e-9
COUNTER = {"schneider_pm5000": "active_energy_import", "eastron_sdm630": "active_energy_import",
           "adam6051_counter": "pulse_count", "opcua_gas": "volume", "opcua_steam": "mass"}


def register_advance(map_name: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[float, str]:
    """How far the register a meter shows moved between two /truth counters, in the register's unit."""
    c0, c1 = int(before["counts"]), int(after["counts"])
    if map_name == "eastron_sdm630":  # float32 kWh on the wire: the register shows float32(Wh / 1000)
        assert after["unit"] == "kWh", after
        return float(np.float32(c1 / 1000.0)) - float(np.float32(c0 / 1000.0)), "kWh"
    if map_name == "adam6051_counter":  # pulses x the pulse weight
        scale = after["scale"]
        return (c1 - c0) * float(scale["value"]), str(scale["unit"])
    return after["value"] - before["value"], str(after["unit"])


def counters(truth: Mapping[str, Any], maps: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Each meter's counter out of a GET /truth body."""
    meters = truth["meters"]
    return {mid: meters[mid]["counters"][COUNTER[map_name]] for mid, map_name in maps.items()}


@dataclass(frozen=True)
class MeterCheck:
    """One meter over one window: expected and counted quantity (in `unit`) and kg CO2e."""

    meter: str
    carrier: str
    unit: str
    expected: float
    counted: float
    expected_co2e_kg: float
    counted_co2e_kg: float

    def _off(self, a: float, b: float) -> bool:
        return abs(a - b) > REL_TOL * max(abs(a), abs(b), 1e-300)

    @property
    def exact(self) -> bool:
        return not (self._off(self.counted, self.expected) or self._off(self.counted_co2e_kg, self.expected_co2e_kg))

    @property
    def lost(self) -> float:
        return self.expected - self.counted if self.counted < self.expected and not self.exact else 0.0

    @property
    def double(self) -> float:
        return self.counted - self.expected if self.counted > self.expected and not self.exact else 0.0

    @property
    def lost_co2e_kg(self) -> float:
        return max(0.0, self.expected_co2e_kg - self.counted_co2e_kg) if not self.exact else 0.0

    @property
    def double_co2e_kg(self) -> float:
        return max(0.0, self.counted_co2e_kg - self.expected_co2e_kg) if not self.exact else 0.0

    def line(self) -> str:
        state = "exact" if self.exact else ("LOST" if self.lost else "DOUBLE")
        return (f"{self.meter:14} {self.carrier:12} expected {self.expected:.10g} {self.unit}, counted "
                f"{self.counted:.10g} ({self.counted - self.expected:+.6g}); CO2e expected "
                f"{self.expected_co2e_kg:.10g} kg, counted {self.counted_co2e_kg:.10g} kg: {state}")


class Expectation:
    """The calc side of one plant: each meter's recipe (factor set merged with the plant's choices and conditions)
    and the unit the store counts it in."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.plant: Plant = parse_plant(dict(data), "<fault suite plant>")
        self.factors = plant_factors(default_factor_set(), self.plant, data, "<fault suite plant>")
        self.maps = {str(m["id"]): str(m["map"]) for m in data["meters"]}

    def co2e_per_unit(self, meter_id: str, at: datetime) -> tuple[float, str]:
        """kg CO2e per unit of the meter's quantity on that day, and that unit (calc.recipes, as ingest uses it)."""
        meter = self.plant.meter(meter_id)
        unit = DEFAULT_UNITS[meter.carrier]
        rec = recipe(self.factors.factors, meter.carrier, unit, region=self.plant.region_of(meter), at=at.date(),
                     method=self.factors.method_for(meter.carrier), conditions=self.factors.conditions.get(meter.id),
                     pins=self.factors.pins_for(meter, self.plant.site.id))
        return rec.co2e_per_unit, unit

    def check(self, before: Mapping[str, Any], after: Mapping[str, Any],
              counted: Mapping[str, tuple[float, str, float]], start: datetime, end: datetime) -> list[MeterCheck]:
        """Per meter: truth between two /truth bodies against counted (energy, its unit, kg CO2e) per meter."""
        c0, c1 = counters(before, self.maps), counters(after, self.maps)
        out = []
        for mid, map_name in self.maps.items():
            per_unit, unit = self.co2e_per_unit(mid, start)
            per_unit_end, _ = self.co2e_per_unit(mid, end)
            assert per_unit == per_unit_end, f"{mid}: the window crossed a change of emission factor; run again"
            advance, register_unit = register_advance(map_name, c0[mid], c1[mid])
            expected = advance * conversion_factor(register_unit, unit)
            assert expected > 0, f"{mid} did not advance in the window: the check would prove nothing"
            energy, energy_unit, co2e = counted.get(mid, (0.0, unit, 0.0))
            out.append(MeterCheck(mid, self.plant.meter(mid).carrier.value, unit, expected,
                                  energy * conversion_factor(energy_unit, unit), expected * per_unit, co2e))
        return out
