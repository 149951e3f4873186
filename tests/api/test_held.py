"""Held energy through the API over the real SQLite and InfluxDB stores, written by ingest's converter: listed and
totalled, shown beside balances, history, meters and reports; released (at its own time, or at a counted_ts with the
plant's factor for then) or rejected by an engineer with a note, once, each in the audit chain."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import START, Env
from tests.api.held_data import DAY, app_over, feed, grid_kg_per_kwh, held_plant

WINDOW = {"from": DAY.isoformat(), "to": (DAY + timedelta(days=1)).isoformat()}


@pytest.fixture(params=["sqlite", pytest.param("influx", marks=pytest.mark.integration)])
def client(request: pytest.FixtureRequest, env: Env) -> Iterator[TestClient]:
    url = request.getfixturevalue("influx_url") if request.param == "influx" else None
    with app_over(env, request.param, url) as (store, app):
        feed(store, held_plant())
        with TestClient(app) as c:
            yield c


def _open(c: TestClient, env: Env, meter: str) -> dict[str, Any]:
    records = c.get("/v1/held", params={"meter": meter, "status": "open"}, headers=env.h("viewer")).json()["records"]
    assert len(records) == 1, records
    rec: dict[str, Any] = records[0]
    return rec


def _audit(c: TestClient, env: Env) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = c.get("/v1/audit", params={"entity": "held"}, headers=env.h("viewer")).json()["rows"]
    return rows


def _balance(c: TestClient, env: Env, **params: str) -> dict[str, Any]:
    resp = c.get("/v1/balance", params={**WINDOW, **params}, headers=env.h("viewer"))
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def test_held_records_are_listed_with_their_reasons_and_totalled(client: TestClient, env: Env) -> None:
    f = grid_kg_per_kwh(DAY)
    h = env.h("viewer")
    records = client.get("/v1/held", headers=h).json()["records"]
    assert sorted((r["meter"], r["energy"], r["status"]) for r in records) == [
        ("m1", 5000.0, "open"), ("m2", 2.0, "open"), ("m3", 3000.0, "open")]
    by_meter = {r["meter"]: r for r in records}
    assert "held by the edge: counter 4000 kWh jumped" in by_meter["m3"]["reason"]
    assert by_meter["m1"]["reason"] and by_meter["m2"]["reason"]   # ingest says why (max power; before the start)
    assert by_meter["m1"]["co2e_kg"] == pytest.approx(5000.0 * f)
    assert by_meter["m2"]["ts"] < START.isoformat()
    assert [r["meter"] for r in client.get("/v1/held", params={"meter": "m3"}, headers=h).json()["records"]] == ["m3"]
    assert client.get("/v1/held", params={"status": "released"}, headers=h).json()["records"] == []
    assert client.get("/v1/held", params={"meter": "nope"}, headers=h).status_code == 404
    assert client.get("/v1/held", params={"status": "maybe"}, headers=h).status_code == 422
    one = client.get(f"/v1/held/{by_meter['m1']['id']}", headers=h).json()
    assert one == by_meter["m1"]
    assert client.get("/v1/held/999999", headers=h).status_code == 404
    totals = client.get("/v1/held/totals", headers=h).json()
    assert {t["meter"]: (t["energy"], t["records"]) for t in totals["meters"]} == {
        "m1": (5000.0, 1), "m2": (2.0, 1), "m3": (3000.0, 1)}
    assert totals["records"] == 3


def test_balance_says_what_is_held_beside_what_is_counted(client: TestClient, env: Env) -> None:
    f = grid_kg_per_kwh(DAY)
    b = _balance(client, env)
    assert b["co2e_kg"] == pytest.approx(6.0 * f)             # only the counted energy
    assert b["held_co2e_kg"] == pytest.approx(8000.0 * f)     # m1's and m3's, timed in the day (m2's is not)
    assert b["held_records"] == 2
    meters = {m["meter"]: m for m in b["meters"]}
    assert (meters["m1"]["energy"], meters["m1"]["held_energy"], meters["m1"]["held_records"]) == (
        pytest.approx(6.0), 5000.0, 1)
    # m3 counted nothing in the day: its row says so, all of its energy is held
    assert (meters["m3"]["energy"], meters["m3"]["held_energy"], meters["m3"]["points"]) == (0.0, 3000.0, 0)
    (electricity,) = b["carriers"]
    assert electricity["held_energy"] == 8000.0 and electricity["energy"] == pytest.approx(6.0)
    only_m3 = _balance(client, env, meter="m3")
    assert only_m3["held_co2e_kg"] == pytest.approx(3000.0 * f) and only_m3["co2e_kg"] == 0.0
    meters_now = {m["meter"]: m for m in client.get("/v1/meters", headers=env.h("viewer")).json()["meters"]}
    assert {k: (m["held_energy"], m["held_records"]) for k, m in meters_now.items()} == {
        "m1": (5000.0, 1), "m2": (2.0, 1), "m3": (3000.0, 1)}


def test_release_counts_the_energy_once_audited_and_final(client: TestClient, env: Env) -> None:
    f = grid_kg_per_kwh(DAY)
    rec = _open(client, env, "m1")
    before = _balance(client, env)
    resp = client.post(f"/v1/held/{rec['id']}/release", json={"note": "press 2 ran a double shift: real"},
                       headers=env.h("engineer"))
    assert resp.status_code == 200, resp.text
    done = resp.json()
    assert (done["status"], done["decided_by"], done["note"]) == ("released", "engineer",
                                                                   "press 2 ran a double shift: real")
    assert done["counted_ts"] == rec["ts"] and done["decided"] is not None
    after = _balance(client, env)
    assert after["co2e_kg"] == pytest.approx(before["co2e_kg"] + 5000.0 * f)
    assert after["held_co2e_kg"] == pytest.approx(before["held_co2e_kg"] - 5000.0 * f)
    m1 = next(m for m in after["meters"] if m["meter"] == "m1")
    assert (m1["energy"], m1["held_energy"], m1["held_records"]) == (pytest.approx(5006.0), 0.0, 0)
    # counted in its own hour
    hours = client.get("/v1/history", params={**WINDOW, "step": "1h", "meter": "m1"},
                       headers=env.h("viewer")).json()["buckets"]
    assert [(b["start"][11:16], b["energy"]) for b in hours if b["energy"] > 1.5] == [("02:00", pytest.approx(5001.0))]
    # final: a second decision of either kind is refused and leaves no audit row
    for action in ("release", "reject"):
        again = client.post(f"/v1/held/{rec['id']}/{action}", json={"note": "again"}, headers=env.h("admin"))
        assert again.status_code == 409 and "released" in again.json()["detail"]
    rows = _audit(client, env)
    assert [(r["action"], r["entity_id"], r["actor"]) for r in rows] == [("release", str(rec["id"]), "engineer")]
    body = json.loads(rows[0]["body"])
    assert body["note"] == "press 2 ran a double shift: real" and body["energy"] == 5000.0
    assert body["co2e_kg"] == pytest.approx(5000.0 * f)
    assert datetime.fromisoformat(body["counted_ts"]) == datetime.fromisoformat(rec["ts"])
    assert client.get("/v1/audit/verify", headers=env.h("viewer")).json()["ok"] is True
    assert _balance(client, env)["co2e_kg"] == pytest.approx(after["co2e_kg"])   # counted once


def test_reject_counts_nothing_and_is_audited(client: TestClient, env: Env) -> None:
    rec = _open(client, env, "m3")
    before = _balance(client, env)
    resp = client.post(f"/v1/held/{rec['id']}/reject", json={"note": "gateway garbage during firmware update"},
                       headers=env.h("admin"))
    assert resp.status_code == 200 and resp.json()["status"] == "rejected"
    after = _balance(client, env)
    assert after["co2e_kg"] == pytest.approx(before["co2e_kg"])
    assert after["held_records"] == 1 and "m3" not in {m["meter"] for m in after["meters"]}
    assert [r["meter"] for r in client.get("/v1/held", params={"status": "rejected"},
                                           headers=env.h("viewer")).json()["records"]] == ["m3"]
    assert [(r["action"], r["actor"]) for r in _audit(client, env)] == [("reject", "admin")]
    assert client.post(f"/v1/held/{rec['id']}/release", json={"note": "changed my mind"},
                       headers=env.h("admin")).status_code == 409


@pytest.mark.parametrize("note", ["", "   ", None])
def test_a_decision_needs_a_note(client: TestClient, env: Env, note: str | None) -> None:
    rec = _open(client, env, "m1")
    body = {} if note is None else {"note": note}
    for action in ("release", "reject"):
        assert client.post(f"/v1/held/{rec['id']}/{action}", json=body, headers=env.h("engineer")).status_code == 422
    assert _open(client, env, "m1")["status"] == "open" and _audit(client, env) == []


def test_a_record_whose_time_cannot_be_placed_is_released_at_a_counted_ts(client: TestClient, env: Env) -> None:
    rec = _open(client, env, "m2")
    h = env.h("engineer")
    own = client.post(f"/v1/held/{rec['id']}/release", json={"note": "real"}, headers=h)
    assert own.status_code == 422 and "counted_ts" in str(own.json()["detail"])
    future = (env.clock.now + timedelta(hours=1)).isoformat()
    assert client.post(f"/v1/held/{rec['id']}/release", json={"note": "real", "counted_ts": future},
                       headers=h).status_code == 422
    naive = client.post(f"/v1/held/{rec['id']}/release", json={"note": "real", "counted_ts": "2026-03-02T03:00:00"},
                        headers=h)
    assert naive.status_code == 422
    assert _audit(client, env) == [] and _open(client, env, "m2")["status"] == "open"
    at = DAY + timedelta(hours=3, minutes=15)
    before = _balance(client, env)
    resp = client.post(f"/v1/held/{rec['id']}/release",
                       json={"note": "clock of the edge was a year behind", "counted_ts": at.isoformat()}, headers=h)
    assert resp.status_code == 200, resp.text
    done = resp.json()
    assert done["counted_ts"].startswith("2026-03-02T03:15")
    after = _balance(client, env)
    # the plant's factor for the counted time, not the record's own
    assert after["co2e_kg"] == pytest.approx(before["co2e_kg"] + 2.0 * grid_kg_per_kwh(at))
    assert next(m for m in after["meters"] if m["meter"] == "m2")["energy"] == pytest.approx(2.0)
    (row,) = _audit(client, env)
    body = json.loads(row["body"])
    assert body["counted_ts"].startswith("2026-03-02T03:15") and body["co2e_kg"] == pytest.approx(
        2.0 * grid_kg_per_kwh(at)) and body["factor_id"]


def test_history_and_report_say_what_is_held(client: TestClient, env: Env) -> None:
    f = grid_kg_per_kwh(DAY)
    h = env.h("viewer")
    hours = client.get("/v1/history", params={**WINDOW, "step": "1h", "group": "meter"}, headers=h).json()["buckets"]
    held = {(b["start"][11:16], b["boundary"]): (b["held_energy"], b["held_records"], b["energy"])
            for b in hours if b["held_records"]}
    assert held == {("02:00", "m1"): (5000.0, 1, pytest.approx(1.0)), ("01:00", "m3"): (3000.0, 1, 0.0)}
    text = client.get("/v1/history", params={**WINDOW, "step": "1d", "format": "csv"}, headers=h).text
    (day,) = list(csv.DictReader(io.StringIO(text)))
    assert float(day["held_energy"]) == 8000.0 and float(day["held_co2e_kg"]) == pytest.approx(8000.0 * f)
    assert float(day["estimated_energy"]) == 0.0
    report = client.get("/v1/reports/period", params={**WINDOW, "format": "csv"}, headers=h).text
    rows = {(r["section"], r["name"]): r for r in csv.DictReader(io.StringIO(report))}
    assert float(rows[("total", "held")]["co2e_kg"]) == pytest.approx(8000.0 * f)
    assert float(rows[("meter_held", "m3")]["energy"]) == 3000.0
    page = client.get("/v1/reports/period", params={**WINDOW, "format": "html"}, headers=h).text
    assert "held, not counted" in page and "2 records" in page


def test_roles_and_sites(client: TestClient, env: Env) -> None:
    rec = _open(client, env, "m1")
    for action in ("release", "reject"):
        path = f"/v1/held/{rec['id']}/{action}"
        assert client.post(path, json={"note": "x"}).status_code == 401
        assert client.post(path, json={"note": "x"}, headers=env.h("viewer")).status_code == 403
        assert client.post(path, json={"note": "x"}, headers=env.h("other")).status_code == 404
    assert client.get("/v1/held", headers=env.h("other")).status_code == 404
    assert client.get("/v1/held", headers=env.h("viewer")).status_code == 200
    assert _open(client, env, "m1")["status"] == "open" and _audit(client, env) == []
