"""Standard coal equivalent (GB/T 2589): a quantity of a carrier in kgce, with the coefficient, its version and
source. Coefficients are versioned data (calc/data/energy_coefficients.toml), like the emission factors.

1 kgce = 29 307 kJ. Electricity and heat use the equivalent-value (calorific) coefficients by default; the
equal-value method needs the year's published coefficient, which a caller adds with `with_coefficients`.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from calc.carriers import BY_NAME
from calc.conditions import is_normal_volume_unit, normal_volume_ratio
from calc.errors import CalcError
from calc.recipes import Conditions, Recipe
from calc.units import UnitError, conversion_factor


class CoalError(CalcError):
    """A coefficient file, carrier, unit or method that cannot give kgce; the message says which and why."""


class CoalMethod(StrEnum):
    """How secondary energy (electricity, heat) is counted: its calorific value, or the primary energy spent."""

    EQUIVALENT = "equivalent"   # 当量值: 0.1229 kgce/kWh, 34.12 kgce/GJ (the default)
    EQUAL = "equal"             # 等价值: the year's coal consumption of supply (e.g. ~0.30 kgce/kWh)


#: the coefficient used for a carrier metered by mass when its heat content is unknown (reference default)
MASS_DEFAULTS: dict[str, str] = {"steam": "steam_low_pressure"}


class Coefficient(BaseModel):
    """One GB/T 2589 coefficient: kg of standard coal per unit of the carrier."""

    model_config = ConfigDict(frozen=True, extra="allow")

    id: str
    value: float = Field(gt=0, allow_inf_nan=False)
    unit: str                                  # "kg / kWh", "kg / kg", "kg / m^3" (per Nm3), "kg / MJ"
    method: CoalMethod | None = None           # electricity and heat rows only
    ncv_as_published: str | None = None
    note: str | None = None
    confidence: str | None = None
    source: str | None = None                  # a row's own source; the set's when absent
    year: int | None = None                    # equal-value rows: the year the coefficient describes


class CoefficientSet(BaseModel):
    """A named, versioned set of coefficients (id, version and source as in the file's [meta])."""

    model_config = ConfigDict(frozen=True)

    id: str
    version: str
    source: str
    kgce_kj: float = 29_307.0
    coefficients: dict[str, Coefficient]

    def row(self, key: str, method: CoalMethod) -> Coefficient:
        """The coefficient for a carrier's key: `key` itself (fuels), else `key_<method>` (electricity, heat)."""
        found = self.coefficients.get(key) or self.coefficients.get(f"{key}_{method.value}")
        if found is None:
            hint = (" (the equal-value method needs the year's published coefficient: add a row "
                    f"'{key}_equal' with with_coefficients, or --kgce-equal on the command line)"
                    if method is CoalMethod.EQUAL else "")
            raise CoalError(f"no standard-coal coefficient '{key}' or '{key}_{method.value}' in set "
                            f"{self.id!r}{hint}")
        return found

    def with_coefficients(self, extra: Mapping[str, Coefficient]) -> CoefficientSet:
        """A new set with `extra` added (same id replaces); its version gains the hash of the whole content."""
        rows = {**self.coefficients, **extra}
        return self.model_copy(update={"coefficients": rows, "version": f"{self.version}+{_content_hash(rows)}"})

    def row_version(self, row: Coefficient) -> str:
        """`<set id>@<set version>:<hash of the row>`: names exactly which data produced a kgce figure."""
        body = json.dumps(row.model_dump(mode="json"), sort_keys=True, ensure_ascii=False).encode()
        return f"{self.id}@{self.version}:{hashlib.sha256(body).hexdigest()[:12]}"


def _content_hash(rows: Mapping[str, Coefficient]) -> str:
    body = {k: v.model_dump(mode="json") for k, v in sorted(rows.items())}
    return "sha256-" + hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:12]


def parse_coefficients(data: Mapping[str, Any]) -> CoefficientSet:
    """Validate a coefficient document (parsed TOML); raises CoalError listing every `key.path: why`."""
    meta = data.get("meta")
    raw = data.get("coefficients")
    problems: list[str] = []
    if not isinstance(meta, Mapping) or not all(str(meta.get(k) or "").strip() for k in ("id", "version", "source")):
        problems.append("meta: needs id, version and source")
        meta = meta if isinstance(meta, Mapping) else {}
    if not isinstance(raw, Mapping) or not raw:
        raise CoalError("; ".join([*problems, "coefficients: missing or empty table"]))
    rows: dict[str, Coefficient] = {}
    for key, body in raw.items():
        if not isinstance(body, Mapping):
            problems.append(f"coefficients.{key}: must be a table")
            continue
        try:
            row = Coefficient.model_validate({**body, "id": key})
            conversion_factor(row.unit, row.unit)
        except ValidationError as exc:
            problems += [f"coefficients.{key}.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
            continue
        except UnitError as exc:
            problems.append(f"coefficients.{key}.unit: {exc}")
            continue
        if not row.unit.replace(" ", "").startswith("kg/"):
            problems.append(f"coefficients.{key}.unit: {row.unit!r} must be kg of standard coal per unit")
        rows[key] = row
    if problems:
        raise CoalError("; ".join(problems))
    return CoefficientSet(id=str(meta["id"]), version=str(meta["version"]), source=str(meta["source"]),
                          kgce_kj=float(meta.get("kgce_kj", 29_307.0)), coefficients=rows)


def parse_coefficient_toml(text: str) -> CoefficientSet:
    try:
        return parse_coefficients(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise CoalError(f"not valid TOML: {exc}") from exc


@cache
def default_coefficients() -> CoefficientSet:
    """The GB/T 2589-2020 Appendix A coefficients shipped with carbonwatch; parsed once."""
    from calc.data import energy_coefficient_text

    return parse_coefficient_toml(energy_coefficient_text())


@dataclass(frozen=True, slots=True)
class CoalRecipe:
    """kgce per unit of a carrier's metered quantity, and the coefficient behind it."""

    carrier: str
    unit: str
    method: CoalMethod
    kgce_per_unit: float
    coefficient: Coefficient | None     # None: an energy quantity of a fuel, counted by the kgce's definition
    version: str
    source: str

    @property
    def coefficient_id(self) -> str:
        return self.coefficient.id if self.coefficient else "kgce_definition"


class CoalResult(BaseModel):
    """kgce of one quantity and everything needed to reproduce it."""

    model_config = ConfigDict(frozen=True)

    kgce: float
    carrier: str
    quantity: float
    unit: str
    method: CoalMethod
    coefficient_id: str
    coefficient_version: str
    source: str

    @property
    def tce(self) -> float:
        return self.kgce / 1000.0


def _is(unit: str, like: str) -> bool:
    try:
        conversion_factor(unit, like)
    except UnitError:
        return False
    return True


def coal_recipe(carrier: str, unit: str, coefficients: CoefficientSet | None = None, *,
                method: CoalMethod | str = CoalMethod.EQUIVALENT, conditions: Conditions | None = None,
                heat_gj_per_unit: float | None = None) -> CoalRecipe:
    """kgce per unit of `unit` of `carrier`. Raises CoalError naming what is missing.

    - an energy quantity of a fuel counts as energy / 29 307 kJ (the kgce's definition);
    - natural gas by volume is corrected to Nm3 with the metering conditions, as for its CO2e;
    - liquid fuels by volume need `conditions.density`;
    - steam and hot water count as the heat they carry: `heat_gj_per_unit` (GJ per metered unit, the emission
      recipe's activity; `coal_recipe_for` passes it); steam by mass without it uses the low-pressure reference.
    """
    row_of = BY_NAME.get(str(carrier))
    if row_of is None:
        raise CoalError(f"unknown carrier {carrier!r}; use one of {sorted(BY_NAME)}")
    try:
        method = CoalMethod(method)
    except ValueError:
        raise CoalError(f"unknown standard-coal method {method!r}; use one of {[m.value for m in CoalMethod]}")\
            from None
    coefs = coefficients or default_coefficients()
    cond = conditions or Conditions()

    def made(per_unit: float, row: Coefficient | None) -> CoalRecipe:
        version = coefs.row_version(row) if row else f"{coefs.id}@{coefs.version}:kgce_kj"
        source = (row.source if row and row.source else coefs.source)
        return CoalRecipe(row_of.value, unit, method, per_unit, row, version, source)

    if row_of.family == "fuel" and _is(unit, "kJ"):
        return made(conversion_factor(unit, "kJ") / coefs.kgce_kj, None)
    if row_of.family == "heat" and not _is(unit, "kJ"):
        if heat_gj_per_unit is None:
            default = MASS_DEFAULTS.get(row_of.value)
            if default is None or method is not CoalMethod.EQUIVALENT or not _is(unit, "kg"):
                raise CoalError(f"{row_of.value} metered in {unit!r} needs its heat content per unit "
                                "(the conditions its CO2e uses: pressure, temperature); give heat_gj_per_unit")
            return made(_per_unit(unit, coefs.row(default, method)), coefs.row(default, method))
        heat = coefs.row(row_of.kgce_key, method)
        return made(heat_gj_per_unit * _per_unit("GJ", heat), heat)
    row = coefs.row(row_of.kgce_key, method)
    if row_of.value == "natural_gas" and (is_normal_volume_unit(unit) or _is(unit, "m^3")):
        nm3 = 1.0 if is_normal_volume_unit(unit) else conversion_factor(unit, "m^3") * normal_volume_ratio(
            cond.pressure, cond.temperature)
        return made(nm3 * _per_unit("m^3", row), row)
    if _is(unit, "m^3") and row.unit.replace(" ", "").endswith("/kg"):
        if cond.density is None:
            raise CoalError(f"{row_of.value} metered by volume ({unit}) needs a density, e.g. '0.84 kg/L'")
        kg = conversion_factor(unit, "m^3") * cond.density.value * conversion_factor(cond.density.unit, "kg / m^3")
        return made(kg * _per_unit("kg", row), row)
    return made(_per_unit(unit, row), row)


def _per_unit(unit: str, row: Coefficient) -> float:
    """kg of standard coal per `unit` under a coefficient (pint checks the dimensions)."""
    try:
        return row.value * conversion_factor(f"({unit}) * ({row.unit})", "kg")
    except UnitError as exc:
        raise CoalError(f"cannot count {unit!r} with coefficient {row.id} ({row.value} {row.unit}): {exc}") from exc


def coal_recipe_for(rec: Recipe, coefficients: CoefficientSet | None = None, *,
                    method: CoalMethod | str = CoalMethod.EQUIVALENT,
                    conditions: Conditions | None = None) -> CoalRecipe:
    """The kgce recipe of a meter whose emission recipe is `rec`: steam and hot water count the same heat (GJ per
    unit) as their CO2e, so kgce and CO2e of one meter always describe the same energy."""
    heat = rec.base_per_unit if BY_NAME[rec.carrier].family == "heat" and rec.base_unit == "GJ" else None
    return coal_recipe(rec.carrier, rec.unit, coefficients, method=method, conditions=conditions,
                       heat_gj_per_unit=heat)


def kgce(quantity: float, unit: str, carrier: str, coefficients: CoefficientSet | None = None, *,
         method: CoalMethod | str = CoalMethod.EQUIVALENT, conditions: Conditions | None = None,
         heat_gj_per_unit: float | None = None) -> CoalResult:
    """kgce of one quantity of a carrier, with its coefficient id, version and source (the scalar path)."""
    rec = coal_recipe(carrier, unit, coefficients, method=method, conditions=conditions,
                      heat_gj_per_unit=heat_gj_per_unit)
    return CoalResult(kgce=quantity * rec.kgce_per_unit, carrier=rec.carrier, quantity=quantity, unit=unit,
                      method=rec.method, coefficient_id=rec.coefficient_id, coefficient_version=rec.version,
                      source=rec.source)


def kgce_array(quantities: npt.ArrayLike, rec: CoalRecipe) -> npt.NDArray[np.float64]:
    """kgce of an array of quantities of one carrier, each in `rec.unit` (one multiply)."""
    result: npt.NDArray[np.float64] = np.asarray(quantities, dtype=np.float64) * rec.kgce_per_unit
    return result


def kgce_gather(quantities: npt.ArrayLike, recipe_index: npt.ArrayLike,
                recipes: list[CoalRecipe]) -> npt.NDArray[np.float64]:
    """kgce of mixed carriers: quantity i is in `recipes[recipe_index[i]].unit` (a gather and a multiply).
    An index outside the recipes raises CoalError instead of reading another carrier's coefficient."""
    idx = np.asarray(recipe_index, dtype=np.intp)
    if idx.size and (idx.min() < 0 or idx.max() >= len(recipes)):
        raise CoalError(f"recipe index out of range 0..{len(recipes) - 1}")
    per_unit = np.array([r.kgce_per_unit for r in recipes], dtype=np.float64)
    result: npt.NDArray[np.float64] = per_unit[idx] * np.asarray(quantities, dtype=np.float64)
    return result


def equal_value_row(carrier: str, value: float, unit: str, source: str, year: int | None = None) -> Coefficient:
    """An equal-value coefficient for electricity or heat (published yearly, so not in the shipped data)."""
    row_of = BY_NAME.get(carrier)
    if row_of is None or row_of.family == "fuel":
        raise CoalError(f"the equal-value method applies to electricity and heat carriers, not {carrier!r}")
    if not source.strip():
        raise CoalError("an equal-value coefficient needs its source (e.g. the year's published statistics)")
    try:
        return Coefficient(id=f"{row_of.kgce_key}_equal", value=value, unit=unit, method=CoalMethod.EQUAL,
                           source=source, year=year)
    except ValidationError as exc:
        raise CoalError(f"equal-value coefficient {value} {unit}: {exc.errors()[0]['msg']}") from None
