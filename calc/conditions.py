"""Physical conditions of a metered flow: pressures (absolute or gauge), gas volume at normal conditions,
steam enthalpy (IAPWS-IF97 via iapws) and hot-water heat; pure functions called at the boundaries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pint

from calc.errors import CalcError
from calc.units import Q_, UnitError, conversion_factor

ATMOSPHERE_PA = 101_325.0          # standard atmosphere, added to gauge pressures
NORMAL_PRESSURE_PA = 101_325.0     # Chinese guidelines' Nm3: 0 °C, 101.325 kPa
NORMAL_TEMPERATURE_K = 273.15

_GAUGE = re.compile(r"^(?P<base>.+?)\s*(?:\(g\)|_g|\sgauge|g)$")
_ABSOLUTE = re.compile(r"^(?P<base>.+?)\s*(?:\(a\)|_a|\sabs(?:olute)?|a)$")
_MEASURE = re.compile(r"^\s*(?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(?P<unit>.*?)\s*$")
_NORMAL_VOLUME = re.compile(r"^\s*(?:N\s*m\s*(?:\^|\*\*)?\s*3|normal\s+m\s*(?:\^|\*\*)?\s*3)\s*$")


class ConditionError(CalcError):
    """A pressure, temperature or state that cannot be used (wrong unit, not steam, out of range)."""


@dataclass(frozen=True, slots=True)
class Measure:
    """A number with its unit, as given at a boundary (config, CLI, message)."""

    value: float
    unit: str

    def __str__(self) -> str:
        return f"{self.value:g} {self.unit}"


def parse_measure(text: str | Measure | tuple[float, str], what: str = "value") -> Measure:
    """'0.8 MPa', '8 barg', '180 degC' or (value, unit) -> Measure; a bare number is refused (no unit)."""
    if isinstance(text, Measure):
        return text
    if isinstance(text, tuple):
        return Measure(float(text[0]), str(text[1]))
    match = _MEASURE.match(text)
    if not match or not match.group("unit"):
        raise ConditionError(f"{what}: {text!r} needs a number and a unit, e.g. '0.8 MPa' or '180 degC'")
    return Measure(float(match.group("num")), match.group("unit"))


def _is_pressure(unit: str) -> bool:
    try:
        conversion_factor(unit, "Pa")
    except UnitError:
        return False
    return True


def pressure_pa_absolute(pressure: Measure) -> float:
    """Absolute pressure in Pa. Pressures are absolute unless the unit says gauge: 'barg', 'bar(g)',
    'kPa gauge', 'psig' (then one standard atmosphere is added); 'bara', 'bar(a)' are absolute."""
    unit = pressure.unit.strip()
    if _is_pressure(unit):
        return pressure.value * conversion_factor(unit, "Pa")
    for pattern, offset in ((_GAUGE, ATMOSPHERE_PA), (_ABSOLUTE, 0.0)):
        match = pattern.match(unit)
        if match and _is_pressure(match.group("base")):
            return pressure.value * conversion_factor(match.group("base"), "Pa") + offset
    raise ConditionError(f"pressure: {unit!r} is not a pressure unit (e.g. 'MPa', 'kPa', 'bar', 'barg', 'psig')")


def temperature_k(temperature: Measure) -> float:
    """Absolute temperature in K (degC and degF are offset units, converted by pint)."""
    try:
        kelvin = float(Q_(temperature.value, temperature.unit).to("K").magnitude)
    except (pint.errors.UndefinedUnitError, pint.errors.DimensionalityError, AssertionError, TypeError,
            ValueError, AttributeError) as exc:
        raise ConditionError(f"temperature: cannot read {temperature} as a temperature: {exc}") from exc
    if kelvin <= 0:
        raise ConditionError(f"temperature: {temperature} is at or below absolute zero")
    return kelvin


def is_normal_volume_unit(unit: str) -> bool:
    """'Nm3', 'Nm^3', 'Nm**3': cubic metres at normal conditions (pint alone would read newton-metre)."""
    return bool(_NORMAL_VOLUME.match(unit))


def normal_volume_ratio(pressure: Measure | None, temperature: Measure | None) -> float:
    """Nm3 per m3 metered at (pressure, temperature), ideal gas: (P / 101.325 kPa) × (273.15 K / T).

    Without both, the volume is taken as already at normal conditions (ratio 1). The gas's
    compressibility is not applied (Z = 1); at plant supply pressures its effect is below 1 %.
    """
    if pressure is None and temperature is None:
        return 1.0
    if pressure is None or temperature is None:
        raise ConditionError("gas volume correction needs both pressure and temperature (or neither)")
    return pressure_pa_absolute(pressure) / NORMAL_PRESSURE_PA * NORMAL_TEMPERATURE_K / temperature_k(temperature)


def _iapws(**kwargs: float) -> Any:
    from iapws import IAPWS97  # imported on use: it pulls in scipy (~0.5 s)

    try:
        state = IAPWS97(**kwargs)
    except (NotImplementedError, ValueError, TypeError) as exc:
        raise ConditionError(f"steam tables: no IAPWS-IF97 state for {kwargs}: {exc}") from exc
    if getattr(state, "status", 1) == 0 or getattr(state, "h", None) is None:
        raise ConditionError(f"steam tables: no IAPWS-IF97 state for {kwargs} ({getattr(state, 'msg', '')})")
    return state


def steam_enthalpy_kj_per_kg(pressure: Measure, temperature: Measure | None = None) -> float:
    """Specific enthalpy of steam (IAPWS-IF97): saturated vapour at `pressure` when no temperature is given,
    superheated steam at (pressure, temperature) otherwise. A temperature below saturation is refused."""
    p_mpa = pressure_pa_absolute(pressure) / 1e6
    if not 0.000611657 < p_mpa < 22.064:
        raise ConditionError(f"pressure: {pressure} ({p_mpa:.4f} MPa absolute) is outside the saturation range")
    saturated = _iapws(P=p_mpa, x=1.0)
    if temperature is None:
        return float(saturated.h)
    t_k = temperature_k(temperature)
    if t_k < float(saturated.T) - 0.05:
        raise ConditionError(f"temperature: {temperature} is below the saturation temperature "
                             f"{float(saturated.T) - 273.15:.2f} degC at {pressure}: that is water, not steam")
    if t_k <= float(saturated.T) + 0.05:
        return float(saturated.h)
    return float(_iapws(P=p_mpa, T=t_k).h)


def steam_heat_gj_per_t(enthalpy_kj_per_kg: float, reference_kj_per_kg: float) -> float:
    """Heat carried by one tonne of steam: (h − h_ref) kJ/kg = (h − h_ref) MJ/t = (h − h_ref) × 1e-3 GJ/t."""
    if enthalpy_kj_per_kg <= reference_kj_per_kg:
        raise ConditionError(f"steam enthalpy {enthalpy_kj_per_kg:.2f} kJ/kg is not above the reference "
                             f"{reference_kj_per_kg:.2f} kJ/kg")
    return (enthalpy_kj_per_kg - reference_kj_per_kg) * 1e-3


def hot_water_heat_gj_per_t(supply_k: float, return_k: float, cp_kj_per_kg_k: float) -> float:
    """Heat delivered by one tonne of hot water cooling from supply to return: cp × ΔT × 1e-3 GJ/t."""
    if supply_k <= return_k:
        raise ConditionError(f"hot water: supply {supply_k - 273.15:.2f} degC is not above return "
                             f"{return_k - 273.15:.2f} degC")
    return cp_kj_per_kg_k * (supply_k - return_k) * 1e-3


def water_density_kg_per_m3(temperature: Measure) -> float:
    """Density of liquid water at a temperature (IAPWS-IF97 saturated liquid; pressure barely matters)."""
    t_k = temperature_k(temperature)
    if not 273.15 <= t_k < 647.0:
        raise ConditionError(f"temperature: {temperature} is outside liquid water's range")
    return float(_iapws(T=t_k, x=0.0).rho)
