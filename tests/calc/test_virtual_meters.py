"""[[virtual_meters]] in the plant file: the expression, and every error naming the key that is wrong."""

from __future__ import annotations

from typing import Any

import pytest

from calc.carriers import Carrier
from calc.plant import PlantError, parse_plant
from calc.virtual_meters import Term, VirtualMeterError, parse_expression

SITE = {"id": "s", "region": "CN", "start": "2026-01-01T00:00:00Z"}
METERS = [{"id": "main", "area": "a", "carrier": "electricity"},
          {"id": "press-1", "area": "a", "carrier": "electricity"},
          {"id": "press-2", "area": "a", "carrier": "electricity"},
          {"id": "gas", "area": "a", "carrier": "natural_gas"}]
VARIABLES = [{"id": "out", "area": "a", "kind": "production", "quantity": "production", "unit": "count"}]


def plant(*virtual: dict[str, Any]) -> Any:
    return parse_plant({"site": SITE, "meters": METERS, "variables": VARIABLES, "virtual_meters": list(virtual)},
                       "plant.toml")


def vm(vid: str, expression: str, **more: Any) -> dict[str, Any]:
    return {"id": vid, "area": "a", "expression": expression, **more}


def test_the_rest_of_a_main_meter() -> None:
    p = plant(vm("rest", "main - press-1 - press-2", description="unmetered load"))
    (r,) = p.virtual().values()
    assert r.meter.terms == (Term(1, "main"), Term(-1, "press-1"), Term(-1, "press-2"))
    assert (r.carrier, r.unit) == (Carrier.ELECTRICITY, "kWh")
    assert r.base == r.meter.terms


def test_a_virtual_meter_of_virtual_meters_is_ordered_after_them_and_expands_to_real_meters() -> None:
    p = plant(vm("rest", "presses + rest0", unit="MWh"), vm("presses", "press-1 + press-2"),
              vm("rest0", "main - presses"))
    order = list(p.virtual())
    assert order.index("presses") < order.index("rest0") < order.index("rest")
    assert set(p.virtual()["rest"].base) == {Term(1, "main")}  # presses cancel out
    assert p.virtual()["rest"].unit == "MWh"


def test_no_virtual_meters_by_default() -> None:
    assert parse_plant({"site": SITE, "meters": METERS}).virtual() == {}


@pytest.mark.parametrize(("expression", "terms"), [
    ("a", [(1, "a")]),
    ("- a + b-1", [(-1, "a"), (1, "b-1")]),
    ("  x   -  y.z  ", [(1, "x"), (-1, "y.z")]),
])
def test_expressions(expression: str, terms: list[tuple[int, str]]) -> None:
    assert parse_expression(expression) == tuple(Term(s, m) for s, m in terms)  # type: ignore[arg-type]


@pytest.mark.parametrize(("expression", "why"), [
    ("   ", "empty"), ("a -", "ends with an operator"), ("a - - b", "two operators"), ("a b", "expected \\+ or -"),
    ("a*2", "not a meter id"), ("a + a", "appears twice"),
])
def test_bad_expressions_name_the_key(expression: str, why: str) -> None:
    with pytest.raises(PlantError, match=rf"plant\.toml: virtual_meters\.0\.expression: .*{why}"):
        plant(vm("rest", expression))


@pytest.mark.parametrize(("virtual", "expected"), [
    ([vm("rest", "main - press-9")], r"virtual_meters\.0 \(rest\)\.expression: unknown meter 'press-9'"),
    ([vm("rest", "main-press-1")], r"virtual_meters\.0 \(rest\)\.expression: unknown meter 'main-press-1'"),
    ([vm("rest", "main - out")], r"virtual_meters\.0 \(rest\)\.expression: 'out' is a production or driver var"),
    ([vm("main", "press-1")], r"virtual_meters\.0 \(main\): id 'main' is already a meter's"),
    ([vm("out", "press-1")], r"virtual_meters\.0 \(out\): id 'out' is already a meter's or a variable's"),
    ([vm("r", "press-1"), vm("r", "press-2")], r"virtual_meters\.1 \(r\): id 'r' appears twice"),
    ([vm("r", "main - r")], r"virtual_meters\.0: .*virtual meter 'r' refers to itself"),
    ([vm("x", "main - y"), vm("y", "press-1 + z"), vm("z", "x")],
     r"virtual_meters\.0 \(x\)\.expression: a cycle of virtual meters: x -> y -> z -> x"),
    ([vm("mix", "main + gas")], r"virtual_meters\.0 \(mix\)\.expression: mixes carriers \(electricity: main; "
                                r"natural_gas: gas\)"),
    ([vm("p", "press-1"), vm("mix", "gas - p")], r"virtual_meters\.1 \(mix\)\.expression: mixes carriers"),
    ([vm("r", "main", unit="m**3")], r"virtual_meters\.0 \(r\)\.unit: 'm\*\*3' is not a unit of electricity"),
    ([vm("r", "main", unit="furlongs-ish")], r"virtual_meters\.0\.unit: .*unknown unit"),
    ([vm("p", "press-1"), vm("r", "p + press-1")], r"virtual_meters\.1 \(r\)\.expression: counts a meter more "
                                                   r"than once .*press-1"),
    ([{**vm("r", "main"), "carrier": "electricity"}], r"virtual_meters\.0\.carrier: Extra inputs"),
])
def test_every_validation_error_names_the_key(virtual: list[dict[str, Any]], expected: str) -> None:
    with pytest.raises(PlantError, match=expected):
        plant(*virtual)


def test_the_error_type_is_a_value_error_for_pydantic() -> None:
    assert issubclass(VirtualMeterError, ValueError)
