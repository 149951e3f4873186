"""A plant's own factor choices: the [factors] section and [[factor_overrides]] of the plant TOML, merged
with a factor set into a new versioned set plus per-meter pins (site-wide, per area, per meter).

    [factors]
    gwp = "AR6"                    # GWP100 set (default: the factor set's, AR5 for the shipped one)
    electricity_method = "location"
    fuel_method = "gbt32150"       # or "ipcc"
    [factors.custom.my_gas_ncv]    # extra factors, same fields as a factor file's [factors.<id>]; they
    ...                            # compete in selection unless `only_when_pinned = true`
    [[factor_overrides]]           # pin a factor id, or give value + unit + source inline
    meter = "boiler-1"             # or area = "..." or site = "..." (at most one; none = whole plant)
    carrier = "natural_gas"
    kind = "net_calorific_value"   # or method = "market" for electricity
    factor = "my_gas_ncv"

Meters may carry `conditions = { pressure = "0.8 MPa", temperature = "200 degC" }` in [[meters]].
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from calc.conditions import ConditionError, Measure, parse_measure
from calc.factors import ELECTRICITY_KINDS, Factor, FactorError, FactorSet, check_factor_document
from calc.plant import Meter, Plant
from calc.recipes import CARRIER_METHODS, FUELS, Conditions, Pins

_SCOPE_OF_KIND = {"grid_average": "scope2_location", "grid_residual_like": "scope2_market",
                  "grid_ets_parameter": "scope2_location", "heat_emission_factor": "scope2_heat",
                  "net_calorific_value": "scope1_stationary", "carbon_content_per_heat": "scope1_stationary",
                  "carbon_oxidation_rate": "scope1_stationary", "fuel_emission_factor": "scope1_stationary"}
_SELECTORS = ("meter", "area", "site")
_FUEL_METHODS = ("gbt32150", "ipcc")


def _one_of(value: str, allowed: Collection[str]) -> str:
    """`value` if it is among `allowed`, else the error every [factors] choice gives."""
    if value not in allowed:
        raise ValueError(f"{value!r} is not one of {sorted(allowed)}")
    return value


@dataclass(frozen=True, slots=True)
class Override:
    """One [[factor_overrides]] entry, resolved to a factor id in the merged set."""

    index: int
    carrier: str
    kind: str
    gas: str
    factor_id: str
    meter: str | None = None
    area: str | None = None
    site: str | None = None

    def applies(self, meter: Meter, site: str) -> bool:
        if meter.carrier != self.carrier:
            return False
        if self.meter is not None:
            return meter.id == self.meter
        if self.area is not None:
            return meter.area == self.area
        return self.site is None or self.site == site

    @property
    def rank(self) -> int:
        """More specific wins: meter (3) over area (2) over site (1) over the whole plant (0)."""
        return 3 if self.meter else 2 if self.area else 1 if self.site else 0


@dataclass(frozen=True)
class PlantFactors:
    """The merged factor set and the plant's rules for choosing factors; built once at start-up."""

    factors: FactorSet
    overrides: tuple[Override, ...] = ()
    electricity_method: str = "location"
    fuel_method: str = "gbt32150"
    conditions: Mapping[str, Conditions] = field(default_factory=dict)

    def pins_for(self, meter: Meter, site: str) -> Pins:
        pins: dict[tuple[str, str], str] = {}
        for rule in sorted((o for o in self.overrides if o.applies(meter, site)), key=lambda o: (o.rank, o.index)):
            pins[(rule.kind, rule.gas)] = rule.factor_id
        return pins

    def method_for(self, carrier: str) -> str:
        if carrier == "electricity":
            return self.electricity_method
        if carrier in FUELS:
            return self.fuel_method
        return CARRIER_METHODS[carrier][0]


def _conditions(raw: Any, path: str, problems: list[str]) -> Conditions | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        problems.append(f"{path}: must be a table like {{ pressure = \"0.8 MPa\" }}")
        return None
    values: dict[str, Measure] = {}
    for key, text in raw.items():
        if key not in ("pressure", "temperature", "return_temperature", "density"):
            problems.append(f"{path}.{key}: unknown condition (pressure, temperature, return_temperature, density)")
            continue
        try:
            values[key] = parse_measure(str(text), f"{path}.{key}")
        except ConditionError as exc:
            problems.append(str(exc))
    return Conditions(**values)


class FactorsSection(BaseModel):
    """[factors]: the plant's GWP set, its methods, and factors of its own (checked as a factor file's)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    gwp: str | None = Field(default=None, description="GWP100 set, e.g. \"AR6\" (default: the factor set's, AR5 "
                            "for the shipped one)")
    electricity_method: str = Field(default="location", description="\"location\", \"market\" or \"ets\"")
    fuel_method: str = Field(default="gbt32150", description="\"gbt32150\" or \"ipcc\"")
    custom: dict[str, Any] | None = Field(
        default=None, description="[factors.custom.<id>] tables, with the fields of a factor file's [factors.<id>]; "
        "they compete in selection unless `only_when_pinned = true`")

    @field_validator("electricity_method")
    @classmethod
    def _electricity(cls, method: str) -> str:
        return _one_of(method, ELECTRICITY_KINDS)

    @field_validator("fuel_method")
    @classmethod
    def _fuel(cls, method: str) -> str:
        return _one_of(method, _FUEL_METHODS)


class FactorOverride(BaseModel):
    """One [[factor_overrides]] entry: where it applies, what it pins, and a pinned factor id or an inline factor.

    Keys beyond these (value, unit, source, ...) are the inline factor's, checked as a factor file's entry.
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    meter: str | None = Field(default=None, description="applies to this meter (at most one of meter, area, "
                              "site; none: the whole plant); more specific wins")
    area: str | None = Field(default=None, description="applies to the meters of this area")
    site: str | None = Field(default=None, description="applies to the plant's site (must be its id)")
    carrier: str = Field(description="the carrier whose factor is pinned, e.g. \"natural_gas\"")
    method: str | None = Field(default=None, description="electricity: \"location\" | \"market\" | \"ets\" "
                               "gives the kind")
    kind: str = Field(default="", validate_default=True, description="factor kind pinned, e.g. "
                      "net_calorific_value (required unless `method` gives it)")
    gas: str = Field(default="", description="the gas of a per-gas (IPCC) factor")
    factor: str | None = Field(default=None, description="a factor id of the set or [factors.custom]; without "
                               "it, value, unit, source (and a factor file's other keys) give the factor inline")

    @model_validator(mode="before")
    @classmethod
    def _one_selector(cls, raw: Any) -> Any:
        chosen = [k for k in _SELECTORS if isinstance(raw, Mapping) and k in raw]
        if len(chosen) > 1:
            raise ValueError(f"give at most one of meter, area, site (got {chosen})")
        return raw

    @field_validator("carrier")
    @classmethod
    def _carrier(cls, carrier: str) -> str:
        return _one_of(carrier, CARRIER_METHODS)

    @field_validator("kind")
    @classmethod
    def _kind(cls, kind: str, info: ValidationInfo) -> str:
        if not kind and info.data.get("carrier") == "electricity":
            kind = ELECTRICITY_KINDS.get(str(info.data.get("method")), ("",))[0]
        if not kind:
            raise ValueError("missing (e.g. net_calorific_value, heat_emission_factor; "
                             "or method = \"location\" | \"market\" for electricity)")
        return kind

    @property
    def rank_name(self) -> str:
        return self.meter or self.area or self.site or "plant"


def _problems(exc: ValidationError, path: str) -> list[str]:
    """`path.key: why` per error, in the words the hand-written checks used (unknown key, no `Value error, `)."""
    lines = []
    for err in exc.errors():
        where = ".".join([path, *(str(p) for p in err["loc"])])
        why = "unknown key" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
        lines.append(f"{where}: {why}")
    return lines


def _overrides(raw_rules: Any, plant: Plant, known: Mapping[str, Any], base: FactorSet,
               problems: list[str]) -> tuple[list[Override], dict[str, Factor]]:
    """The valid [[factor_overrides]] resolved to factor ids, and the inline factors they add."""
    extra: dict[str, Factor] = {}
    overrides: list[Override] = []
    meters, areas = plant.meters_by_id, {m.area for m in plant.meters}
    for i, raw in enumerate(raw_rules if isinstance(raw_rules, list) else []):
        path = f"factor_overrides[{i}]"
        if not isinstance(raw, Mapping):
            problems.append(f"{path}: must be a table")
            continue
        try:
            rule = FactorOverride.model_validate(raw)
        except ValidationError as exc:
            problems += _problems(exc, path)
            continue
        if rule.meter is not None and rule.meter not in meters:
            problems.append(f"{path}.meter: no meter {rule.meter!r} in the plant")
        if rule.area is not None and rule.area not in areas:
            problems.append(f"{path}.area: no area {rule.area!r} in the plant")
        if rule.site is not None and rule.site != plant.site.id:
            problems.append(f"{path}.site: the plant's site is {plant.site.id!r}, not {rule.site!r}")
        if rule.factor is not None:
            factor_id = rule.factor
            if factor_id not in known and factor_id not in extra and factor_id not in base.factors:
                problems.append(f"{path}.factor: no factor {factor_id!r} in the set or [factors.custom]")
                continue
        else:
            factor_id = f"override.{rule.rank_name}.{rule.carrier}.{rule.kind}" + (f".{rule.gas}" if rule.gas else "")
            body = {k: v for k, v in raw.items() if k not in (*_SELECTORS, "carrier", "method")}
            body.setdefault("scope", _SCOPE_OF_KIND.get(rule.kind, "reference"))
            body.setdefault("region", plant.site.region)
            body.update(kind=rule.kind, only_when_pinned=True,
                        carrier=None if rule.carrier == "electricity" or rule.kind.startswith("heat") else rule.carrier)
            found, rule_problems = check_factor_document({"factors": {factor_id: body}})
            problems += [p.replace(f"factors.{factor_id}", path, 1) for p in rule_problems]
            extra.update(found)
        pin_gas = rule.gas if rule.kind == "fuel_emission_factor" else ""  # only IPCC rows come one per gas
        overrides.append(Override(i, rule.carrier, rule.kind, pin_gas, factor_id, rule.meter, rule.area, rule.site))
    return overrides, extra


def plant_factors(base: FactorSet, plant: Plant, data: Mapping[str, Any], source: str = "<plant>") -> PlantFactors:
    """Merge a plant file's [factors], [[factor_overrides]] and meter conditions with `base` (pure).

    Raises FactorError listing every problem as `FILE: key.path: why`.
    """
    problems: list[str] = []
    raw = data.get("factors", {})
    if not isinstance(raw, Mapping):
        raise FactorError(f"{source}: factors: must be a table")
    try:
        section = FactorsSection.model_validate(raw)
    except ValidationError as exc:
        problems += _problems(exc, "factors")
        gwp, custom = raw.get("gwp"), raw.get("custom")  # the rest is still checked with what did validate
        section = FactorsSection.model_construct(gwp=gwp if isinstance(gwp, str) else None,
                                                 custom=custom if isinstance(custom, dict) else None)
    custom, custom_problems = ({}, []) if section.custom is None else \
        check_factor_document({"factors": section.custom})
    problems += [p.replace("factors", "factors.custom", 1) for p in custom_problems]
    gwp = (base.gwp_set if section.gwp is None else section.gwp).upper()
    overrides, inline = _overrides(data.get("factor_overrides", []), plant, custom, base, problems)
    extra: dict[str, Factor] = {**custom, **inline}
    conditions: dict[str, Conditions] = {}
    for j, raw_meter in enumerate(data.get("meters", []) or []):
        if isinstance(raw_meter, Mapping) and "conditions" in raw_meter:
            cond = _conditions(raw_meter["conditions"], f"meters[{j}].conditions", problems)
            if cond is not None:
                conditions[str(raw_meter.get("id"))] = cond
    if not any(f.kind == "gwp100" and (f.assessment or "").upper() == gwp
               for f in [*base.factors.values(), *extra.values()]):
        problems.append(f"factors.gwp: no GWP100 values of assessment {gwp!r} in the set")
    if problems:
        raise FactorError("\n".join(f"{source}: {p}" for p in problems))
    merged = base.with_factors(extra, name=f"{base.name}+{plant.site.id}", gwp_set=gwp) if extra or \
        gwp != base.gwp_set else base
    return PlantFactors(merged, tuple(overrides), section.electricity_method, section.fuel_method, conditions)
