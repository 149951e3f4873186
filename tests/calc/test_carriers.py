"""The carrier table (calc.carriers): every row is complete, the old lists are views of it, and every
(carrier, method) makes a recipe from the shipped factors in the carrier's default unit."""

from __future__ import annotations

from datetime import date

import pytest

from calc import factors, plant, recipes, table
from calc.carriers import BY_NAME, Carrier, of_family
from calc.conditions import Measure
from calc.factors import ELECTRICITY_KINDS, default_factor_set
from calc.recipes import RECIPES, Conditions, recipe
from calc.units import conversion_factor

# what a meter of these carriers must also report (the recipe raises ConditionError without it)
CONDITIONS = {"steam": Conditions(pressure=Measure(0.8, "MPa")),
              "hot_water": Conditions(temperature=Measure(80.0, "degC"))}
SCOPES = {"electricity": {"scope2_location", "scope2_market"}, "fuel": {"scope1"}, "heat": {"scope2_location"}}


def test_every_list_is_a_view_of_the_table() -> None:
    names = [c.value for c in Carrier]
    assert plant.Carrier is Carrier
    assert set(names) == factors.CARRIERS
    assert list(recipes.CARRIER_METHODS) == names
    assert list(table.DEFAULT_UNITS) == names
    assert set(recipes.FUELS) | set(recipes.HEATS) | {"electricity"} == set(names)
    assert {c.value: c for c in Carrier} == BY_NAME
    assert set(RECIPES) == {c.family for c in Carrier}, "a family without carriers, or a carrier without a recipe"


@pytest.mark.parametrize("carrier", list(Carrier))
def test_each_row_is_complete(carrier: Carrier) -> None:
    assert carrier.value == carrier.name.lower()
    assert carrier in of_family(carrier.family)
    assert carrier.methods and len(set(carrier.methods)) == len(carrier.methods)
    assert carrier.default_method == carrier.methods[0] == recipes.default_method(carrier)
    if carrier.family == "electricity":
        assert set(carrier.methods) <= set(ELECTRICITY_KINDS)
    conversion_factor(carrier.default_unit, carrier.default_unit)  # pint knows it
    assert table.DEFAULT_UNITS[carrier] == carrier.default_unit


@pytest.mark.parametrize(("carrier", "method"), [(c, m) for c in Carrier for m in c.methods])
def test_each_method_makes_a_recipe_in_the_default_unit(carrier: Carrier, method: str) -> None:
    made = recipe(default_factor_set(), carrier, carrier.default_unit, region="CN", at=date(2023, 6, 1),
                  method=method, conditions=CONDITIONS.get(carrier.value))
    assert (made.carrier, made.method, made.unit) == (carrier.value, method, carrier.default_unit)
    assert made.co2e_per_unit > 0
    assert made.scope in SCOPES[carrier.family]
