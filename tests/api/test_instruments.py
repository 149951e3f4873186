"""Contractual instruments: serial ranges and PPA contracts counted once, voids, and the market-based balance
against a hand-computed case (real SQLite store filled through ingest's converter)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from api.auth import KeyRing
from api.main import create_app
from api.market import allocate, month_steps
from api.settings import ApiSection, Settings
from calc.factors import default_factor_set
from calc.plant import parse_plant
from ingest.store.base import MeterTotal
from ingest.store.sqlite import SqliteStore
from tests.api.conftest import Env, fill_store, hourly, plant_data

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
FEB = datetime(2026, 2, 1, tzinfo=UTC)
MARCH = datetime(2026, 3, 1, tzinfo=UTC)


def gec(first: str, last: str, **extra: Any) -> dict[str, Any]:
    return {"kind": "gec", "serial_first": first, "serial_last": last, "valid_from": "2026-01-01",
            "valid_to": "2026-12-31", "region": "CN", "evidence": f"transfer record {first}", **extra}


def ppa(contract: str, mwh: float, **extra: Any) -> dict[str, Any]:
    return {"kind": "ppa", "contract_id": contract, "quantity": mwh, "unit": "MWh", "valid_from": "2026-03-01",
            "valid_to": "2026-03-31", "evidence": f"contract {contract}", **extra}


def residual() -> float:
    """The CN market-based (residual) factor for March 2026, kg/kWh (input data, not a result)."""
    return default_factor_set().grid_factor("CN", date(2026, 3, 1), method="market").value


def location() -> float:
    return default_factor_set().grid_factor("CN", date(2026, 3, 1)).value


def kwh_per_certificate() -> float:
    return default_factor_set().get("cn_gec_unit").value


@pytest.fixture
def filled(env: Env) -> Env:
    # the meters may carry a large load here (the converter quarantines power above max_power_kw)
    plant = plant_data()
    for m in plant["meters"]:
        m["max_power_kw"] = 1e6
    # February: m1 5 000 kWh (1 Feb); March: m1 5 000, m2 3 000 (area a), m3 4 000 kWh (area b), all on 1 March
    fill_store(env.store, plant, {"m1": hourly(FEB, 10, 500.0) + hourly(MARCH, 10, 500.0),
                                  "m2": hourly(MARCH, 10, 300.0), "m3": hourly(MARCH, 10, 400.0)})
    env.clock.now = NOW
    return env


def test_market_based_balance_equals_the_hand_computed_value(filled: Env) -> None:
    r, f, cert = residual(), location(), kwh_per_certificate()
    with TestClient(filled.app()) as c:
        h = filled.h("admin")
        site = c.post("/v1/instruments", json=gec("X-000001", "X-000008"), headers=h)       # 8 certificates, site
        assert site.status_code == 201, site.text
        assert site.json()["certificates"] == 8 and site.json()["quantity_mwh"] == 8
        area = c.post("/v1/instruments", json=ppa("PPA-1", 2, scope="area", target="a"), headers=h)
        meter = c.post("/v1/instruments", json=gec("Y-000001", "Y-000001", scope="meter", target="m3",
                                                   valid_to="2026-06-30"), headers=h)
        assert area.status_code == 201 and meter.status_code == 201, (area.text, meter.text)
        body = c.get("/v1/balance", params={"period": "month"}, headers=h).json()
        only_m2 = c.get("/v1/balance", params={"period": "month", "meter": "m2"}, headers=h).json()
        area_a = c.get("/v1/balance", params={"period": "month", "area": "a"}, headers=h).json()
        g, p, y = site.json()["id"], area.json()["id"], meter.json()["id"]
    # February: m1's 5 000 kWh used 5 000 kWh of the site's 8 certificates (the PPA starts in March; Y is m3's)
    # March, meter first, then area, then site:
    #   m1 (area a) 5 000 kWh: PPA 2 000 kWh, then the 8 × cert − 5 000 kWh left of the site certificates
    #   m2 (area a) 3 000 kWh: nothing left -> residual
    #   m3 (area b) 4 000 kWh: its own certificate (1 × cert), the rest at the residual factor
    g_left = 8 * cert - 5000
    m1_res = 5000 - 2000 - g_left
    m3_res = 4000 - 1 * cert
    assert body["co2e_kg"] == pytest.approx((5000 + 3000 + 4000) * f)
    market = body["market_based"]
    assert market["co2e_kg"] == pytest.approx((m1_res + 3000 + m3_res) * r)
    assert market["covered_kwh"] == pytest.approx(2000 + g_left + cert)
    assert market["residual_kwh"] == pytest.approx(m1_res + 3000 + m3_res)
    assert market["complete"] is True
    uses = market["instruments"]
    assert {u["id"]: u["used_kwh"] for u in uses} == pytest.approx({g: g_left, p: 2000, y: cert})
    assert {u["id"]: u["used_before_kwh"] for u in uses} == pytest.approx({g: 5000, p: 0, y: 0})
    per_meter = {m["meter"]: m["market_co2e_kg"] for m in body["meters"]}
    assert per_meter == pytest.approx({"m1": m1_res * r, "m2": 3000 * r, "m3": m3_res * r})
    # a boundary inside the site sees its part of the site's allocation
    assert only_m2["market_based"]["co2e_kg"] == pytest.approx(3000 * r)
    assert area_a["market_based"]["co2e_kg"] == pytest.approx((m1_res + 3000) * r)
    assert {u["id"] for u in area_a["market_based"]["instruments"]} == {g, p}


def test_without_instruments_market_is_residual_times_energy(filled: Env) -> None:
    with TestClient(filled.app()) as c:
        body = c.get("/v1/balance", params={"period": "month"}, headers=filled.h("viewer")).json()
    assert body["market_based"]["co2e_kg"] == pytest.approx(12000 * residual())
    assert body["market_based"]["instruments"] == []


def test_a_voided_instrument_stops_counting(filled: Env) -> None:
    r, cert = residual(), kwh_per_certificate()
    with TestClient(filled.app()) as c:
        h = filled.h("admin")
        g = c.post("/v1/instruments", json=gec("X-000001", "X-000008"), headers=h).json()["id"]
        p = c.post("/v1/instruments", json=ppa("PPA-1", 2, scope="area", target="a"), headers=h).json()["id"]
        voided = c.post(f"/v1/instruments/{p}/void", json={"reason": "contract cancelled"}, headers=h)
        assert voided.status_code == 200 and voided.json()["voided"] is True
        assert voided.json()["void_reason"] == "contract cancelled"
        body = c.get("/v1/balance", params={"period": "month"}, headers=h).json()
        listed = c.get("/v1/instruments", headers=h).json()
    # March without the PPA: m1 uses the 8 × cert − 5 000 kWh left of the site certificates, nothing else
    covered = 8 * cert - 5000
    assert body["market_based"]["co2e_kg"] == pytest.approx((12000 - covered) * r)
    assert [u["id"] for u in body["market_based"]["instruments"]] == [g]
    assert [(i["id"], i["voided"]) for i in listed] == [(g, False), (p, True)]


def test_report_market_total_equals_balance_market_total(filled: Env) -> None:
    with TestClient(filled.app()) as c:
        h = filled.h("admin")
        c.post("/v1/instruments", json=gec("X-000001", "X-000008"), headers=h)
        c.post("/v1/instruments", json=ppa("PPA-1", 2, scope="area", target="a"), headers=h)
        c.post("/v1/offsets", json={"kind": "sink", "quantity": 10, "unit": "kg", "applies_on": "2026-03-02",
                                    "evidence": "survey"}, headers=h)
        params = {"from": "2026-03-01T00:00:00Z", "to": "2026-03-31T00:00:00Z"}
        balance = c.get("/v1/balance", params=params, headers=h).json()
        report = c.get("/v1/reports/period", params=params, headers=h).json()
        text = c.get("/v1/reports/period", params={**params, "format": "csv"}, headers=h).text
    assert balance["market_based"]["covered_kwh"] > 0
    assert balance["market_based"]["net_co2e_kg"] == pytest.approx(balance["market_based"]["co2e_kg"] - 10.0)
    assert report["balance"]["market_based"] == balance["market_based"]
    parsed = list(csv.DictReader(io.StringIO(text)))
    rows = {(r["section"], r["name"]): r["co2e_kg"] for r in parsed}
    assert float(rows[("total", "market_based")]) == balance["market_based"]["co2e_kg"]
    used = {r["name"]: float(r["energy"]) for r in parsed if r["section"] == "instrument"}
    assert used == {f"{u['id']} {u['kind']}": u["used_kwh"] for u in balance["market_based"]["instruments"]}


def test_an_overlapping_serial_range_is_refused(env: Env) -> None:
    with TestClient(env.app()) as c:
        h = env.h("admin")
        first = c.post("/v1/instruments", json=gec("GEC2026-000001", "GEC2026-000100"), headers=h)
        assert first.status_code == 201, first.text
        clash = c.post("/v1/instruments", json=gec("GEC2026-000050", "GEC2026-000150"), headers=h)
        assert clash.status_code == 409
        detail = clash.json()["detail"]
        assert "GEC2026-000050..GEC2026-000150" in detail and "GEC2026-000001..GEC2026-000100" in detail
        inside = c.post("/v1/instruments", json=gec("GEC2026-000100", "GEC2026-000100"), headers=h)
        assert inside.status_code == 409
        # the next range, and the same numbers under another prefix, are different certificates
        assert c.post("/v1/instruments", json=gec("GEC2026-000101", "GEC2026-000200"), headers=h).status_code == 201
        assert c.post("/v1/instruments", json=gec("GEC2025-000001", "GEC2025-000100"), headers=h).status_code == 201
        # a void frees the range
        c.post(f"/v1/instruments/{first.json()['id']}/void", json={"reason": "wrong range"}, headers=h)
        assert c.post("/v1/instruments", json=gec("GEC2026-000050", "GEC2026-000099"), headers=h).status_code == 201
        # a PPA contract counts once
        assert c.post("/v1/instruments", json=ppa("PPA-9", 10), headers=h).status_code == 201
        again = c.post("/v1/instruments", json=ppa("PPA-9", 3), headers=h)
        assert again.status_code == 409 and "PPA-9" in again.json()["detail"]


def test_a_range_counted_by_another_site_is_refused(env: Env) -> None:
    data = plant_data("s2")
    s2 = Settings(plant=parse_plant(data), plant_data=data, base_dir=env.tmp,
                  api=ApiSection(keys_file=str(env.keys_file), db_path=str(env.tmp / "api.sqlite"), live=False))
    app2 = create_app(s2, SqliteStore(env.tmp / "store.sqlite"), KeyRing.load(env.keys_file), clock=env.clock)
    with TestClient(app2) as c2, TestClient(env.app()) as c1:
        assert c2.post("/v1/instruments", json=gec("G-0001", "G-0010"), headers=env.h("other")).status_code == 201
        clash = c1.post("/v1/instruments", json=gec("G-0010", "G-0020"), headers=env.h("admin"))
        assert clash.status_code == 409 and "another site's entry" in clash.json()["detail"]


@pytest.mark.parametrize(("body", "where"), [
    (gec("X-000001", "X-000010", quantity=10), "quantity"),
    (gec("X-000001", "Z-000010"), "prefix"),
    (gec("X-000010", "X-000001"), "serial_last"),
    (gec("no serial", "X-000001"), "serial_first"),
    (ppa("PPA-2", 5, unit="t"), "unit"),
    ({**ppa("PPA-3", 5), "contract_id": None}, "contract_id"),
    (ppa("PPA-4", 5, scope="area", target="nowhere"), "nowhere"),
    (ppa("PPA-5", 5, scope="meter"), "target"),
    (ppa("PPA-6", 5, valid_to="2026-02-01"), "valid_to"),
    ({**gec("X-000001", "X-000002"), "evidence": ""}, "evidence"),
])
def test_bad_entries_are_refused_naming_what_is_wrong(env: Env, body: dict[str, Any], where: str) -> None:
    with TestClient(env.app()) as c:
        resp = c.post("/v1/instruments", json=body, headers=env.h("admin"))
        assert resp.status_code == 422, resp.text
        assert where in resp.text
        assert c.get("/v1/instruments", headers=env.h("admin")).json() == []


def test_entries_are_audited(env: Env) -> None:
    with TestClient(env.app()) as c:
        h = env.h("admin")
        made = c.post("/v1/instruments", json=gec("A-01", "A-05"), headers=h).json()
        c.post(f"/v1/instruments/{made['id']}/void", json={"reason": "typo"}, headers=h)
        rows = c.get("/v1/audit", params={"entity": "instrument"}, headers=h).json()["rows"]
        assert c.get("/v1/audit/verify", headers=h).json()["ok"] is True
    assert [(r["action"], r["entity_id"]) for r in rows] == [("create", str(made["id"])), ("void", str(made["id"]))]
    assert made["serial_first"] == "A-01" and made["serial_last"] == "A-05" and made["certificates"] == 5


def test_months_are_cut_in_the_site_time_zone() -> None:
    tz = ZoneInfo("Asia/Shanghai")
    start, end = datetime(2026, 1, 15, tzinfo=UTC), datetime(2026, 3, 10, tzinfo=UTC)
    feb, mar = datetime(2026, 2, 1, tzinfo=tz), datetime(2026, 3, 1, tzinfo=tz)   # 16:00 UTC the day before
    assert month_steps(start, end, tz, start, end) == [(start, feb), (feb, mar), (mar, end)]
    # no data before `lo` or after `hi`: no cuts needed there
    assert month_steps(start, end, tz, start, datetime(2026, 2, 10, tzinfo=UTC)) == [(start, feb), (feb, end)]
    assert month_steps(start, end, tz, end, end) == [(start, end)]


def test_without_instruments_steps_are_years() -> None:
    tz = ZoneInfo("Asia/Shanghai")
    start, end = datetime(2025, 6, 1, tzinfo=UTC), datetime(2027, 3, 1, tzinfo=UTC)
    y2026, y2027 = datetime(2026, 1, 1, tzinfo=tz), datetime(2027, 1, 1, tzinfo=tz)
    assert month_steps(start, end, tz, start, end, months=12) == [(start, y2026), (y2026, y2027), (y2027, end)]


class OneMonthStore:
    """A pure-unit fake: the same totals for any window (the test asks for one window only)."""

    def __init__(self, totals: list[MeterTotal]) -> None:
        self.rows = totals

    def totals(self, site: str, start: datetime, end: datetime) -> list[MeterTotal]:
        return self.rows


def test_other_carriers_count_their_one_figure_in_the_market_total(env: Env) -> None:
    gas = MeterTotal(meter="boiler", site="s1", area="a", carrier="natural_gas", scope="scope1", energy=100.0,
                     energy_unit="m3", co2e_kg=215.0, points=1, factor_ids=("ng",))
    power = MeterTotal(meter="m1", site="s1", area="a", carrier="electricity", scope="scope2_location",
                       energy=50.0, energy_unit="kWh", co2e_kg=25.0, points=1)
    week = (datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 9, tzinfo=UTC))
    out = allocate(env.settings(), OneMonthStore([gas, power]), [], "s1", *week, NOW)  # type: ignore[arg-type]
    assert out.meters[("boiler", "scope1")].co2e_kg == 215.0
    assert out.meters[("m1", "scope2_location")].co2e_kg == pytest.approx(50.0 * residual())
