"""Emission formulas: a quantity of a carrier and the factor set in, kg CO2e with its provenance out.

The scalar path (`carrier_co2e`) is for single results; `calc.table.FactorTable` is the vectorized path
for batches (the same recipes, folded per meter and validity period); `electricity_co2e_kg_array` is the
bare gather-multiply kept for callers that already hold kWh and factor indexes.
"""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict

from calc.factors import FactorChoice, FactorSet, combined_hash
from calc.recipes import Conditions, Pins, Recipe, recipe
from calc.units import conversion_factor


class EmissionResult(BaseModel):
    """kg CO2e and everything needed to reproduce it."""

    model_config = ConfigDict(frozen=True)

    co2e_kg: float
    scope: str                      # scope1 | scope2_location | scope2_market
    carrier: str
    factor_id: str                  # the factor that names the result (grid factor, carbon content, heat factor)
    factor_version: str             # set version : hash of every factor used
    source: str                     # source of the naming factor
    fallback: bool                  # a factor was used outside its validity period or region
    method: str = ""
    quantity: float | None = None
    unit: str = ""
    activity: float | None = None   # activity data (kWh for electricity, GJ otherwise)
    activity_unit: str = ""
    gas_kg: dict[str, float] = {}   # mass of each gas emitted
    co2e_by_gas_kg: dict[str, float] = {}
    factor_ids: tuple[str, ...] = ()


def result_version(rec: Recipe) -> str:
    """Version of a result: the set version and one hash over all the factors the recipe used."""
    return f"{rec.primary.set_version}:{combined_hash(c.factor for c in rec.choices)}"


def from_recipe(rec: Recipe, quantity: float, factors: FactorSet | None = None) -> EmissionResult:
    """Apply a recipe to a quantity (in `rec.unit`)."""
    gas_kg = {gas: quantity * per for gas, per in rec.gas_per_unit.items()}
    gwp = {c.factor.gas: c.value for c in rec.choices if c.factor.kind == "gwp100"}
    by_gas = {gas: kg * gwp.get(gas, 1.0) for gas, kg in gas_kg.items()}
    return EmissionResult(
        co2e_kg=quantity * rec.co2e_per_unit,
        scope=rec.scope,
        carrier=rec.carrier,
        factor_id=rec.primary.factor_id,
        factor_version=result_version(rec),
        source=rec.primary.factor.source,
        fallback=rec.fallback,
        method=rec.method,
        quantity=quantity,
        unit=rec.unit,
        activity=quantity * rec.base_per_unit,
        activity_unit=rec.base_unit,
        gas_kg=gas_kg,
        co2e_by_gas_kg=by_gas,
        factor_ids=tuple(dict.fromkeys(c.factor_id for c in rec.choices)),
    )


def carrier_co2e(quantity: float, unit: str, carrier: str, factors: FactorSet, *, region: str,
                 at: datetime | date, method: str | None = None, conditions: Conditions | None = None,
                 sector: str = "manufacturing", pins: Pins | None = None) -> EmissionResult:
    """kg CO2e of a quantity of any carrier (the scalar path).

    `unit` is any pint unit of energy, mass or volume the carrier allows (`Nm3` = m^3 at 0 degC,
    101.325 kPa); `method` is location | market | ets for electricity, gbt32150 | ipcc for fuels.
    Raises FactorError or ConditionError (both ValueError) naming what is missing or wrong.
    """
    rec = recipe(factors, carrier, unit, region=region, at=at, method=method, conditions=conditions,
                 sector=sector, pins=pins)
    return from_recipe(rec, quantity, factors)


def electricity_co2e(energy: float, unit: str, choice: FactorChoice) -> EmissionResult:
    """Location- or market-based scope 2 CO2e of an amount of electricity."""
    if choice.unit.replace(" ", "") != "kg/kWh":
        raise ValueError(f"electricity factor must be chosen in kg/kWh, got {choice.unit!r}")
    energy_kwh = energy * conversion_factor(unit, "kWh")
    co2e = energy_kwh * choice.value
    return EmissionResult(
        co2e_kg=co2e,
        scope=choice.factor.scope,
        carrier="electricity",
        factor_id=choice.factor_id,
        factor_version=choice.version,
        source=choice.factor.source,
        fallback=choice.fallback,
        method="market" if choice.factor.scope == "scope2_market" else "location",
        quantity=energy,
        unit=unit,
        activity=energy_kwh,
        activity_unit="kWh",
        gas_kg={choice.factor.gas or "CO2": co2e},
        co2e_by_gas_kg={choice.factor.gas or "CO2": co2e},
        factor_ids=(choice.factor_id,),
    )


def electricity_co2e_kg_array(energy_kwh: npt.NDArray[np.float64], factor_index: npt.NDArray[np.intp],
                              factor_kg_per_kwh: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """kg CO2e for arrays of energies (kWh), each with the index of its factor in `factor_kg_per_kwh`."""
    result: npt.NDArray[np.float64] = factor_kg_per_kwh[factor_index] * energy_kwh
    return result
