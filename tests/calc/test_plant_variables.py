"""[[variables]] in the plant file: production counters and driver variables, and the errors that name the bad key."""

from __future__ import annotations

from typing import Any

import pytest

from calc.plant import PlantError, parse_plant

SITE = {"id": "s", "region": "CN", "start": "2026-01-01T00:00:00Z"}
METERS = [{"id": "m1", "area": "a", "carrier": "electricity"}]
OUTPUT = {"id": "out", "area": "a", "line": "l1", "kind": "production", "quantity": "production", "unit": "count"}
TEMP = {"id": "temp", "area": "a", "kind": "driver", "quantity": "outdoor_temperature", "unit": "degC",
        "measure": "gauge", "degree_day_base_c": 18.0}


def plant(*variables: dict[str, Any]) -> Any:
    return parse_plant({"site": SITE, "meters": METERS, "variables": list(variables)}, "plant.toml")


def test_a_production_counter_and_a_temperature_driver() -> None:
    p = plant(OUTPUT, TEMP, {"id": "hours", "area": "a", "kind": "driver", "quantity": "operating_hours",
                             "unit": "h", "measure": "counter"})
    out, temp, hours = p.variables
    assert (out.measure, out.unit, out.line) == ("counter", "count", "l1")  # production is a counter by default
    assert (temp.measure, temp.degree_day_base_c) == ("gauge", 18.0)
    assert hours.measure == "counter" and p.variables_by_id["hours"] is hours
    assert [m.id for m in p.meters] == ["m1"]  # variables are not meters (no carrier, no CO2e)


def test_a_plant_without_variables_has_none() -> None:
    assert parse_plant({"site": SITE, "meters": METERS}).variables == ()


@pytest.mark.parametrize(("change", "expected"), [
    ({"unit": "gizmos"}, r"plant\.toml: variables\.0\.unit: .*unknown unit 'gizmos'"),  # pieces are known (calc.units)
    ({"measure": "gauge"}, r"variables\.0: .*measure: a production variable is a counter"),
    ({"carrier": "electricity"}, r"variables\.0: .*a variable has no carrier"),
    ({"kind": "output"}, r"variables\.0\.kind: Input should be 'production' or 'driver'"),
    ({"quantity": "Pieces Pressed"}, r"variables\.0\.quantity: String should match pattern"),
    ({"id": "m1"}, r"id 'm1' is already a meter's or another variable's"),
    ({"degree_day_base_c": 18.0}, r"degree_day_base_c: only a temperature gauge has degree-days"),
    ({"area": None}, r"variables\.0\.area: "),
])
def test_a_bad_production_counter_is_refused_naming_the_key(change: dict[str, Any], expected: str) -> None:
    with pytest.raises(PlantError, match=expected):
        plant({**OUTPUT, **change})


@pytest.mark.parametrize(("change", "expected"), [
    ({"measure": None}, r"variables\.0\.measure: "),
    ({"unit": "kWh"}, r"degree_day_base_c: unit 'kWh' is not a temperature"),
])
def test_a_bad_driver_is_refused_naming_the_key(change: dict[str, Any], expected: str) -> None:
    body = {k: v for k, v in {**TEMP, **change}.items() if v is not None}
    with pytest.raises(PlantError, match=expected):
        plant(body)
