"""Emission formulas: energy and a chosen factor in, kg CO2e with its provenance out.

The scalar path is for single results; `electricity_co2e_kg_array` is the vectorized hot path
(one gather-multiply over numpy arrays) that ingest uses for batches.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict

from calc.factors import FactorChoice
from calc.units import conversion_factor


class EmissionResult(BaseModel):
    """kg CO2e and everything needed to reproduce it."""

    model_config = ConfigDict(frozen=True)

    co2e_kg: float
    scope: str
    carrier: str
    factor_id: str
    factor_version: str
    source: str
    fallback: bool


def electricity_co2e(energy: float, unit: str, choice: FactorChoice) -> EmissionResult:
    """Location- or market-based scope 2 CO2e of an amount of electricity."""
    if choice.unit.replace(" ", "") != "kg/kWh":
        raise ValueError(f"electricity factor must be chosen in kg/kWh, got {choice.unit!r}")
    energy_kwh = energy * conversion_factor(unit, "kWh")
    return EmissionResult(
        co2e_kg=energy_kwh * choice.value,
        scope=choice.factor.scope,
        carrier="electricity",
        factor_id=choice.factor_id,
        factor_version=choice.version,
        source=choice.factor.source,
        fallback=choice.fallback,
    )


def electricity_co2e_kg_array(energy_kwh: npt.NDArray[np.float64], factor_index: npt.NDArray[np.intp],
                              factor_kg_per_kwh: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """kg CO2e for arrays of energies (kWh), each with the index of its factor in `factor_kg_per_kwh`."""
    result: npt.NDArray[np.float64] = factor_kg_per_kwh[factor_index] * energy_kwh
    return result
