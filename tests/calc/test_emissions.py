"""Worked cases, one per carrier and method, computed by hand here from the factor table's values.

Each expected figure is written as the formula over the factor values read from the shipped set by id
(E = AD × NCV × CC × OF × 44/12 and so on), never copied from the code's output.
"""

from __future__ import annotations

from datetime import date

import pytest

from calc.conditions import ConditionError, Measure
from calc.emissions import carrier_co2e, electricity_co2e
from calc.factors import FactorError, default_factor_set
from calc.recipes import Conditions

FS = default_factor_set()
V = {fid: f.value for fid, f in FS.factors.items()}
AT_2022 = date(2022, 7, 1)
AT_2026 = date(2026, 7, 1)


def test_electricity_location_2022_national() -> None:
    r = carrier_co2e(1000.0, "kWh", "electricity", FS, region="CN", at=AT_2022)
    assert r.co2e_kg == pytest.approx(1000 * 0.5366, rel=1e-12)  # MEE/NBS 2022 national average
    assert (r.scope, r.factor_id, r.fallback) == ("scope2_location", "cn_grid_avg_2022", False)
    assert r.factor_version.startswith(FS.version + ":")
    assert "2022年电力二氧化碳排放因子" in r.source


def test_electricity_units_convert_at_the_boundary() -> None:
    r = carrier_co2e(2.5, "MWh", "electricity", FS, region="CN-grid-east", at=AT_2022)
    assert r.co2e_kg == pytest.approx(2500 * V["cn_grid_region_east_2022"], rel=1e-12)
    assert r.gas_kg == {"CO2": pytest.approx(2500 * 0.5617)}


def test_electricity_market_uses_the_residual_factor() -> None:
    r = carrier_co2e(1000.0, "kWh", "electricity", FS, region="CN", at=AT_2022, method="market")
    assert r.co2e_kg == pytest.approx(1000 * 0.5856, rel=1e-12)
    assert (r.scope, r.factor_id) == ("scope2_market", "cn_grid_excl_mkt_nonfossil_2022")


def test_electricity_ets_parameter_is_kept_apart() -> None:
    r = carrier_co2e(1000.0, "kWh", "electricity", FS, region="CN", at=AT_2022, method="ets")
    assert r.factor_id == "cn_grid_ets_2022" and r.co2e_kg == pytest.approx(570.3)


def test_electricity_live_data_falls_back_to_the_latest_vintage_and_says_so() -> None:
    r = carrier_co2e(1000.0, "kWh", "electricity", FS, region="CN", at=AT_2026)
    assert (r.factor_id, r.fallback) == ("cn_grid_avg_2023", True)
    assert r.co2e_kg == pytest.approx(530.6)


def test_electricity_us_adds_ch4_and_n2o_by_gwp() -> None:
    lb_mwh_to_kg_kwh = 0.45359237 / 1000
    co2 = 823.149 * lb_mwh_to_kg_kwh
    ch4 = 0.066 * lb_mwh_to_kg_kwh
    n2o = 0.009 * lb_mwh_to_kg_kwh
    r = carrier_co2e(1000.0, "kWh", "electricity", FS, region="US", at=AT_2022)
    assert r.co2e_kg == pytest.approx(1000 * (co2 + ch4 * 28 + n2o * 265), rel=1e-9)  # AR5 GWP100
    assert r.gas_kg["CH4"] == pytest.approx(1000 * ch4)
    assert r.factor_id == "us_egrid2022_avg_co2"


def test_electricity_co2e_from_a_choice_is_unchanged() -> None:
    choice = FS.grid_factor("CN", AT_2022)
    r = electricity_co2e(10.0, "MWh", choice)
    assert r.co2e_kg == pytest.approx(10_000 * 0.5366)
    assert r.factor_version == choice.version


def test_natural_gas_gbt32150_at_normal_conditions() -> None:
    # E = AD × NCV × CC × OF × 44/12 with AD = 1000 Nm3, NCV 0.038931 GJ/Nm3, CC 15.3 kg C/GJ, OF 0.99
    expected = 1000 * 0.038931 * 15.3 * 0.99 * 44 / 12
    r = carrier_co2e(1000.0, "Nm3", "natural_gas", FS, region="CN", at=AT_2026)
    assert r.co2e_kg == pytest.approx(expected, rel=1e-12)
    assert r.co2e_kg == pytest.approx(1000 * 2.16219, rel=1e-5)  # the reference file's derived kg CO2/Nm3
    assert (r.scope, r.factor_id, r.fallback) == ("scope1", "cn_fuel_natural_gas_cc", False)
    assert set(r.factor_ids) >= {"cn_fuel_natural_gas_ncv", "cn_fuel_natural_gas_of", "c_to_co2_ratio"}


def test_natural_gas_metered_volume_is_corrected_to_normal_conditions() -> None:
    # 100 m3 at 300 kPa(a), 15 degC -> Nm3 = 100 × 300/101.325 × 273.15/288.15
    nm3 = 100 * 300 / 101.325 * 273.15 / 288.15
    cond = Conditions(pressure=Measure(300, "kPa"), temperature=Measure(15, "degC"))
    r = carrier_co2e(100.0, "m^3", "natural_gas", FS, region="CN", at=AT_2026, conditions=cond)
    assert r.co2e_kg == pytest.approx(nm3 * 0.038931 * 15.3 * 0.99 * 44 / 12, rel=1e-12)


def test_gauge_pressure_adds_one_atmosphere() -> None:
    gauge = Conditions(pressure=Measure(2, "barg"), temperature=Measure(0, "degC"))
    absolute = Conditions(pressure=Measure(301.325, "kPa"), temperature=Measure(0, "degC"))
    a = carrier_co2e(1.0, "m^3", "natural_gas", FS, region="CN", at=AT_2026, conditions=gauge)
    b = carrier_co2e(1.0, "m^3", "natural_gas", FS, region="CN", at=AT_2026, conditions=absolute)
    assert a.co2e_kg == pytest.approx(b.co2e_kg, rel=1e-12)


@pytest.mark.parametrize(("carrier", "ncv", "cc", "of"), [
    ("raw_coal", 20.908, 26.37, 0.94),
    ("diesel", 42.652, 20.2, 0.98),
    ("gasoline", 43.070, 18.9, 0.98),
    ("lpg", 50.179, 17.2, 0.98),
    ("fuel_oil", 41.816, 21.1, 0.98),
])
def test_mass_fuels_gbt32150(carrier: str, ncv: float, cc: float, of: float) -> None:
    # 2 t of fuel: 2 t × NCV GJ/t × CC kg C/GJ × OF × 44/12 (values from GB/T 32150 defaults, factors.md §2.2)
    r = carrier_co2e(2000.0, "kg", carrier, FS, region="CN", at=AT_2026)
    assert r.co2e_kg == pytest.approx(2 * ncv * cc * of * 44 / 12, rel=1e-12)
    assert r.activity == pytest.approx(2 * ncv) and r.activity_unit == "GJ"


def test_diesel_by_volume_needs_and_uses_a_density() -> None:
    with pytest.raises(ConditionError, match="density"):
        carrier_co2e(500.0, "L", "diesel", FS, region="CN", at=AT_2026)
    cond = Conditions(density=Measure(0.84, "kg/L"))
    r = carrier_co2e(500.0, "L", "diesel", FS, region="CN", at=AT_2026, conditions=cond)
    assert r.co2e_kg == pytest.approx(500 * 0.84 / 1000 * 42.652 * 20.2 * 0.98 * 44 / 12, rel=1e-12)


def test_diesel_ipcc_direct_path_with_ch4_and_n2o() -> None:
    # 1 t diesel: IPCC NCV 43.0 TJ/Gg -> 0.043 TJ; CO2 74100, CH4 3, N2O 0.6 kg/TJ; AR5 GWP 28 / 265
    tj = 1 * 43.0 / 1000
    expected = tj * 74100 + tj * 3 * 28 + tj * 0.6 * 265
    r = carrier_co2e(1.0, "t", "diesel", FS, region="CN", at=AT_2026, method="ipcc")
    assert r.co2e_kg == pytest.approx(expected, rel=1e-12)
    assert r.gas_kg == {"CO2": pytest.approx(tj * 74100), "CH4": pytest.approx(tj * 3),
                        "N2O": pytest.approx(tj * 0.6)}
    assert r.co2e_by_gas_kg["N2O"] == pytest.approx(tj * 0.6 * 265)
    assert r.factor_id == "ipcc2006_gas_diesel_oil_co2"


def test_ipcc_gwp_set_ar6_changes_only_the_non_co2_part() -> None:
    ar6 = FS.with_factors({}, gwp_set="AR6")
    tj = 43.0 / 1000
    r = carrier_co2e(1.0, "t", "diesel", ar6, region="CN", at=AT_2026, method="ipcc")
    assert r.co2e_kg == pytest.approx(tj * 74100 + tj * 3 * 27.9 + tj * 0.6 * 273, rel=1e-12)
    assert ar6.version != FS.version


def test_natural_gas_ipcc_uses_the_volumetric_ncv() -> None:
    gj = 1000 * V["cn_fuel_natural_gas_ncv"]
    tj = gj / 1000
    r = carrier_co2e(1000.0, "Nm3", "natural_gas", FS, region="CN", at=AT_2026, method="ipcc")
    assert r.co2e_kg == pytest.approx(tj * 56100 + tj * 1 * 28 + tj * 0.1 * 265, rel=1e-12)


def test_purchased_heat() -> None:
    r = carrier_co2e(3.6, "MWh", "heat", FS, region="CN", at=AT_2026)  # 3.6 MWh = 12.96 GJ
    assert r.co2e_kg == pytest.approx(12.96 * 110, rel=1e-12)
    assert (r.scope, r.factor_id) == ("scope2_location", "cn_heat_default")


def test_saturated_steam_at_0_8_mpa() -> None:
    # IAPWS-IF97: saturated steam at 0.8 MPa(a) h = 2768.30 kJ/kg (factors.md §2.3); Q = m × (h − 83.74) × 1e-3
    r = carrier_co2e(10.0, "t", "steam", FS, region="CN", at=AT_2026,
                     conditions=Conditions(pressure=Measure(0.8, "MPa")))
    assert r.activity == pytest.approx(10 * (2768.30 - 83.74) * 1e-3, abs=1e-4)
    assert r.co2e_kg == pytest.approx(10 * (2768.30 - 83.74) * 1e-3 * 110, abs=0.01)


def test_saturated_steam_at_1_0_mpa_and_superheated_steam() -> None:
    r = carrier_co2e(1.0, "t", "steam", FS, region="CN", at=AT_2026,
                     conditions=Conditions(pressure=Measure(1.0, "MPa")))
    assert r.activity == pytest.approx((2777.12 - 83.74) * 1e-3, abs=1e-5)
    hot = carrier_co2e(1.0, "t", "steam", FS, region="CN", at=AT_2026,
                       conditions=Conditions(pressure=Measure(1.0, "MPa"), temperature=Measure(250, "degC")))
    assert hot.activity > r.activity  # superheat carries more heat per tonne


def test_steam_below_saturation_is_refused() -> None:
    with pytest.raises(ConditionError, match="saturation"):
        carrier_co2e(1.0, "t", "steam", FS, region="CN", at=AT_2026,
                     conditions=Conditions(pressure=Measure(0.8, "MPa"), temperature=Measure(120, "degC")))
    with pytest.raises(ConditionError, match="pressure"):
        carrier_co2e(1.0, "t", "steam", FS, region="CN", at=AT_2026)


def test_hot_water_by_mass_and_by_supply_return_temperatures() -> None:
    # Q = m × (T − 20) × 4.1868 × 1e-3 GJ; 5 t at 80 degC
    r = carrier_co2e(5.0, "t", "hot_water", FS, region="CN", at=AT_2026,
                     conditions=Conditions(temperature=Measure(80, "degC")))
    assert r.co2e_kg == pytest.approx(5 * 60 * 4.1868e-3 * 110, rel=1e-12)
    r2 = carrier_co2e(5.0, "t", "hot_water", FS, region="CN", at=AT_2026,
                      conditions=Conditions(temperature=Measure(80, "degC"),
                                            return_temperature=Measure(55, "degC")))
    assert r2.co2e_kg == pytest.approx(5 * 25 * 4.1868e-3 * 110, rel=1e-12)


def test_hot_water_by_volume_uses_the_water_density() -> None:
    # 1 m3 of water at 80 degC weighs 971.8 kg (IAPWS-IF97 saturated liquid)
    r = carrier_co2e(1.0, "m^3", "hot_water", FS, region="CN", at=AT_2026,
                     conditions=Conditions(temperature=Measure(80, "degC")))
    assert r.activity == pytest.approx(0.9718 * 60 * 4.1868e-3, rel=1e-4)


@pytest.mark.parametrize(("carrier", "unit", "method", "match"), [
    ("electricity", "t", None, "kWh"),
    ("electricity", "kWh", "gbt32150", "no method"),
    ("heat", "t", None, "energy"),
    ("coal", "t", None, "unknown carrier"),
    ("natural_gas", "t", None, "net calorific value"),
])
def test_bad_requests_name_what_is_wrong(carrier: str, unit: str, method: str | None, match: str) -> None:
    with pytest.raises((FactorError, ConditionError), match=match):
        carrier_co2e(1.0, unit, carrier, FS, region="CN", at=AT_2026, method=method)


def test_a_region_without_fuel_defaults_asks_for_them() -> None:
    with pytest.raises(FactorError, match="region 'US'"):
        carrier_co2e(1.0, "t", "raw_coal", FS, region="US", at=AT_2026)
    r = carrier_co2e(1.0, "t", "raw_coal", FS, region="US", at=AT_2026, method="ipcc")
    tj = 25.8 / 1000  # other bituminous coal
    assert r.co2e_kg == pytest.approx(tj * 94600 + tj * 10 * 28 + tj * 1.5 * 265, rel=1e-12)
