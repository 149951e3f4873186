"""Factor sets as versioned data: the shipped set keeps the reference values and sources, selection by
region and time with the documented fallback, file checks naming key paths, and plant overrides."""

from __future__ import annotations

import tomllib
from datetime import date
from pathlib import Path

import pytest

from calc.emissions import carrier_co2e
from calc.factors import FactorError, check_factor_document, default_factor_set, parse_factor_toml
from calc.plant import parse_plant
from calc.plant_factors import plant_factors

REFERENCE = Path("/work/shared/reference/emission_factors.toml")
FS = default_factor_set()


def test_shipped_set_keeps_every_reference_value_and_its_source() -> None:
    if not REFERENCE.exists():  # the reference lives outside the repo; the shipped copy is what counts then
        pytest.fail(f"reference file {REFERENCE} is missing")
    ref = tomllib.loads(REFERENCE.read_text(encoding="utf-8"))["factors"]
    assert set(ref) == set(FS.factors)
    for fid, body in ref.items():
        f = FS.factors[fid]
        for key in ("value", "unit", "gas", "kind", "scope", "region", "source", "confidence"):
            if key in body:
                assert getattr(f, key) == body[key], f"{fid}.{key}"
        for key in ("valid_from", "valid_to", "year", "source_url_title"):
            assert getattr(f, key) == body.get(key), f"{fid}.{key}"


def test_every_factor_has_unit_gas_scope_region_and_source() -> None:
    for f in FS.factors.values():
        assert f.unit and f.scope and f.region and f.source.strip(), f.id


def test_version_is_a_content_hash_that_changes_with_any_value() -> None:
    text = (Path(__file__).parents[2] / "calc" / "data" / "default_factors.toml").read_text(encoding="utf-8")
    same = parse_factor_toml(text, "again")
    assert same.version == FS.version and FS.version.startswith("sha256-")
    changed = parse_factor_toml(text.replace("value = 0.5366", "value = 0.5367", 1), "edited")
    assert changed.version != FS.version


@pytest.mark.parametrize(("region", "day", "method", "factor_id", "fallback"), [
    ("CN", date(2021, 3, 1), "location", "cn_grid_avg_2021", False),
    ("CN", date(2023, 12, 31), "location", "cn_grid_avg_2023", False),
    ("CN", date(2026, 1, 1), "location", "cn_grid_avg_2023", True),      # latest vintage, flagged
    ("CN", date(2019, 1, 1), "location", "cn_grid_avg_2023", True),
    ("CN", date(2022, 5, 1), "market", "cn_grid_excl_mkt_nonfossil_2022", False),
    ("CN-grid-east", date(2023, 5, 1), "location", "cn_grid_region_east_2023", False),
    ("CN-grid-east", date(2023, 5, 1), "market", "cn_grid_excl_mkt_nonfossil_2023", True),  # parent region
    ("CN-GD", date(2023, 5, 1), "location", "cn_grid_prov_guangdong_2023", False),
    ("CN", date(2022, 5, 1), "ets", "cn_grid_ets_2022", False),
    ("US", date(2022, 5, 1), "location", "us_egrid2022_avg_co2", False),  # the CO2 row, not CH4 / N2O
    ("DE", date(2024, 5, 1), "location", "de_uba_2024", False),
    ("GB", date(2025, 5, 1), "location", "uk_desnz_2025_generation", False),
])
def test_grid_factor_selection(region: str, day: date, method: str, factor_id: str, fallback: bool) -> None:
    choice = FS.grid_factor(region, day, method)
    assert (choice.factor_id, choice.fallback) == (factor_id, fallback)


def test_statistical_average_and_ets_parameter_are_never_mixed() -> None:
    assert FS.grid_factor("CN", date(2022, 6, 1)).value == 0.5366
    assert FS.grid_factor("CN", date(2022, 6, 1), "ets").value == 0.5703


def test_unknown_region_and_method_are_errors() -> None:
    with pytest.raises(FactorError, match="region 'XX'"):
        FS.grid_factor("XX", date(2022, 1, 1))
    with pytest.raises(FactorError, match="unknown electricity method"):
        FS.grid_factor("CN", date(2022, 1, 1), "residual")


def test_gwp_sets() -> None:
    assert (FS.gwp("CH4").value, FS.gwp("N2O").value) == (28.0, 265.0)
    assert (FS.gwp("CH4", "AR6").value, FS.gwp("N2O", "AR6").value) == (27.9, 273.0)


def test_check_reports_each_problem_with_its_key_path() -> None:
    doc = tomllib.loads("""
[factors.ok]
value = 1.0
unit = "kg / kWh"
gas = "CO2"
kind = "grid_average"
scope = "scope2_location"
region = "XX"
source = "test"
[factors.bad_unit]
value = 1.0
unit = "kg / parsec_of_bananas"
kind = "grid_average"
scope = "scope2_location"
region = "XX"
source = "test"
[factors.no_value]
unit = "kg / kWh"
kind = "grid_average"
scope = "scope2_location"
region = "XX"
source = "test"
[factors.backwards]
value = 1.0
unit = "kg / kWh"
kind = "grid_averag"
scope = "scope2_location"
region = "XX"
valid_from = 2023-01-01
valid_to = 2022-01-01
source = ""
""")
    factors, problems = check_factor_document(doc)
    assert set(factors) == {"ok", "bad_unit", "backwards"}
    joined = "\n".join(problems)
    for expected in ("factors.bad_unit.unit:", "factors.no_value.value: Field required",
                     "factors.backwards.valid_to: before valid_from", "factors.backwards.kind:",
                     "factors.backwards.source: empty"):
        assert expected in joined
    assert not any(p.startswith("factors.ok") for p in problems)


PLANT = tomllib.loads("""
[site]
id = "p1"
region = "CN-grid-east"
start = 2026-01-01T00:00:00Z

[[meters]]
id = "m-elec"
area = "a1"
carrier = "electricity"

[[meters]]
id = "m-elec-2"
area = "a2"
carrier = "electricity"

[[meters]]
id = "m-elec-3"
area = "a2"
carrier = "electricity"

[[meters]]
id = "boiler"
area = "a1"
carrier = "natural_gas"

[factors]
gwp = "AR6"

[factors.custom.supplier_grid_2026]
value = 1.0
unit = "kg / kWh"
gas = "CO2"
kind = "grid_average"
scope = "scope2_location"
region = "CN-grid-east"
valid_from = 2026-01-01
valid_to = 2026-12-31
source = "Supplier declaration 2026"

[[factor_overrides]]
area = "a1"
carrier = "electricity"
method = "location"
factor = "cn_grid_avg_2023"

[[factor_overrides]]
meter = "m-elec"
carrier = "electricity"
method = "location"
factor = "supplier_grid_2026"

[[factor_overrides]]
meter = "m-elec-3"
carrier = "electricity"
method = "location"
value = 0.2
unit = "kg / kWh"
gas = "CO2"
source = "Green power contract GP-7, supplier-specific rate"

[[factor_overrides]]
site = "p1"
carrier = "natural_gas"
kind = "net_calorific_value"
value = 0.036
unit = "GJ / m^3"
source = "Gas supplier's quality certificate, March 2026"
""")


def test_plant_overrides_merge_most_specific_first() -> None:
    plant = parse_plant(PLANT)
    pf = plant_factors(FS, plant, PLANT)
    assert pf.factors.gwp_set == "AR6" and pf.factors.version != FS.version
    meters = plant.meters_by_id
    at = date(2026, 6, 1)

    def co2e(meter: str) -> tuple[float, str]:
        m = meters[meter]
        r = carrier_co2e(1000.0, "kWh" if m.carrier == "electricity" else "m^3", m.carrier, pf.factors,
                         region=plant.region_of(m), at=at, pins=pf.pins_for(m, "p1"))
        return r.co2e_kg, r.factor_id

    assert co2e("m-elec") == (pytest.approx(1000.0), "supplier_grid_2026")        # meter rule beats area rule
    # no rule: the added 2026 factor of the region is valid in 2026 and wins the ordinary selection
    assert co2e("m-elec-2") == (pytest.approx(1000.0), "supplier_grid_2026")
    # an inline override applies only where its rule does
    assert co2e("m-elec-3") == (pytest.approx(200.0), "override.m-elec-3.electricity.grid_average.CO2")
    assert pf.factors.grid_factor("CN-grid-east", at).factor_id == "supplier_grid_2026"
    kg, _ = co2e("boiler")
    assert kg == pytest.approx(1000 * 0.036 * 15.3 * 0.99 * 44 / 12)         # site NCV override


def test_area_rule_applies_to_meters_of_that_area() -> None:
    plant = parse_plant(PLANT)
    data = {**PLANT, "factor_overrides": PLANT["factor_overrides"][:1]}
    del data["factors"]
    pf = plant_factors(FS, plant, data)
    pins = pf.pins_for(plant.meter("m-elec"), "p1")
    assert pins == {("grid_average", ""): "cn_grid_avg_2023"}
    assert pf.pins_for(plant.meter("m-elec-2"), "p1") == {}


def test_bad_plant_factor_sections_name_file_and_key_path() -> None:
    plant = parse_plant(PLANT)
    bad = {**PLANT, "factors": {"gwp": "AR9", "fuel_method": "guess"},
           "factor_overrides": [{"meter": "nope", "carrier": "electricity", "method": "location", "factor": "x"},
                                {"carrier": "natural_gas", "kind": "net_calorific_value", "value": 1.0,
                                 "unit": "GJ / m^3"}]}
    with pytest.raises(FactorError) as err:
        plant_factors(FS, plant, bad, "plant.toml")
    text = str(err.value)
    assert "plant.toml: factors.fuel_method:" in text
    assert "plant.toml: factor_overrides[0].meter: no meter 'nope'" in text
    assert "plant.toml: factor_overrides[0].factor: no factor 'x'" in text
    assert "plant.toml: factor_overrides[1].source: Field required" in text
    assert "plant.toml: factors.gwp: no GWP100 values of assessment 'AR9'" in text


def test_demo_plant_merges_without_changes() -> None:
    raw = tomllib.loads((Path(__file__).parents[2] / "deploy" / "examples" / "demo-plant.toml").read_text())
    pf = plant_factors(FS, parse_plant(raw), raw)
    assert pf.factors is FS and pf.overrides == ()
