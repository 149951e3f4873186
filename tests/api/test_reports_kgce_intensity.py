"""kgce and intensity in the balance, the history and the report, for every carrier: each figure equals a hand
computation from the GB/T 2589 coefficient and the energy the store holds, and the views agree with each other.
Data go through ingest's converter into a real SQLite store."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.auth import KeyRing
from api.main import create_app
from api.settings import ApiSection, Settings
from calc import topics
from calc.conditions import parse_measure, steam_enthalpy_kj_per_kg
from calc.factors import default_factor_set
from calc.plant import parse_plant
from calc.recipes import Conditions, recipe
from calc.schema import ReadingMessage, Sample, encode
from ingest.convert import Converter
from ingest.store.sqlite import SqliteStore
from tests.api.conftest import START, Env

T0 = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)
GAS_COND = {"pressure": "4 barg", "temperature": "15 degC"}
STEAM_COND = {"pressure": "8 bar", "temperature": "180 degC"}
WATER_COND = {"temperature": "90 degC"}

# meter -> (area, line, carrier, quantity, unit, delta per hour, conditions)
METERS: dict[str, tuple[str, str | None, str, str, str, float, dict[str, str] | None]] = {
    "e1": ("a", "L1", "electricity", "active_energy_import", "kWh", 500.0, None),
    "g1": ("a", "L1", "natural_gas", "volume", "m^3", 40.0, GAS_COND),
    "coal": ("b", None, "raw_coal", "mass", "t", 0.5, None),
    "diesel": ("b", None, "diesel", "mass", "t", 0.02, None),
    "petrol": ("b", None, "gasoline", "mass", "t", 0.01, None),
    "lpg": ("b", None, "lpg", "mass", "t", 0.03, None),
    "oil": ("b", None, "fuel_oil", "mass", "t", 0.04, None),
    "heat": ("b", None, "heat", "heat", "GJ", 2.5, None),
    "steam": ("a", "L2", "steam", "mass", "t", 1.5, STEAM_COND),
    "water": ("b", None, "hot_water", "mass", "t", 3.0, WATER_COND),
}
PRODUCED = [120.0, 0.0]   # pieces on line L1 (area a) in hour 1 and hour 2


def plant() -> dict[str, Any]:
    meters = []
    for mid, (area, line, carrier, _q, _u, _d, cond) in METERS.items():
        m: dict[str, Any] = {"id": mid, "area": area, "carrier": carrier, "interval_s": 3600.0}
        if line:
            m["line"] = line
        if cond:
            m["conditions"] = cond
        meters.append(m)
    return {"site": {"id": "s1", "region": "CN", "timezone": "UTC", "start": START}, "meters": meters,
            "variables": [{"id": "p1", "area": "a", "line": "L1", "kind": "production", "quantity": "production",
                           "unit": "count", "product": "panels"}]}


# hand computations: kgce per stored unit, from the published coefficients (GB/T 2589-2020 Appendix A)
def nm3_per_m3() -> float:
    return (400_000 + 101_325) / 101_325 * 273.15 / (273.15 + 15)


def steam_gj_per_t() -> float:
    h = steam_enthalpy_kj_per_kg(parse_measure("8 bar", "p"), parse_measure("180 degC", "t"))
    return (h - 83.74) * 1e-3


def hot_water_gj_per_t() -> float:
    # the heat its CO2e counts (supply 90 degC to the reference return), from the emission recipe
    rec = recipe(default_factor_set(), "hot_water", "t", region="CN", at=T0,
                 conditions=Conditions(temperature=parse_measure("90 degC", "t")))
    return rec.base_per_unit


def kgce_per_unit(meter: str) -> float:
    return {"e1": 0.1229, "g1": 1.2143 * nm3_per_m3(), "coal": 714.3, "diesel": 1457.1, "petrol": 1471.4,
            "lpg": 1714.3, "oil": 1428.6, "heat": 34.12, "steam": 34.12 * steam_gj_per_t(),
            "water": 34.12 * hot_water_gj_per_t()}[meter]


@pytest.fixture
def env2(env: Env) -> Env:
    return fill(env)


def fill(env: Env) -> Env:
    """Two hours of every carrier's meter and of the production counter, through ingest's converter."""
    data = plant()
    conv = Converter(parse_plant(data), data, clock=lambda: datetime(2030, 1, 1, tzinfo=UTC).timestamp())
    for mid, (area, _line, _c, quantity, unit, delta, _cond) in METERS.items():
        for i in range(3):   # a baseline reading, then two hours of energy
            s = Sample(ts=T0 + timedelta(hours=i), quantity=quantity, value=100.0 + i * delta, unit=unit,
                       delta=delta if i else None, interval_s=3600.0 if i else None,
                       flags=() if i else ("first",))  # type: ignore[arg-type]
            out = conv.convert(topics.reading("s1", area, mid), encode(ReadingMessage(meter=mid, seq=i,
                                                                                       samples=(s,))))
            assert not out.dead, out.dead
            env.store.write(conv.batch([out]))
    for i in range(3):
        s = Sample(ts=T0 + timedelta(hours=i), quantity="production", value=1000.0 + sum(PRODUCED[:i]),
                   unit="count", delta=PRODUCED[i - 1] if i else None, interval_s=3600.0 if i else None,
                   flags=() if i else ("first",))  # type: ignore[arg-type]
        out = conv.convert(topics.reading("s1", "a", "p1"), encode(ReadingMessage(meter="p1", seq=i, samples=(s,))))
        assert not out.dead, out.dead
        env.store.write(conv.batch([out]))
    return env


def app(env: Env) -> Any:
    data = plant()
    section = ApiSection(keys_file=str(env.keys_file), db_path=str(env.tmp / "api.sqlite"), live=False)
    settings = Settings(plant=parse_plant(data), plant_data=data, base_dir=env.tmp, api=section)
    return create_app(settings, SqliteStore(env.tmp / "store.sqlite"), KeyRing.load(env.keys_file), clock=env.clock)


WINDOW = {"from": T0.isoformat(), "to": (T0 + timedelta(hours=3)).isoformat()}


def test_kgce_of_every_carrier_and_intensity_agree_across_balance_history_and_report(env2: Env) -> None:
    with TestClient(app(env2)) as c:
        h = env2.h("viewer")
        bal = c.get("/v1/balance", params=WINDOW, headers=h).json()
        hist = c.get("/v1/history", params={**WINDOW, "step": "1h", "group": "meter"}, headers=h).json()
        site_hist = c.get("/v1/history", params={**WINDOW, "step": "1h"}, headers=h).json()
        area_hist = c.get("/v1/history", params={**WINDOW, "step": "1h", "group": "area"}, headers=h).json()
        report = c.get("/v1/reports/period", params=WINDOW, headers=h).json()
    meters = {m["meter"]: m for m in bal["meters"]}
    assert set(meters) == set(METERS) and bal["kgce_refused"] == []
    for mid, m in meters.items():
        # the stored energy is what the meter advanced: two hours of its delta, in its carrier's unit
        assert m["energy"] == pytest.approx(2 * METERS[mid][5]), mid
        assert m["energy_kgce"] == pytest.approx(m["energy"] * kgce_per_unit(mid), rel=1e-4), mid
        assert m["kgce_coefficient_id"] and m["kgce_version"], mid
        buckets = [b for b in hist["buckets"] if b["boundary"] == mid]
        assert sum(b["energy_kgce"] for b in buckets) == pytest.approx(m["energy_kgce"]), mid
        assert all(b["kgce_versions"] == [m["kgce_version"]] for b in buckets), mid
    # natural gas: the energy in the unit its factor applies to (Nm3), beside the metered m3
    assert meters["g1"]["factor_energy_unit"] == "Nm^3"
    assert meters["g1"]["factor_energy"] == pytest.approx(80.0 * nm3_per_m3())
    assert meters["e1"]["factor_energy"] == 1000.0 and meters["e1"]["factor_energy_unit"] == "kWh"
    total = sum(2 * METERS[mid][5] * kgce_per_unit(mid) for mid in METERS)
    assert bal["energy_kgce"] == pytest.approx(total, rel=1e-4)
    assert sum(a["energy_kgce"] for a in bal["areas"]) == pytest.approx(bal["energy_kgce"])
    assert sum(x["energy_kgce"] for x in bal["carriers"]) == pytest.approx(bal["energy_kgce"])
    assert sum(b["energy_kgce"] for b in site_hist["buckets"]) == pytest.approx(bal["energy_kgce"])
    assert report["balance"]["energy_kgce"] == bal["energy_kgce"]
    assert report["balance"]["intensity"] == bal["intensity"]

    # intensity: the site, area a and line L1 made 120 panels (line L2 and area b declare none)
    per = {(i["level"], i["name"]): i for i in bal["intensity"]}
    assert set(per) == {("site", "s1"), ("area", "a"), ("line", "L1")}
    line_meters, area_meters = ("e1", "g1"), ("e1", "g1", "steam")
    for key, members in ((("site", "s1"), tuple(METERS)), (("area", "a"), area_meters), (("line", "L1"),
                                                                                          line_meters)):
        row = per[key]
        co2e = sum(meters[m]["co2e_kg"] for m in members)
        kgce = sum(2 * METERS[m][5] * kgce_per_unit(m) for m in members)
        assert row["production"] == 120.0 and row["unit"] == "kg / count"
        assert row["co2e_kg_per_unit"] == pytest.approx(co2e / 120.0)
        assert row["kgce_per_unit"] == pytest.approx(kgce / 120.0, rel=1e-4)
    # per bucket: the first hour made all 120; the second made none: null with the reason, not an error
    # (a sample stands at the end of its interval: hour i's energy and production are in the bucket T0 + i h; the
    # baseline readings at T0 make a bucket with neither)
    site_rows = {datetime.fromisoformat(r["start"]): r for r in site_hist["intensity"]}
    assert [site_rows[T0 + timedelta(hours=i)]["production"] for i in (0, 1, 2)] == [0.0, *PRODUCED]
    first, second = site_rows[T0 + timedelta(hours=1)], site_rows[T0 + timedelta(hours=2)]
    hour1 = sum(METERS[m][5] * kgce_per_unit(m) for m in METERS)
    assert first["kgce_per_unit"] == pytest.approx(hour1 / 120.0, rel=1e-4)
    assert first["co2e_kg_per_unit"] == pytest.approx(bal["co2e_kg"] / 2 / 120.0)
    assert second["co2e_kg_per_unit"] is None and second["kgce_per_unit"] is None
    assert "production must be positive" in second["refused"]
    area_rows = [r for r in area_hist["intensity"] if r["name"] == "a"]
    assert sum(r["energy_kgce"] for r in area_rows) == pytest.approx(per[("area", "a")]["energy_kgce"])


def test_csv_report_and_history_carry_kgce(env2: Env) -> None:
    with TestClient(app(env2)) as c:
        h = env2.h("viewer")
        text = c.get("/v1/history", params={**WINDOW, "step": "1h", "format": "csv"}, headers=h).text
        report = c.get("/v1/reports/period", params={**WINDOW, "format": "csv"}, headers=h).text
        page = c.get("/v1/reports/period", params={**WINDOW, "format": "html"}, headers=h).text
    header = text.splitlines()[0].split(",")
    assert "energy_kgce" in header and "factor_energy_unit" in header
    assert any(line.startswith("total,kgce,") for line in report.splitlines())
    assert any(line.startswith("intensity,line L1,") for line in report.splitlines())
    assert "kgce" in page and "per unit of product" in page


def test_the_plant_file_chooses_the_equal_value_method(env2: Env) -> None:
    data = {**plant(), "standard_coal": {"method": "equal", "source": "published yearly (test figure)",
                                         "equal": {"electricity": "0.2998 kg/kWh", "heat": "39.3 kg/GJ"}}}
    section = ApiSection(keys_file=str(env2.keys_file), db_path=str(env2.tmp / "api.sqlite"), live=False)
    settings = Settings(plant=parse_plant(data), plant_data=data, base_dir=env2.tmp, api=section)
    with TestClient(create_app(settings, SqliteStore(env2.tmp / "store.sqlite"), KeyRing.load(env2.keys_file),
                               clock=env2.clock)) as c:
        bal = c.get("/v1/balance", params=WINDOW, headers=env2.h("viewer")).json()
    meters = {m["meter"]: m for m in bal["meters"]}
    assert bal["kgce_method"] == "equal"
    assert meters["e1"]["energy_kgce"] == pytest.approx(1000.0 * 0.2998)
    assert meters["e1"]["kgce_coefficient_id"] == "electricity_equal"
    assert meters["heat"]["energy_kgce"] == pytest.approx(5.0 * 39.3)
    assert meters["coal"]["energy_kgce"] == pytest.approx(1.0 * 714.3)     # fuels: the same under both methods


@pytest.mark.parametrize(("section", "says"), [
    ({"method": "equal"}, "standard_coal.equal: the equal-value method needs at least the electricity"),
    ({"equal": {"electricity": "0.3 kg/kWh"}}, "standard_coal.source: required"),
    ({"method": "calorific"}, "standard_coal.method"),
    ({"colour": "black"}, "standard_coal.colour"),
])
def test_a_bad_standard_coal_section_is_named(section: dict[str, Any], says: str) -> None:
    from calc.coal import CoalError
    from calc.plant_coal import coal_settings

    with pytest.raises(CoalError, match=re.escape(says)):
        coal_settings({"standard_coal": section})


def test_a_bad_standard_coal_section_refuses_kgce_not_the_balance(env2: Env) -> None:
    data = {**plant(), "standard_coal": {"method": "equal"}}     # no equal-value coefficient given
    section = ApiSection(keys_file=str(env2.keys_file), db_path=str(env2.tmp / "api.sqlite"), live=False)
    settings = Settings(plant=parse_plant(data), plant_data=data, base_dir=env2.tmp, api=section)
    with TestClient(create_app(settings, SqliteStore(env2.tmp / "store.sqlite"), KeyRing.load(env2.keys_file),
                               clock=env2.clock)) as c:
        resp = c.get("/v1/balance", params=WINDOW, headers=env2.h("viewer"))
    assert resp.status_code == 200
    bal = resp.json()
    assert bal["co2e_kg"] > 0 and bal["energy_kgce"] == 0
    assert len(bal["kgce_refused"]) == len(METERS)
    assert all("standard_coal.equal" in r for r in bal["kgce_refused"])
