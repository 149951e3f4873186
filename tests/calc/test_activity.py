"""calc.activity: each kind of manual entry against a hand computation, the GWP set choosing the refrigerant's
figure, the carbonate factors against their stoichiometry, and the spread of an entry over its local days."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from pydantic import ValidationError

from calc.activity import ActivityError, Entry, activity_factors, evaluate, pieces, share, span
from calc.factors import default_factor_set

FS = default_factor_set()
AR6 = FS.with_factors({}, gwp_set="AR6")
DAY = date(2026, 11, 3)


def test_diesel_delivery_in_litres_by_hand() -> None:
    # 1000 L x 0.84 kg/L = 0.84 t; x 42.652 GJ/t = 35.82768 GJ; x 20.2 kg C/GJ x 0.98 x 44/12 (GB/T 32150)
    r = evaluate(Entry(kind="fuel", start=DAY, quantity=1000, unit="L", carrier="diesel", density="0.84 kg/L"),
                 FS, "CN")
    gj = 0.84 * 42.652
    assert r.energy == pytest.approx(gj, rel=1e-12)
    assert r.energy_unit == "GJ"
    assert r.co2e_kg == pytest.approx(gj * 20.2 * 0.98 * 44 / 12, rel=1e-12)
    assert r.scope == "scope1" and r.factor_id == "cn_fuel_diesel_cc"
    assert set(r.factor_ids) == {"cn_fuel_diesel_ncv", "cn_fuel_diesel_cc", "cn_fuel_diesel_of", "c_to_co2_ratio"}
    assert r.factor_version.startswith(FS.version + ":")


def test_diesel_by_volume_without_density_is_refused() -> None:
    with pytest.raises(ActivityError, match="density"):
        evaluate(Entry(kind="fuel", start=DAY, quantity=1000, unit="L", carrier="diesel"), FS, "CN")


def test_refrigerant_counts_by_the_sets_gwp() -> None:
    entry = Entry(kind="refrigerant", start=DAY, quantity=12.5, unit="kg", gas="HFC-134a")
    assert evaluate(entry, FS, "CN").co2e_kg == pytest.approx(12.5 * 1300)     # AR5 Table 8.A.1
    assert evaluate(entry, AR6, "CN").co2e_kg == pytest.approx(12.5 * 1530)    # AR6 Table 7.SM.7
    assert evaluate(entry, AR6, "CN").factor_id == "gwp_ar6_hfc_134a"


def test_blend_is_the_mass_weighted_mean_of_its_components() -> None:
    entry = Entry(kind="refrigerant", start=DAY, quantity=2, unit="kg", gas="R-410A")
    assert evaluate(entry, FS, "CN").co2e_kg == pytest.approx(2 * (0.5 * 677 + 0.5 * 3170))
    r6 = evaluate(entry, AR6, "CN")
    assert r6.co2e_kg == pytest.approx(2 * (0.5 * 771 + 0.5 * 3740))
    assert "gwp_ar6_hfc_32" in r6.factor_ids and "blend_r_410a_hfc_125" in r6.factor_ids


def test_methane_uses_the_factor_sets_own_gwp() -> None:
    r = evaluate(Entry(kind="refrigerant", start=DAY, quantity=1, unit="t", gas="CH4"), FS, "CN")
    assert r.co2e_kg == pytest.approx(1000 * 28)


def test_unknown_refrigerant_names_the_known_ones() -> None:
    with pytest.raises(ActivityError, match="HFC-134a"):
        evaluate(Entry(kind="refrigerant", start=DAY, quantity=1, unit="kg", gas="R-999"), FS, "CN")


def test_carbonate_method_by_hand() -> None:
    # GB/T 32150 carbonate method: 250 t limestone x 92 % CaCO3 x 0.43971 t CO2/t
    r = evaluate(Entry(kind="process", start=DAY, quantity=250, unit="t", material="CaCO3", purity=0.92), FS, "CN")
    assert r.co2e_kg == pytest.approx(250 * 0.92 * 0.43971 * 1000)
    assert r.factor_id == "carbonate_caco3" and "IPCC 2006" in r.source


@pytest.mark.parametrize(("fid", "carbonate", "co2"), [
    ("carbonate_caco3", 40.078 + 12.011 + 3 * 15.999, 44.009),
    ("carbonate_mgco3", 24.305 + 12.011 + 3 * 15.999, 44.009),
    ("carbonate_camg_co32", 40.078 + 24.305 + 2 * (12.011 + 3 * 15.999), 2 * 44.009),
])
def test_carbonate_factors_are_their_stoichiometry(fid: str, carbonate: float, co2: float) -> None:
    assert activity_factors()[fid].value == pytest.approx(co2 / carbonate, abs=1e-5)


def test_process_with_its_own_sourced_factor() -> None:
    r = evaluate(Entry(kind="process", start=DAY, quantity=40, unit="t", factor="0.25 t/t",
                       factor_source="supplier lab report 2026-17"), FS, "CN")
    assert r.co2e_kg == pytest.approx(40 * 0.25 * 1000)
    assert r.source == "supplier lab report 2026-17"
    with pytest.raises(ValidationError, match="factor_source"):
        Entry(kind="process", start=DAY, quantity=40, unit="t", factor="0.25 t/t")


def test_electricity_bill_location_and_market() -> None:
    r = evaluate(Entry(kind="bill", start=date(2023, 5, 1), end=date(2023, 5, 31), quantity=10_000, unit="kWh",
                       carrier="electricity"), FS, "CN")
    assert r.co2e_kg == pytest.approx(10_000 * 0.5306)         # cn_grid_avg_2023
    assert r.market_co2e_kg == pytest.approx(10_000 * 0.6096)  # cn_grid_excl_mkt_nonfossil_2023
    assert r.factor_id == "cn_grid_avg_2023" and not r.fallback


def test_heat_statement_in_gj_and_mwh() -> None:
    gj = evaluate(Entry(kind="heat", start=DAY, quantity=120, unit="GJ", carrier="heat"), FS, "CN")
    assert gj.co2e_kg == pytest.approx(120 * 110)
    mwh = evaluate(Entry(kind="heat", start=DAY, quantity=10, unit="MWh", carrier="heat"), FS, "CN")
    assert mwh.co2e_kg == pytest.approx(36 * 110)


def test_steam_statement_by_mass_uses_its_enthalpy() -> None:
    # 100 t saturated steam at 1.0 MPa(a): h = 2777.12 kJ/kg (IAPWS-IF97); (h - 83.74) x 100 t / 1000 GJ
    r = evaluate(Entry(kind="heat", start=DAY, quantity=100, unit="t", carrier="steam", pressure="1.0 MPa"),
                 FS, "CN")
    assert r.energy == pytest.approx((2777.12 - 83.74) * 100 / 1000, rel=1e-4)
    assert r.co2e_kg == pytest.approx(r.energy * 110, rel=1e-12)


@pytest.mark.parametrize(("body", "field"), [
    ({"kind": "fuel", "quantity": 1, "unit": "t"}, "carrier"),
    ({"kind": "fuel", "quantity": 1, "unit": "t", "carrier": "electricity"}, "carrier"),
    ({"kind": "refrigerant", "quantity": 1, "unit": "kg"}, "gas"),
    ({"kind": "process", "quantity": 1, "unit": "t"}, "material or factor"),
    ({"kind": "fuel", "quantity": 1, "unit": "t", "carrier": "diesel", "meters": ["m1"]}, "meters"),
    ({"kind": "fuel", "quantity": -1, "unit": "t", "carrier": "diesel"}, "quantity"),
    ({"kind": "fuel", "quantity": 1, "unit": "t", "carrier": "diesel", "end": "2026-11-01"}, "end"),
])
def test_bad_entries_name_their_field(body: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        Entry.model_validate({"start": DAY, **body})


def test_span_is_local_days_and_pieces_cut_at_local_midnight() -> None:
    entry = Entry(kind="bill", start=date(2026, 11, 1), end=date(2026, 11, 30), quantity=3000, unit="kWh",
                  carrier="electricity")
    start, end = span(entry, "Asia/Shanghai")
    assert start == datetime(2026, 10, 31, 16, tzinfo=UTC) and end == datetime(2026, 11, 30, 16, tzinfo=UTC)
    cut = pieces(start, end, "Asia/Shanghai")
    assert len(cut) == 30 and sum(s for *_, s in cut) == pytest.approx(1.0, abs=1e-12)
    assert all(s == pytest.approx(1 / 30) for *_, s in cut)
    # the local month holds all of it; a UTC month would miss the first 8 hours
    assert share(start, end, start, end) == 1.0
    assert share(start, end, datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)) == \
        pytest.approx(1 - 8 / (30 * 24))


def test_a_day_with_a_dst_change_is_one_piece_of_its_own_length() -> None:
    entry = Entry(kind="fuel", start=date(2026, 3, 28), end=date(2026, 3, 29), quantity=1, unit="t",
                  carrier="diesel")
    start, end = span(entry, "Europe/Berlin")
    cut = pieces(start, end, "Europe/Berlin")
    assert [round((b - a).total_seconds() / 3600) for a, b, _ in cut] == [24, 23]
    assert cut[1][2] == pytest.approx(23 / 47)


@pytest.mark.parametrize(("body", "field"), [
    ({"kind": "refrigerant", "gas": "HFC-134a", "unit": "1/0"}, "unit"),
    ({"kind": "fuel", "carrier": "diesel", "unit": "kg/("}, "unit"),
    ({"kind": "fuel", "carrier": "diesel", "unit": "L", "density": "0 kg/L"}, "density"),
    ({"kind": "fuel", "carrier": "diesel", "unit": "L", "density": "1e999 kg/L"}, "density"),
    ({"kind": "process", "unit": "t", "factor": "-0.2 t/t", "factor_source": "x"}, "factor"),
    ({"kind": "process", "unit": "t", "factor": "abc", "factor_source": "x"}, "factor"),
    ({"kind": "process", "unit": "t", "factor": "0.2 kg", "factor_source": "x"}, "factor"),
    ({"kind": "process", "unit": "kWh", "material": "CaCO3"}, "unit"),
])
def test_hostile_units_and_numbers_raise_activity_error(body: dict[str, object], field: str) -> None:
    with pytest.raises(ActivityError, match=field):
        evaluate(Entry.model_validate({"start": DAY, "quantity": 1, **body}), FS, "CN")
