"""Standard coal equivalent (calc.coal): the shipped coefficients keep the reference values, every carrier has a
hand-computed case (coefficient × unit conversion, worked here), refusals name what is missing, and the
vectorised path equals the scalar one."""

from __future__ import annotations

import json
import tomllib
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from calc.carriers import Carrier
from calc.coal import (
    CoalError,
    CoalMethod,
    Coefficient,
    coal_recipe,
    coal_recipe_for,
    default_coefficients,
    equal_value_row,
    kgce,
    kgce_array,
    kgce_gather,
    parse_coefficients,
)
from calc.conditions import Measure
from calc.factors import default_factor_set
from calc.recipes import Conditions, recipe
from deploy.cli import main

REFERENCE = Path("/work/shared/reference/energy_coefficients.toml")
SHIPPED = Path(__file__).parents[2] / "calc" / "data" / "energy_coefficients.toml"
KGCE_KJ = 29_307.0
# worked by hand: ref coefficient × how many of the coefficient's unit one metered unit is
STEAM_GJ_PER_T = (2768.30 - 83.74) * 1e-3           # saturated 0.8 MPa(a), above 20 degC feed water
HOT_WATER_GJ_PER_T = 4.1868 * (80 - 20) * 1e-3       # supply 80 degC, return 20 degC
CASES = [  # carrier, quantity, unit, conditions, expected kgce
    ("electricity", 1200.0, "kWh", None, 1200 * 0.1229),
    ("electricity", 2.0, "MWh", None, 2000 * 0.1229),
    ("natural_gas", 1000.0, "Nm3", None, 1000 * 1.2143),
    ("natural_gas", 850.0, "m^3", Conditions(pressure=Measure(2, "barg"), temperature=Measure(15, "degC")),
     850 * (2e5 + 101_325) / 101_325 * 273.15 / 288.15 * 1.2143),
    ("natural_gas", 3.6, "GJ", None, 3.6e6 / KGCE_KJ),
    ("raw_coal", 1.0, "t", None, 1000 * 0.7143),
    ("diesel", 100.0, "L", Conditions(density=Measure(0.84, "kg/L")), 84 * 1.4571),
    ("diesel", 1.0, "t", None, 1000 * 1.4571),
    ("gasoline", 500.0, "kg", None, 500 * 1.4714),
    ("lpg", 1.0, "t", None, 1000 * 1.7143),
    ("fuel_oil", 1.0, "t", None, 1000 * 1.4286),
    ("heat", 10.0, "GJ", None, 10_000 * 0.03412),
    ("heat", 1.0, "MWh", None, 3600 * 0.03412),
    ("steam", 10.0, "GJ", None, 10_000 * 0.03412),
    ("steam", 2.0, "t", None, 2000 * 0.1286),   # no heat content known: the low-pressure reference
]


def test_shipped_coefficients_are_the_reference_unchanged() -> None:
    if not REFERENCE.exists():
        pytest.fail(f"reference file {REFERENCE} is missing")
    assert tomllib.loads(SHIPPED.read_text(encoding="utf-8")) == tomllib.loads(REFERENCE.read_text(encoding="utf-8"))
    coefs = default_coefficients()
    assert (coefs.id, coefs.version, coefs.kgce_kj) == ("gbt2589_2020_appendix_a", "2020", KGCE_KJ)
    assert "GB/T 2589" in coefs.source


def test_each_fuel_coefficient_is_its_calorific_value_in_kcal_over_7000() -> None:
    """GB/T 2589's fuel coefficients are kcal ratios (raw coal 5 000 kcal / 7 000 kcal = 0.7143); the kJ figures
    it prints are kcal × 4.1816. So value = NCV[kJ] / 4.1816 / 7 000 to the 4 decimals printed (NCV / 29 307
    would be 0.12 % low). A typo in a value or its NCV fails here."""
    checked = 0
    for row in default_coefficients().coefficients.values():
        ncv = (row.ncv_as_published or "").split(" kJ")[0].replace(" ", "")
        if not ncv.isdigit() or row.unit not in ("kg / kg", "kg / m^3"):
            continue
        assert row.value == pytest.approx(int(ncv) / 4.1816 / 7000, abs=6e-5), row.id
        checked += 1
    assert checked >= 10


@pytest.mark.parametrize(("carrier", "quantity", "unit", "conditions", "expected"), CASES)
def test_hand_computed_case(carrier: str, quantity: float, unit: str, conditions: Conditions | None,
                            expected: float) -> None:
    result = kgce(quantity, unit, carrier, conditions=conditions)
    assert result.kgce == pytest.approx(expected, rel=1e-9)
    assert result.tce == pytest.approx(expected / 1000, rel=1e-9)
    assert result.method is CoalMethod.EQUIVALENT and result.coefficient_version.startswith("gbt2589_2020_appendix_a@")


@pytest.mark.parametrize(("carrier", "unit", "conditions", "gj_per_unit"), [
    ("steam", "t", Conditions(pressure=Measure(0.8, "MPa")), STEAM_GJ_PER_T),
    ("hot_water", "t", Conditions(temperature=Measure(80, "degC")), HOT_WATER_GJ_PER_T),
    ("heat", "GJ", None, 1.0),
])
def test_heat_carriers_count_the_heat_their_co2e_counts(carrier: str, unit: str, conditions: Conditions | None,
                                                        gj_per_unit: float) -> None:
    rec = recipe(default_factor_set(), carrier, unit, region="CN", at=date(2023, 6, 1), conditions=conditions)
    coal = coal_recipe_for(rec, conditions=conditions)
    assert rec.base_per_unit == pytest.approx(gj_per_unit, rel=1e-5)
    assert coal.kgce_per_unit == pytest.approx(gj_per_unit * 1000 * 0.03412, rel=1e-5)
    assert coal.coefficient_id == "heat_equivalent"


@pytest.mark.parametrize("carrier", list(Carrier))
def test_every_carrier_row_has_a_coefficient(carrier: Carrier) -> None:
    """A new carrier row without its coefficient in the data fails here."""
    heat = 1.0 if carrier.family == "heat" else None
    made = coal_recipe(carrier, carrier.default_unit, heat_gj_per_unit=heat)
    assert made.kgce_per_unit > 0 and made.coefficient is not None
    assert made.coefficient.id in (carrier.kgce_key, f"{carrier.kgce_key}_equivalent")


def test_unknown_carrier_and_missing_coefficient_are_clear_errors() -> None:
    with pytest.raises(CoalError, match="unknown carrier 'peat'"):
        kgce(1, "t", "peat")
    data = tomllib.loads(SHIPPED.read_text(encoding="utf-8"))
    del data["coefficients"]["diesel"]
    without = parse_coefficients(data)
    with pytest.raises(CoalError, match="no standard-coal coefficient 'diesel'"):
        kgce(1, "t", "diesel", without)
    with pytest.raises(CoalError, match="hot_water metered in 't' needs its heat content"):
        kgce(1, "t", "hot_water")
    with pytest.raises(CoalError, match="needs a density"):
        kgce(1, "L", "diesel")
    with pytest.raises(CoalError, match="cannot count 'm'"):
        kgce(1, "m", "raw_coal")
    with pytest.raises(CoalError, match="unknown standard-coal method"):
        kgce(1, "kWh", "electricity", method="doubled")


def test_a_bad_coefficient_file_names_every_problem() -> None:
    with pytest.raises(CoalError) as err:
        parse_coefficients({"meta": {"id": "x"}, "coefficients": {"a": {"value": -1, "unit": "kg / kg"},
                                                                   "b": {"value": 1, "unit": "furlong"}}})
    text = str(err.value)
    assert "meta: needs id, version and source" in text and "coefficients.a.value" in text
    assert "coefficients.b.unit" in text


def test_equal_value_method_needs_the_years_coefficient_and_then_uses_it() -> None:
    with pytest.raises(CoalError, match="equal-value method needs the year's published coefficient"):
        kgce(1000, "kWh", "electricity", method="equal")
    row = equal_value_row("electricity", 0.2998, "kg / kWh", "published 2024 average of thermal supply", 2024)
    coefs = default_coefficients().with_coefficients({row.id: row})
    assert coefs.version != default_coefficients().version
    assert kgce(1000, "kWh", "electricity", coefs, method="equal").kgce == pytest.approx(299.8)
    # fuels are primary energy: the same coefficient under both methods
    assert kgce(1, "t", "diesel", coefs, method="equal").kgce == pytest.approx(1457.1)
    heat = equal_value_row("steam", 39.5, "kg / GJ", "supplier's boiler statistics")
    assert heat.id == "heat_equal"
    with pytest.raises(CoalError, match="not 'diesel'"):
        equal_value_row("diesel", 1, "kg / kg", "x")
    with pytest.raises(CoalError, match="needs its source"):
        equal_value_row("electricity", 0.3, "kg / kWh", " ")


@given(st.lists(st.tuples(st.integers(0, len(CASES) - 1), st.floats(0, 1e9, allow_nan=False)), max_size=50))
def test_vectorised_paths_equal_the_scalar_one(picks: list[tuple[int, float]]) -> None:
    recipes = [coal_recipe(c, u, conditions=cond) for c, _, u, cond, _ in CASES]
    idx = np.array([i for i, _ in picks], dtype=np.intp)
    qty = np.array([q for _, q in picks], dtype=np.float64)
    gathered = kgce_gather(qty, idx, recipes)
    for (i, q), got in zip(picks, gathered, strict=True):
        c, _, u, cond, _ = CASES[i]
        assert got == pytest.approx(kgce(q, u, c, conditions=cond).kgce, rel=1e-12)
        assert kgce_array([q], recipes[i])[0] == got


def test_gather_refuses_an_index_outside_the_recipes() -> None:
    with pytest.raises(CoalError, match="out of range"):
        kgce_gather([1.0], [1], [coal_recipe("electricity", "kWh")])


def test_coefficient_rows_keep_their_provenance() -> None:
    row = default_coefficients().row("natural_gas", CoalMethod.EQUIVALENT)
    assert isinstance(row, Coefficient) and row.confidence == "M" and "35 544" in (row.ncv_as_published or "")


@pytest.mark.parametrize(("argv", "expected"), [
    (["1200", "kWh", "--carrier", "electricity"], 1200 * 0.1229),
    (["1000", "Nm3", "--carrier", "natural_gas"], 1000 * 1.2143),
    (["1", "t", "--carrier", "raw_coal"], 714.3),
    (["100", "L", "--carrier", "diesel", "--density", "0.84kg/L"], 84 * 1.4571),
    (["1", "t", "--carrier", "gasoline"], 1471.4),
    (["1", "t", "--carrier", "lpg"], 1714.3),
    (["1", "t", "--carrier", "fuel_oil"], 1428.6),
    (["10", "GJ", "--carrier", "heat"], 341.2),
    (["10", "t", "--carrier", "steam", "--pressure", "0.8MPa"], 10 * STEAM_GJ_PER_T * 34.12),
    (["2", "t", "--carrier", "hot_water", "--temperature", "80degC"], 2 * HOT_WATER_GJ_PER_T * 34.12),
    (["1", "MWh", "--carrier", "electricity", "--coal-method", "equal", "--kgce-equal", "0.2998 kg/kWh"], 299.8),
])
def test_calc_cli_json_has_energy_kgce(capsys: pytest.CaptureFixture[str], argv: list[str], expected: float) -> None:
    code = main(["calc", *argv, "--year", "2023", "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    body = json.loads(out.out)
    assert body["energy_kgce"] == pytest.approx(expected, rel=1e-5)
    assert body["kgce_version"].startswith("gbt2589_2020_appendix_a@") and body["kgce_coefficient_id"]


def test_calc_cli_equal_method_without_coefficient_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["calc", "1", "MWh", "--carrier", "electricity", "--coal-method", "equal"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: no standard-coal coefficient 'electricity'") and "--kgce-equal" in err
