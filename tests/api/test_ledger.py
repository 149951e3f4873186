"""Offsets (serials counted once), allowance projection against hand-computed figures, and the report agreeing
with the balance; data written to a real SQLite store through ingest's converter."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from calc.factors import default_factor_set
from tests.api.conftest import Env, fill_store, hourly, plant_data

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
MARCH = datetime(2026, 3, 1, tzinfo=UTC)
APRIL = datetime(2026, 4, 1, tzinfo=UTC)


def grid_factor() -> float:
    """The CN grid factor the converter applies in March 2026, kg/kWh (input data, not a result)."""
    return default_factor_set().grid_factor("CN", NOW.date()).value


def credit(serial: str, tonnes: float = 1.0, day: str = "2026-03-05") -> dict[str, object]:
    return {"kind": "credit", "standard": "CCER", "vintage": 2024, "serial": serial, "quantity": tonnes,
            "unit": "t", "applies_on": day, "evidence": f"retirement record for {serial}"}


@pytest.fixture
def filled(env: Env) -> Env:
    # m1: 1 kWh each hour from 1 March 00:00 to 10 March 11:00 (228 h); m3: 2 kWh each hour on 1 March only
    fill_store(env.store, plant_data(), {"m1": hourly(MARCH, 228, 1.0), "m3": hourly(MARCH, 24, 2.0)})
    env.clock.now = NOW
    return env


def test_a_second_use_of_a_serial_is_refused(env: Env) -> None:
    with TestClient(env.app()) as c:
        h = env.h("admin")
        first = c.post("/v1/offsets", json=credit("CCER-001-100"), headers=h)
        assert first.status_code == 201, first.text
        again = c.post("/v1/offsets", json=credit("CCER-001-100", tonnes=5, day="2026-03-07"), headers=h)
        assert again.status_code == 409 and "CCER-001-100" in again.json()["detail"]
        assert c.post("/v1/offsets", json=credit("CCER-101-200"), headers=h).status_code == 201
        # a void frees the serial; the voided entry stays in the ledger, marked
        entry = first.json()["id"]
        assert c.post(f"/v1/offsets/{entry}/void", json={"reason": "wrong vintage"}, headers=h).status_code == 200
        assert c.post(f"/v1/offsets/{entry}/void", json={"reason": "again"}, headers=h).status_code == 409
        assert c.post("/v1/offsets", json=credit("CCER-001-100"), headers=h).status_code == 201
        ledger = c.get("/v1/offsets", headers=h).json()
        assert [(o["serial"], o["voided"]) for o in ledger] == [
            ("CCER-001-100", True), ("CCER-101-200", False), ("CCER-001-100", False)]


def test_credits_need_serial_and_evidence_and_a_mass_unit(env: Env) -> None:
    with TestClient(env.app()) as c:
        h = env.h("admin")
        no_serial = {**credit("x"), "serial": None}
        assert "serial" in c.post("/v1/offsets", json=no_serial, headers=h).text
        assert c.post("/v1/offsets", json={**credit("y"), "evidence": ""}, headers=h).status_code == 422
        bad_unit = c.post("/v1/offsets", json={**credit("z"), "unit": "kWh"}, headers=h)
        assert bad_unit.status_code == 422 and "kWh" in bad_unit.text


def test_balance_is_net_of_offsets(filled: Env) -> None:
    f = grid_factor()
    with TestClient(filled.app()) as c:
        h = filled.h("admin")
        c.post("/v1/offsets", json=credit("A", tonnes=0.05), headers=h)          # 50 kg in March
        c.post("/v1/offsets", json=credit("B", tonnes=1, day="2026-02-27"), headers=h)  # February: not counted
        body = c.get("/v1/balance", params={"period": "month"}, headers=h).json()
    emitted = (228 * 1.0 + 24 * 2.0) * f
    assert body["co2e_kg"] == pytest.approx(emitted)
    assert {a["area"]: a["co2e_kg"] for a in body["areas"]} == pytest.approx({"a": 228 * f, "b": 48 * f})
    assert body["offsets_kg"] == pytest.approx(50.0)
    assert body["net_co2e_kg"] == pytest.approx(emitted - 50.0)
    m1 = next(m for m in body["meters"] if m["meter"] == "m1")
    # m1 reports every 60 s (interval_s) but sent one sample an hour: 228 of 228 h × 60 expected
    assert m1["expected_points"] == (NOW - datetime(2026, 3, 1, tzinfo=UTC)).total_seconds() // 60
    assert m1["completeness"] == pytest.approx(228 / m1["expected_points"])


def test_allowance_projection_equals_the_hand_computed_value(filled: Env) -> None:
    f = grid_factor()
    assert f > 350 / 744, "the constructed case needs the allowance to run out inside the period"
    with TestClient(filled.app()) as c:
        h = filled.h("admin")
        made = c.post("/v1/allowances", json={"scope": "area", "target": "a", "start": MARCH.isoformat(),
                                               "end": APRIL.isoformat(), "amount": 0.35, "unit": "t"}, headers=h)
        assert made.status_code == 201, made.text
        assert made.json()["amount_kg"] == pytest.approx(350.0)
        status = c.get(f"/v1/allowances/{made.json()['id']}", headers=h).json()["status"]
    # area a (m1 only): used = 228 kWh × f; the last 24 h burned 24 kWh × f, i.e. f kg/h;
    # 21.5 days (516 h) left: projected = 228 f + 516 f = 744 f; runs out after (350 − 228 f) / f hours
    # (within the 516 h because f > 350 / 744)
    assert status["used_kg"] == pytest.approx(228 * f)
    assert status["rate_kg_per_h"] == pytest.approx(f)
    assert status["projected_kg"] == pytest.approx(744 * f)
    assert status["remaining_kg"] == pytest.approx(350 - 228 * f)
    runs_out = datetime.fromisoformat(status["runs_out_at"])
    assert abs((runs_out - (NOW + timedelta(hours=(350 - 228 * f) / f))).total_seconds()) < 1e-3
    assert status["exceeded"] is False


def test_report_totals_equal_balance_totals(filled: Env) -> None:
    with TestClient(filled.app()) as c:
        h = filled.h("admin")
        c.post("/v1/offsets", json=credit("R", tonnes=0.01), headers=h)
        c.post("/v1/allowances", json={"start": MARCH.isoformat(), "end": APRIL.isoformat(), "amount": 1,
                                       "unit": "t"}, headers=h)
        params = {"from": "2026-03-01T00:00:00Z", "to": "2026-03-31T00:00:00Z"}
        balance = c.get("/v1/balance", params=params, headers=h).json()
        report = c.get("/v1/reports/period", params=params, headers=h).json()
        text = c.get("/v1/reports/period", params={**params, "format": "csv"}, headers=h).text
        page = c.get("/v1/reports/period", params={**params, "format": "html"}, headers=h)
    for key in ("co2e_kg", "offsets_kg", "net_co2e_kg", "areas", "scopes", "carriers", "factor_versions"):
        assert report["balance"][key] == balance[key], key
    assert sum(s["co2e_kg"] for s in report["balance"]["scopes"]) == pytest.approx(balance["co2e_kg"])
    assert [o["serial"] for o in report["offsets"]] == ["R"]
    rows = {(r["section"], r["name"]): r["co2e_kg"] for r in csv.DictReader(io.StringIO(text))}
    assert float(rows[("total", "location_based")]) == balance["co2e_kg"]
    assert float(rows[("total", "net")]) == balance["net_co2e_kg"]
    assert page.headers["content-type"].startswith("text/html")
    assert f"{balance['net_co2e_kg']:,.3f} kg" in page.text


def test_an_allowance_period_is_at_most_ten_years(filled: Env) -> None:
    # a period to the year 9999 once made one status request walk 70 million hours of expected profile (the
    # fuzzed API ran out of memory): it is refused with the reason; ten years are taken and answered
    with TestClient(filled.app()) as c:
        h = filled.h("admin")
        too_long = c.post("/v1/allowances", json={"start": "2026-01-01T00:00:00Z", "end": "9999-01-01T00:00:00Z",
                                                 "amount": 5, "unit": "t"}, headers=h)
        assert too_long.status_code == 422, too_long.text
        assert "at most 3653 days" in too_long.text
        ten = c.post("/v1/allowances", json={"start": "2026-01-01T00:00:00Z", "end": "2036-01-01T00:00:00Z",
                                            "amount": 5, "unit": "t"}, headers=h)
        assert ten.status_code == 201, ten.text
        status = c.get(f"/v1/allowances/{ten.json()['id']}", headers=h)
        assert status.status_code == 200, status.text
        assert c.get("/v1/balance", params={"period": "month"}, headers=h).json()["allowance"]["id"] == ten.json()["id"]
