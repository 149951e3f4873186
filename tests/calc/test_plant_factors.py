"""[factors] and [[factor_overrides]] as pydantic models: each bad input is named by file, key path and why, in
the words the hand-written checks used; valid ones resolve to the same pins."""

from __future__ import annotations

from typing import Any

import pytest

from calc.factors import FactorError, default_factor_set
from calc.plant import parse_plant
from calc.plant_factors import FactorOverride, FactorsSection, plant_factors

FS = default_factor_set()
PLANT: dict[str, Any] = {"site": {"id": "p1", "region": "CN", "start": "2026-01-01T00:00:00Z"},
                         "meters": [{"id": "m-elec", "area": "a1", "carrier": "electricity"},
                                    {"id": "boiler", "area": "a2", "carrier": "natural_gas"}]}
CARRIERS = "['diesel', 'electricity', 'fuel_oil', 'gasoline', 'heat', 'hot_water', 'lpg', 'natural_gas', " \
           "'raw_coal', 'steam']"
PIN = {"carrier": "electricity", "method": "location", "factor": "cn_grid_avg_2023"}


def problems(factors: Any = None, overrides: Any = None) -> list[str]:
    data = dict(PLANT)
    if factors is not None:
        data["factors"] = factors
    if overrides is not None:
        data["factor_overrides"] = overrides
    with pytest.raises(FactorError) as refused:
        plant_factors(FS, parse_plant(PLANT), data, "plant.toml")
    return str(refused.value).split("\n")


@pytest.mark.parametrize(("factors", "overrides", "expected"), [
    ("x", None, ["plant.toml: factors: must be a table"]),
    ({"typo": 1}, None, ["plant.toml: factors.typo: unknown key"]),
    ({"electricity_method": "nope"}, None,
     ["plant.toml: factors.electricity_method: 'nope' is not one of ['ets', 'location', 'market']"]),
    ({"fuel_method": "guess"}, None, ["plant.toml: factors.fuel_method: 'guess' is not one of ['gbt32150', 'ipcc']"]),
    ({"gwp": "AR9"}, None, ["plant.toml: factors.gwp: no GWP100 values of assessment 'AR9' in the set"]),
    ({"custom": {}}, None, ["plant.toml: factors.custom: missing or empty table"]),
    (None, [5], ["plant.toml: factor_overrides[0]: must be a table"]),
    (None, [{**PIN, "meter": "m-elec", "area": "a1"}],
     ["plant.toml: factor_overrides[0]: give at most one of meter, area, site (got ['meter', 'area'])"]),
    (None, [{"carrier": "water", "kind": "k"}], [f"plant.toml: factor_overrides[0].carrier: 'water' is not one of "
                                                 f"{CARRIERS}"]),
    (None, [{"kind": "net_calorific_value"}], ["plant.toml: factor_overrides[0].carrier: Field required"]),
    (None, [{"carrier": "electricity", "method": "bogus"}],
     ["plant.toml: factor_overrides[0].kind: missing (e.g. net_calorific_value, heat_emission_factor; or method = "
      "\"location\" | \"market\" for electricity)"]),
    (None, [{**PIN, "meter": "nope"}, {**PIN, "area": "zz"}, {**PIN, "site": "px", "factor": "x"}],
     ["plant.toml: factor_overrides[0].meter: no meter 'nope' in the plant",
      "plant.toml: factor_overrides[1].area: no area 'zz' in the plant",
      "plant.toml: factor_overrides[2].site: the plant's site is 'p1', not 'px'",
      "plant.toml: factor_overrides[2].factor: no factor 'x' in the set or [factors.custom]"]),
    (None, [{"carrier": "natural_gas", "kind": "net_calorific_value", "value": 1.0, "unit": "GJ / m^3"}],
     ["plant.toml: factor_overrides[0].source: Field required"]),
])
def test_each_bad_input_is_named_by_file_key_path_and_why(factors: Any, overrides: Any, expected: list[str]) -> None:
    assert problems(factors, overrides) == expected


def test_valid_sections_resolve_to_pins_and_inline_factors() -> None:
    plant = parse_plant(PLANT)
    data = {**PLANT, "factors": {"gwp": "ar6", "fuel_method": "ipcc"}, "factor_overrides": [
        {**PIN, "area": "a1"},
        {"site": "p1", "carrier": "natural_gas", "kind": "net_calorific_value", "value": 0.036, "unit": "GJ / m^3",
         "source": "certificate"}]}
    pf = plant_factors(FS, plant, data, "plant.toml")
    assert (pf.factors.gwp_set, pf.electricity_method, pf.fuel_method) == ("AR6", "location", "ipcc")
    assert pf.pins_for(plant.meter("m-elec"), "p1") == {("grid_average", ""): "cn_grid_avg_2023"}
    inline = "override.p1.natural_gas.net_calorific_value"
    assert pf.pins_for(plant.meter("boiler"), "p1") == {("net_calorific_value", ""): inline}
    assert pf.factors.factors[inline].value == pytest.approx(0.036)


def test_the_models_give_the_defaults_and_the_kind_an_electricity_method_implies() -> None:
    section = FactorsSection.model_validate({})
    assert (section.gwp, section.electricity_method, section.fuel_method, section.custom) == \
        (None, "location", "gbt32150", None)
    assert FactorOverride.model_validate({"carrier": "electricity", "method": "market"}).kind == "grid_residual_like"
    assert FactorOverride.model_validate({"carrier": "steam", "kind": "heat_emission_factor"}).rank_name == "plant"
