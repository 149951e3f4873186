"""Per-carrier formulas as recipes: which factors a carrier and method need at a time and place, folded into
kg of each gas (and kg CO2e) per unit of metered quantity. Scalar and vectorized paths both use these.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

from calc.carriers import BY_NAME, Carrier, Family, of_family
from calc.conditions import (
    ConditionError,
    Measure,
    hot_water_heat_gj_per_t,
    is_normal_volume_unit,
    normal_volume_ratio,
    steam_enthalpy_kj_per_kg,
    steam_heat_gj_per_t,
    temperature_k,
    water_density_kg_per_m3,
)
from calc.factors import ELECTRICITY_KINDS, GLOBAL, FactorChoice, FactorError, FactorSet
from calc.units import UnitError, conversion_factor

# views of the carrier table (calc.carriers)
FUELS = of_family("fuel")
HEATS = of_family("heat")
CARRIER_METHODS: dict[str, tuple[str, ...]] = {c.value: c.methods for c in Carrier}
SCOPE1, SCOPE2_LOCATION, SCOPE2_MARKET = "scope1", "scope2_location", "scope2_market"


@dataclass(frozen=True, slots=True)
class Conditions:
    """Metering conditions that some carriers need (all optional; each carrier says which it needs)."""

    pressure: Measure | None = None            # gas and steam; absolute unless the unit says gauge
    temperature: Measure | None = None         # gas, steam (superheat) and hot-water supply
    return_temperature: Measure | None = None  # hot water; default: the set's reference (20 degC)
    density: Measure | None = None             # liquid fuels metered by volume


@dataclass(frozen=True, slots=True)
class Recipe:
    """Everything one (carrier, method, unit, time, place) needs: multiply a quantity by `co2e_per_unit`."""

    carrier: str
    method: str
    scope: str
    unit: str                       # the unit of the metered quantity the coefficients apply to
    base_unit: str                  # activity data unit (kWh, GJ)
    base_per_unit: float            # activity data per unit of quantity
    gas_per_unit: dict[str, float]  # kg of each gas per unit of quantity
    co2e_per_unit: float            # kg CO2e per unit of quantity
    primary: FactorChoice           # the factor that names the result
    choices: tuple[FactorChoice, ...] = field(default=())

    @property
    def fallback(self) -> bool:
        return any(c.fallback for c in self.choices)


def _dimension_ok(unit: str, like: str) -> bool:
    try:
        conversion_factor(unit, like)
    except UnitError:
        return False
    return True


def _per(unit: str, target: str, what: str) -> float:
    try:
        return conversion_factor(unit, target)
    except UnitError as exc:
        raise FactorError(f"{what}: {exc}") from exc


Pins = Mapping[tuple[str, str], str]  # (kind, gas or "") -> factor id, from a plant's [[factor_overrides]]


class _Builder:
    def __init__(self, factors: FactorSet, region: str, at: datetime | date, pins: Pins) -> None:
        self.factors, self.region, self.at, self.pins = factors, region, at, pins
        self.day = at.date() if isinstance(at, datetime) else at
        self.choices: list[FactorChoice] = []

    def pinned(self, kind: str, gas: str | None, unit: str) -> FactorChoice | None:
        """The factor a plant override pins for this kind (and gas); fallback when outside its validity."""
        factor_id = self.pins.get((kind, gas or "")) or (self.pins.get((kind, "")) if gas else None)
        if factor_id is None:
            return None
        factor = self.factors.get(factor_id)
        choice = self.factors.choose(factor, unit, fallback=not factor.covers(self.day))
        self.choices.append(choice)
        return choice

    def pick(self, kind: str, unit: str, *, carrier: str | None = None, gas: str | None = None,
             sector: str | None = None, region: str | None = None) -> FactorChoice:
        pinned = self.pinned(kind, gas, unit)
        if pinned is not None:
            return pinned
        choice = self.factors.select(kind, at=self.at, region=region or self.region, unit=unit, carrier=carrier,
                                     gas=gas, sector=sector)
        self.choices.append(choice)
        return choice

    def ncv(self, carrier: str, per: str, ipcc: bool) -> FactorChoice:
        """Net calorific value of `carrier` in GJ per `per` ('t' or 'm^3'); IPCC's own (GLOBAL) first if `ipcc`."""
        factor_id = self.pins.get(("net_calorific_value", ""))
        if factor_id is not None and _dimension_ok(self.factors.get(factor_id).unit, f"GJ / {per}"):
            pinned = self.pinned("net_calorific_value", None, f"GJ / {per}")
            assert pinned is not None
            return pinned
        for region in ([GLOBAL] if ipcc else []) + [self.region]:
            try:
                choice = self.factors.select("net_calorific_value", at=self.at, region=region, carrier=carrier,
                                             unit=f"GJ / {per}")
            except FactorError:
                continue
            if not ipcc and choice.factor.region == GLOBAL:
                break  # GB/T 32150 defaults are national: IPCC's NCV only on the ipcc path
            self.choices.append(choice)
            return choice
        raise FactorError(f"no net calorific value per {per} for carrier {carrier!r} in region {self.region!r}"
                          f"{'' if ipcc else ' (try method ipcc, or a [[factor_overrides]] entry)'}")


def fuel_activity_gj(b: _Builder, carrier: str, unit: str, cond: Conditions, ipcc: bool) -> float:
    """GJ of fuel energy per unit of metered quantity (energy, mass, volume with density, or gas volume)."""
    if _dimension_ok(unit, "GJ"):
        return conversion_factor(unit, "GJ")
    if carrier == "natural_gas" and (is_normal_volume_unit(unit) or _dimension_ok(unit, "m^3")):
        if is_normal_volume_unit(unit):
            if cond.pressure is not None or cond.temperature is not None:
                raise ConditionError(f"unit {unit!r} is already at normal conditions; drop pressure/temperature")
            nm3 = 1.0
        else:
            nm3 = conversion_factor(unit, "m^3") * normal_volume_ratio(cond.pressure, cond.temperature)
        return nm3 * b.ncv(carrier, "m^3", ipcc=False).value
    if _dimension_ok(unit, "t"):
        return conversion_factor(unit, "t") * b.ncv(carrier, "t", ipcc).value
    if _dimension_ok(unit, "m^3"):
        if cond.density is None:
            raise ConditionError(f"{carrier} metered by volume ({unit}) needs a density, e.g. '0.84 kg/L'")
        t_per_unit = conversion_factor(unit, "m^3") * cond.density.value * _per(cond.density.unit, "t / m^3",
                                                                                 "density")
        return t_per_unit * b.ncv(carrier, "t", ipcc).value
    raise FactorError(f"{carrier}: cannot use unit {unit!r}; give energy, mass or volume")


def _electricity(b: _Builder, carrier: str, unit: str, method: str, cond: Conditions, sector: str) -> Recipe:
    kwh = _per(unit, "kWh", "electricity quantity unit")
    primary = b.pinned(ELECTRICITY_KINDS[method][0], None, "kg / kWh")
    if primary is None:
        primary = b.factors.grid_factor(b.region, b.at, method=method, unit="kg / kWh")
        b.choices.append(primary)
    gas = {primary.factor.gas or "CO2": kwh * primary.value}
    co2e = kwh * primary.value
    for comp in b.factors.companions(primary.factor):
        value = b.factors.choose(comp, "kg / kWh", fallback=primary.fallback)
        gwp = b.factors.gwp(comp.gas)
        b.choices += [value, gwp]
        gas[comp.gas] = gas.get(comp.gas, 0.0) + kwh * value.value
        co2e += kwh * value.value * gwp.value
    scope = SCOPE2_MARKET if method == "market" else SCOPE2_LOCATION
    return Recipe(carrier, method, scope, unit, "kWh", kwh, gas, co2e, primary, tuple(b.choices))


def _fuel(b: _Builder, carrier: str, unit: str, method: str, cond: Conditions, sector: str) -> Recipe:
    if method == "gbt32150":
        gj = fuel_activity_gj(b, carrier, unit, cond, ipcc=False)
        cc = b.pick("carbon_content_per_heat", "kg / GJ", carrier=carrier)
        of = b.pick("carbon_oxidation_rate", "dimensionless", carrier=carrier)
        ratio = _constant(b, "c_to_co2_ratio", "dimensionless")
        co2_kg = gj * cc.value * of.value * ratio.value
        return Recipe(carrier, method, SCOPE1, unit, "GJ", gj, {"CO2": co2_kg}, co2_kg, cc, tuple(b.choices))
    gj = fuel_activity_gj(b, carrier, unit, cond, ipcc=True)
    tj = gj * 1e-3
    co2 = b.pick("fuel_emission_factor", "kg / TJ", carrier=carrier, gas="CO2", region=GLOBAL)
    ch4 = b.pick("fuel_emission_factor", "kg / TJ", carrier=carrier, gas="CH4", sector=sector, region=GLOBAL)
    n2o = b.pick("fuel_emission_factor", "kg / TJ", carrier=carrier, gas="N2O", region=GLOBAL)
    gwp_ch4, gwp_n2o = b.factors.gwp("CH4"), b.factors.gwp("N2O")
    b.choices += [gwp_ch4, gwp_n2o]
    gas = {"CO2": tj * co2.value, "CH4": tj * ch4.value, "N2O": tj * n2o.value}
    co2e = gas["CO2"] + gas["CH4"] * gwp_ch4.value + gas["N2O"] * gwp_n2o.value
    return Recipe(carrier, method, SCOPE1, unit, "GJ", gj, gas, co2e, co2, tuple(b.choices))


def _heat(b: _Builder, carrier: str, unit: str, method: str, cond: Conditions, sector: str) -> Recipe:
    if _dimension_ok(unit, "GJ"):
        gj = conversion_factor(unit, "GJ")
    elif carrier == "steam":
        if cond.pressure is None:
            raise ConditionError("steam metered by mass needs its pressure (and temperature when superheated)")
        ref = _constant(b, "cn_steam_ref_enthalpy", "kJ / kg")
        enthalpy = steam_enthalpy_kj_per_kg(cond.pressure, cond.temperature)
        gj = _per(unit, "t", "steam quantity unit") * steam_heat_gj_per_t(enthalpy, ref.value)
    elif carrier == "hot_water":
        if cond.temperature is None:
            raise ConditionError("hot water metered by mass or volume needs its supply temperature")
        cp = _constant(b, "cn_hot_water_cp", "kJ / kg / K")
        if cond.return_temperature is not None:
            return_k = temperature_k(cond.return_temperature)
        else:
            ref = _constant(b, "cn_hot_water_ref_temp", "degC")
            return_k = temperature_k(Measure(ref.factor.value, ref.factor.unit))
        per_t = hot_water_heat_gj_per_t(temperature_k(cond.temperature), return_k, cp.value)
        if _dimension_ok(unit, "t"):
            tonnes = conversion_factor(unit, "t")
        elif _dimension_ok(unit, "m^3"):
            tonnes = conversion_factor(unit, "m^3") * water_density_kg_per_m3(cond.temperature) * 1e-3
        else:
            raise FactorError(f"hot_water: cannot use unit {unit!r}; give energy, mass or volume")
        gj = tonnes * per_t
    else:
        raise FactorError(f"heat: cannot use unit {unit!r}; give an energy (GJ, MWh)")
    factor = b.pick("heat_emission_factor", "kg / GJ")
    gas = {factor.factor.gas or "CO2": gj * factor.value}
    return Recipe(carrier, method, SCOPE2_LOCATION, unit, "GJ", gj, gas, gj * factor.value, factor,
                  tuple(b.choices))


def _constant(b: _Builder, factor_id: str, unit: str) -> FactorChoice:
    """A method constant by id (a plant may override its value under the same id)."""
    choice = b.factors.choose(b.factors.get(factor_id), unit)
    b.choices.append(choice)
    return choice


#: a family's recipe: (builder, carrier, unit, method, conditions, sector) -> Recipe
RecipeBuilder = Callable[[_Builder, str, str, str, Conditions, str], Recipe]
RECIPES: dict[Family, RecipeBuilder] = {"electricity": _electricity, "fuel": _fuel, "heat": _heat}


def default_method(carrier: str) -> str:
    return CARRIER_METHODS[carrier][0]


def recipe(factors: FactorSet, carrier: str, unit: str, *, region: str, at: datetime | date,
           method: str | None = None, conditions: Conditions | None = None,
           sector: str = "manufacturing", pins: Pins | None = None) -> Recipe:
    """The recipe for one carrier and method at a time and place. Raises FactorError or ConditionError."""
    carrier = str(carrier)
    if carrier not in CARRIER_METHODS:
        raise FactorError(f"unknown carrier {carrier!r}; use one of {sorted(CARRIER_METHODS)}")
    method = method or default_method(carrier)
    if method not in CARRIER_METHODS[carrier]:
        raise FactorError(f"carrier {carrier!r} has no method {method!r}; use one of {CARRIER_METHODS[carrier]}")
    family = BY_NAME[carrier].family
    if family == "electricity" and method not in ELECTRICITY_KINDS:
        raise FactorError(f"unknown electricity method {method!r}")
    build = RECIPES[family]
    return build(_Builder(factors, region, at, pins or {}), carrier, unit, method, conditions or Conditions(), sector)
