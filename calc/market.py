"""Scope 2 dual reporting for electricity over a period: location-based (grid average) next to market-based
(contractual instruments such as green electricity certificates cover part of the volume, the rest at the
residual factor). Instruments are never used twice: each result says how much of each was used.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date

from pydantic import BaseModel, ConfigDict, Field

from calc.emissions import EmissionResult, carrier_co2e
from calc.factors import FactorChoice, FactorError, FactorSet, combined_hash
from calc.units import UnitError, conversion_factor

CERTIFICATE_UNIT_FACTOR = "cn_gec_unit"  # 1 GEC = 1 000 kWh (NDRC/MOF/NEA 2023 No. 1044)


class Instrument(BaseModel):
    """A contractual instrument: certificates (count) or a contracted volume (energy) at its own factor."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1)
    kind: str = Field(pattern=r"^(gec|green_power|ppa|supplier)$")
    quantity: float = Field(gt=0, allow_inf_nan=False)
    unit: str = "certificate"                 # "certificate" (GEC count) or an energy unit (MWh, kWh)
    factor_kg_per_kwh: float = Field(default=0.0, ge=0, allow_inf_nan=False)  # 0 for renewable attributes
    valid_from: date
    valid_to: date
    region: str = ""                          # market boundary; "" = any
    evidence: str = Field(min_length=1)       # certificate serials, contract number

    def covers(self, start: date, end: date) -> bool:
        """True when the instrument's vintage overlaps the consumption period [start, end]."""
        return self.valid_from <= end and self.valid_to >= start


class DualResult(BaseModel):
    """Location- and market-based results for the same electricity, side by side."""

    model_config = ConfigDict(frozen=True)

    location: EmissionResult
    market: EmissionResult
    energy_kwh: float
    covered_kwh: float
    residual_kwh: float
    used_kwh: dict[str, float]     # instrument id -> kWh claimed by this result


def instrument_kwh(inst: Instrument, factors: FactorSet) -> tuple[float, FactorChoice | None]:
    """Volume an instrument stands for, in kWh (certificates via the set's certificate unit)."""
    if inst.unit == "certificate":
        unit = factors.choose(factors.get(CERTIFICATE_UNIT_FACTOR), "kWh")
        return inst.quantity * unit.value, unit
    try:
        return inst.quantity * conversion_factor(inst.unit, "kWh"), None
    except UnitError as exc:
        raise FactorError(f"instrument {inst.id}.unit: {exc}") from exc


def electricity_dual(energy: float, unit: str, factors: FactorSet, *, region: str, start: date, end: date,
                     instruments: Sequence[Instrument] = (), already_used_kwh: Mapping[str, float] | None = None,
                     ) -> DualResult:
    """Scope 2 of `energy` consumed in [start, end]: location-based and market-based.

    Instruments valid for the period and region are applied in the order given until the volume is
    covered; `already_used_kwh` holds what earlier periods claimed, so no instrument is counted twice.
    """
    kwh = energy * conversion_factor(unit, "kWh")
    location = carrier_co2e(kwh, "kWh", "electricity", factors, region=region, at=start, method="location")
    residual_result = carrier_co2e(1.0, "kWh", "electricity", factors, region=region, at=start, method="market")
    used: dict[str, float] = {}
    extra_choices: list[FactorChoice] = []
    remaining = kwh
    contracted_kg = 0.0
    for inst in instruments:
        if remaining <= 0:
            break
        if not inst.covers(start, end) or (inst.region and inst.region not in (region, region.split("-", 1)[0])):
            continue
        total, unit_choice = instrument_kwh(inst, factors)
        available = total - (already_used_kwh or {}).get(inst.id, 0.0)
        take = min(max(available, 0.0), remaining)
        if take <= 0:
            continue
        used[inst.id] = take
        remaining -= take
        contracted_kg += take * inst.factor_kg_per_kwh
        if unit_choice is not None:
            extra_choices.append(unit_choice)
    residual_kg = remaining * residual_result.co2e_kg
    all_factors = [factors.get(fid) for fid in residual_result.factor_ids] + [c.factor for c in extra_choices]
    market = residual_result.model_copy(update={
        "co2e_kg": residual_kg + contracted_kg,
        "quantity": kwh, "unit": "kWh", "activity": kwh,
        "gas_kg": {gas: v * remaining for gas, v in residual_result.gas_kg.items()},
        "co2e_by_gas_kg": {gas: v * remaining + (contracted_kg if gas == "CO2" else 0.0)
                           for gas, v in residual_result.co2e_by_gas_kg.items()},
        "factor_ids": tuple(dict.fromkeys([*residual_result.factor_ids, *(c.factor_id for c in extra_choices)])),
        "factor_version": f"{factors.version}:{combined_hash(all_factors)}",
    })
    return DualResult(location=location, market=market, energy_kwh=kwh, covered_kwh=kwh - remaining,
                      residual_kwh=remaining, used_kwh=used)
