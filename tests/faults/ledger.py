"""What each meter really advanced (the simulator's ground truth, as its register shows it) against what the store
counted, per meter, in the meter's unit and in kg CO2e; the expected CO2e comes from calc's own recipes.

A meter's truth in its unit is what it produced, in the unit of the register the edge reads: Schneider PM5000 INT64
Wh, ADAM pulses x pulse weight, the OPC UA totalisers (m3, kg), so a reset, rollover or replacement of the register
changes nothing; Eastron SDM630: the change of its float32 kWh register (its rounding is part of the truth, as on
the real meter). Where a scenario holds energy for an engineer, counted + held must equal the truth and the CO2e
counted must be that of the counted energy. The comparison is exact to 1e-9 relative.
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
    """How far a meter really advanced between two /truth counters, in its register's unit: what it produced
    (so a reset, rollover or replacement of the register in between changes nothing), except on the SDM630."""
    if map_name == "eastron_sdm630":  # float32 kWh on the wire: the register shows float32(Wh / 1000)
        c0, c1 = int(before["counts"]), int(after["counts"])
        assert after["unit"] == "kWh", after
        assert c1 - c0 == after["produced_counts"] - before["produced_counts"], "an SDM630 register jumped: the " \
            "float32 truth cannot follow a reset or replacement on this map"
        return float(np.float32(c1 / 1000.0)) - float(np.float32(c0 / 1000.0)), "kWh"
    if map_name == "adam6051_counter":  # pulses x the pulse weight
        scale = after["scale"]
        return (after["produced_counts"] - before["produced_counts"]) * float(scale["value"]), str(scale["unit"])
    return after["produced"] - before["produced"], str(after["unit"])


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
    held: float = 0.0  # open held energy that came in the window (in `unit`), not counted

    def _off(self, a: float, b: float) -> bool:
        return abs(a - b) > REL_TOL * max(abs(a), abs(b), 1e-300)

    @property
    def accounted(self) -> float:
        return self.counted + self.held

    @property
    def exact(self) -> bool:
        return not (self._off(self.accounted, self.expected)
                    or self._off(self.counted_co2e_kg, self.expected_co2e_kg))

    @property
    def lost(self) -> float:
        return self.expected - self.accounted if self.accounted < self.expected and not self.exact else 0.0

    @property
    def double(self) -> float:
        return self.accounted - self.expected if self.accounted > self.expected and not self.exact else 0.0

    @property
    def lost_co2e_kg(self) -> float:
        return max(0.0, self.expected_co2e_kg - self.counted_co2e_kg) if not self.exact else 0.0

    @property
    def double_co2e_kg(self) -> float:
        return max(0.0, self.counted_co2e_kg - self.expected_co2e_kg) if not self.exact else 0.0

    def line(self) -> str:
        state = "exact" if self.exact else ("LOST" if self.lost else "DOUBLE")
        held = f" + held {self.held:.10g}" if self.held else ""
        return (f"{self.meter:14} {self.carrier:12} expected {self.expected:.10g} {self.unit}, counted "
                f"{self.counted:.10g}{held} ({self.accounted - self.expected:+.6g}); CO2e expected "
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
              counted: Mapping[str, tuple[float, str, float]], start: datetime, end: datetime,
              held: Mapping[str, tuple[float, str]] | None = None) -> list[MeterCheck]:
        """Per meter: truth between two /truth bodies against counted (energy, its unit, kg CO2e) per meter, plus
        the energy held meanwhile (energy, its unit) when given."""
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
            held_energy, held_unit = (held or {}).get(mid, (0.0, unit))
            held_here = held_energy * conversion_factor(held_unit, unit)
            out.append(MeterCheck(mid, self.plant.meter(mid).carrier.value, unit, expected,
                                  energy * conversion_factor(energy_unit, unit), (expected - held_here) * per_unit,
                                  co2e, held_here))
        return out
