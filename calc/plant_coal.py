"""Standard coal (kgce, GB/T 2589) and normal volume of each meter's stored energy: one book per plant built from
the same recipes ingest counts CO2e with (calc.recipes, calc.coal), so kgce and CO2e of a meter always describe
the same energy. Pure; the API (api/standard_coal.py) and SCADA build it from the plant file.

The method (equivalent value by default) comes from the plant file's optional section

    [standard_coal]
    method = "equal"                                   # or "equivalent" (the default)
    equal = { electricity = "0.2950 kg/kWh", heat = "39.3 kg/GJ" }   # the year's published coefficients
    source = "NBS 2025 statistical communique"          # where they come from (required with `equal`)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from calc.coal import (
    CoalError,
    CoalMethod,
    CoalRecipe,
    CoefficientSet,
    coal_recipe_for,
    default_coefficients,
    equal_value_row,
)
from calc.conditions import ConditionError, is_normal_volume_unit, normal_volume_ratio, parse_measure
from calc.factors import FactorError, FactorSet
from calc.plant import Meter, Plant
from calc.plant_factors import PlantFactors, plant_factors
from calc.recipes import recipe
from calc.units import UnitError, conversion_factor

NORMAL_M3 = "Nm^3"


@dataclass(frozen=True, slots=True)
class MeterCoal:
    """kgce per unit of one meter's stored energy unit, with the coefficient behind it (or why there is none)."""

    kgce_per_unit: float | None
    coefficient_id: str | None
    version: str | None
    refused: str | None = None
    normal_m3_per_unit: float | None = None    # natural gas by volume: Nm3 per metered unit (the factor's unit)


@dataclass
class CoalBook:
    """kgce of any meter's stored energy; recipes evaluated once per (meter, unit)."""

    plant_factors: PlantFactors
    plant: Plant
    coefficients: CoefficientSet
    method: CoalMethod
    at: date
    refused: str | None = None      # the whole book cannot count (a bad [standard_coal]): every meter says why
    _cache: dict[tuple[str, str], MeterCoal] = field(default_factory=dict)
    _meters: dict[str, Meter] = field(default_factory=dict)

    def of(self, meter_id: str, unit: str) -> MeterCoal:
        key = (meter_id, unit)
        if key not in self._cache:
            self._cache[key] = self._build(meter_id, unit)
        return self._cache[key]

    def _build(self, meter_id: str, unit: str) -> MeterCoal:
        if not self._meters:   # once per book: Plant.meters_by_id builds a new dict per call (N² over a plant)
            self._meters.update(self.plant.meters_by_id)
        meter = self._meters.get(meter_id)
        if self.refused is not None:
            return MeterCoal(None, None, None, f"meter {meter_id!r}: {self.refused}")
        if meter is None:
            return MeterCoal(None, None, None, f"meter {meter_id!r} is not in the plant")
        pf = self.plant_factors
        cond = pf.conditions.get(meter_id)
        try:
            rec = recipe(pf.factors, meter.carrier, unit, region=self.plant.region_of(meter), at=self.at,
                         method=pf.method_for(meter.carrier), conditions=cond,
                         pins=pf.pins_for(meter, self.plant.site.id))
            coal: CoalRecipe = coal_recipe_for(rec, self.coefficients, method=self.method, conditions=cond)
        except (CoalError, FactorError, ConditionError, UnitError) as exc:
            return MeterCoal(None, None, None, f"meter {meter_id!r}: {exc}")
        nm3 = None
        if meter.carrier == "natural_gas" and not is_normal_volume_unit(unit):
            try:
                nm3 = conversion_factor(unit, "m^3") * normal_volume_ratio(cond.pressure if cond else None,
                                                                           cond.temperature if cond else None)
            except (UnitError, ConditionError):
                nm3 = None
        return MeterCoal(coal.kgce_per_unit, coal.coefficient_id, coal.version, None, nm3)

    def kgce(self, meter_id: str, energy: float, unit: str) -> float | None:
        per = self.of(meter_id, unit).kgce_per_unit
        return None if per is None else energy * per

    def factor_energy(self, meter_id: str, energy: float, unit: str) -> tuple[float, str]:
        """The energy in the unit its emission factor applies to: natural gas by volume in Nm3, else as given."""
        nm3 = self.of(meter_id, unit).normal_m3_per_unit
        return (energy * nm3, NORMAL_M3) if nm3 is not None else (energy, unit)


class StandardCoalSection(BaseModel):
    """[standard_coal]: how energy is counted in kg of standard coal equivalent (GB/T 2589) in the API's views and
    SCADA."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: CoalMethod = Field(default=CoalMethod.EQUIVALENT, description="\"equivalent\" (calorific value, the "
                               "default) or \"equal\" (primary energy spent: needs `equal`)")
    equal: dict[str, str] = Field(default_factory=dict, description="equal-value coefficients by carrier, with "
                                  "unit, e.g. { electricity = \"0.2998 kg/kWh\", heat = \"39.3 kg/GJ\" } (the "
                                  "year's published figures; not shipped)")
    source: str = Field(default="", max_length=500, description="where the `equal` coefficients come from "
                        "(required with them)")

    @model_validator(mode="after")
    def _complete(self) -> StandardCoalSection:
        if self.equal and not self.source.strip():
            raise ValueError("source: required with `equal` (where the coefficients are published)")
        if self.method is CoalMethod.EQUAL and "electricity" not in self.equal:
            raise ValueError("equal: the equal-value method needs at least the electricity coefficient, e.g. "
                             "equal = { electricity = \"0.2998 kg/kWh\" }")
        return self


def coal_settings(data: Mapping[str, Any]) -> tuple[CoalMethod, CoefficientSet]:
    """The plant's [standard_coal] choice: method and the coefficient set (with its equal-value rows).
    Raises CoalError naming the key path and why when it cannot be used."""
    raw = data.get("standard_coal") or {}
    try:
        section = StandardCoalSection.model_validate(raw)
    except ValidationError as exc:
        # a whole-section check says its key itself ("source: required ...")
        raise CoalError("; ".join("standard_coal." + (f"{'.'.join(str(p) for p in e['loc'])}: " if e["loc"] else "")
                                  + e["msg"].removeprefix("Value error, ") for e in exc.errors())) from None
    coefficients = default_coefficients()
    if section.equal:
        rows = {}
        for carrier, text in section.equal.items():
            try:
                given = parse_measure(text, f"standard_coal.equal.{carrier}")
            except ConditionError as exc:
                raise CoalError(str(exc)) from None
            row = equal_value_row(carrier, given.value, given.unit, section.source)
            rows[row.id] = row
        coefficients = coefficients.with_coefficients(rows)
    return section.method, coefficients


def plant_coal_book(factors: FactorSet, plant: Plant, data: Mapping[str, Any], at: date) -> CoalBook:
    """The book of a plant file (`data`: its parsed TOML) over a factor set; raises CoalError or FactorError."""
    method, coefficients = coal_settings(data)
    return CoalBook(plant_factors(factors, plant, data), plant, coefficients, method, at)
