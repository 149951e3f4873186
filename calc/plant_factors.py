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

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from calc.conditions import ConditionError, Measure, parse_measure
from calc.factors import ELECTRICITY_KINDS, Factor, FactorError, FactorSet, check_factor_document
from calc.plant import Meter, Plant
from calc.recipes import CARRIER_METHODS, FUELS, Conditions, Pins

_SCOPE_OF_KIND = {"grid_average": "scope2_location", "grid_residual_like": "scope2_market",
                  "grid_ets_parameter": "scope2_location", "heat_emission_factor": "scope2_heat",
                  "net_calorific_value": "scope1_stationary", "carbon_content_per_heat": "scope1_stationary",
                  "carbon_oxidation_rate": "scope1_stationary", "fuel_emission_factor": "scope1_stationary"}
_SELECTORS = ("meter", "area", "site")


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


def plant_factors(base: FactorSet, plant: Plant, data: Mapping[str, Any], source: str = "<plant>") -> PlantFactors:
    """Merge a plant file's [factors], [[factor_overrides]] and meter conditions with `base` (pure).

    Raises FactorError listing every problem as `FILE: key.path: why`.
    """
    problems: list[str] = []
    section = data.get("factors", {})
    if not isinstance(section, Mapping):
        raise FactorError(f"{source}: factors: must be a table")
    unknown = set(section) - {"gwp", "electricity_method", "fuel_method", "custom"}
    problems += [f"factors.{key}: unknown key" for key in sorted(unknown)]
    custom, custom_problems = ({}, []) if "custom" not in section else \
        check_factor_document({"factors": section["custom"]})
    problems += [p.replace("factors.", "factors.custom.", 1) for p in custom_problems]
    elec = str(section.get("electricity_method", "location"))
    if elec not in ELECTRICITY_KINDS:
        problems.append(f"factors.electricity_method: {elec!r} is not one of {sorted(ELECTRICITY_KINDS)}")
    fuel = str(section.get("fuel_method", "gbt32150"))
    if fuel not in ("gbt32150", "ipcc"):
        problems.append(f"factors.fuel_method: {fuel!r} is not one of ['gbt32150', 'ipcc']")
    gwp = str(section.get("gwp", base.gwp_set)).upper()
    extra: dict[str, Factor] = dict(custom)
    overrides: list[Override] = []
    meters = {m.id: m for m in plant.meters}
    areas = {m.area for m in plant.meters}
    raw_rules = data.get("factor_overrides", [])
    for i, rule in enumerate(raw_rules if isinstance(raw_rules, list) else []):
        path = f"factor_overrides[{i}]"
        if not isinstance(rule, Mapping):
            problems.append(f"{path}: must be a table")
            continue
        chosen = [k for k in _SELECTORS if k in rule]
        if len(chosen) > 1:
            problems.append(f"{path}: give at most one of meter, area, site (got {chosen})")
            continue
        carrier = str(rule.get("carrier", ""))
        if carrier not in CARRIER_METHODS:
            problems.append(f"{path}.carrier: {carrier!r} is not one of {sorted(CARRIER_METHODS)}")
            continue
        if "meter" in rule and rule["meter"] not in meters:
            problems.append(f"{path}.meter: no meter {rule['meter']!r} in the plant")
        if "area" in rule and rule["area"] not in areas:
            problems.append(f"{path}.area: no area {rule['area']!r} in the plant")
        if "site" in rule and rule["site"] != plant.site.id:
            problems.append(f"{path}.site: the plant's site is {plant.site.id!r}, not {rule['site']!r}")
        kind = rule.get("kind") or (ELECTRICITY_KINDS.get(str(rule.get("method")), ("",))[0]
                                    if carrier == "electricity" else "")
        if not kind:
            problems.append(f"{path}.kind: missing (e.g. net_calorific_value, heat_emission_factor; "
                            "or method = \"location\" | \"market\" for electricity)")
            continue
        gas = str(rule.get("gas", ""))
        if "factor" in rule:
            factor_id = str(rule["factor"])
            if factor_id not in extra and factor_id not in base.factors:
                problems.append(f"{path}.factor: no factor {factor_id!r} in the set or [factors.custom]")
                continue
        else:
            scope_name = rule.get("meter") or rule.get("area") or rule.get("site") or "plant"
            factor_id = f"override.{scope_name}.{carrier}.{kind}" + (f".{gas}" if gas else "")
            body = {k: v for k, v in rule.items() if k not in (*_SELECTORS, "carrier", "method")}
            body.setdefault("scope", _SCOPE_OF_KIND.get(kind, "reference"))
            body.setdefault("region", plant.site.region)
            body.update(kind=kind, carrier=None if carrier == "electricity" or kind.startswith("heat") else carrier,
                        only_when_pinned=True)
            found, rule_problems = check_factor_document({"factors": {factor_id: body}})
            problems += [p.replace(f"factors.{factor_id}", path, 1) for p in rule_problems]
            extra.update(found)
        pin_gas = gas if kind == "fuel_emission_factor" else ""  # only IPCC rows come one per gas
        overrides.append(Override(i, carrier, str(kind), pin_gas, factor_id, rule.get("meter"), rule.get("area"),
                                  rule.get("site")))
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
    return PlantFactors(merged, tuple(overrides), elec, fuel, conditions)
