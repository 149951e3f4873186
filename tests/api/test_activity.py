"""/v1/activity in process (real SQLite store and API database): an entry counts in balance and history with
source manual and its share, spread over its days; a bill for a live meter is reconciled, not added; a void takes
an entry out; evidence files are kept by SHA-256; a CSV with a bad row stores nothing; the audit chain holds."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import Env, fill_store, hourly, plant_data

DIESEL_T = 0.84 * 2 + 1.0   # 2000 L x 0.84 kg/L + 1 t
DIESEL_KG_PER_T = 42.652 * 20.2 * 0.98 * 44 / 12   # GB/T 32150: NCV x CC x OF x 44/12
MARCH = {"from": "2026-03-01T00:00:00Z", "to": "2026-04-01T00:00:00Z"}
CSV = ("kind,start,end,quantity,unit,carrier,density,evidence\n"
       "fuel,2026-03-03,,2000,L,diesel,0.84 kg/L,DN-1\n"
       "fuel,2026-03-04,,1,t,diesel,,DN-2\n")


def _balance(c: TestClient, env: Env, **params: str) -> dict[str, object]:
    resp = c.get("/v1/balance", params={**MARCH, **params}, headers=env.h("viewer"))
    assert resp.status_code == 200, resp.text
    body: dict[str, object] = resp.json()
    return body


def test_entries_count_with_their_share_and_a_void_takes_one_out(env: Env) -> None:
    fill_store(env.store, plant_data(), {"m1": hourly(datetime(2026, 3, 2, tzinfo=UTC), 24, 10.0)})
    with TestClient(env.app()) as c:
        before = _balance(c, env)
        resp = c.post("/v1/activity/import", content=CSV.encode(), headers=env.h("engineer"))
        assert resp.status_code == 200, resp.text
        assert len(resp.json()["stored"]) == 2
        after = _balance(c, env)
        added = DIESEL_T * DIESEL_KG_PER_T
        assert after["co2e_kg"] == pytest.approx(before["co2e_kg"] + added, rel=1e-9)  # type: ignore[operator]
        assert after["manual_co2e_kg"] == pytest.approx(added, rel=1e-9)
        assert after["manual_share"] == pytest.approx(added / after["co2e_kg"], rel=1e-9)  # type: ignore[operator]
        manual = [m for m in after["meters"] if m["source"] == "manual"]  # type: ignore[attr-defined]
        assert [(m["meter"], m["points"]) for m in manual] == [("manual:diesel", 2)]
        assert manual[0]["factor_ids"] == sorted(["c_to_co2_ratio", "cn_fuel_diesel_cc", "cn_fuel_diesel_ncv",
                                                  "cn_fuel_diesel_of"])
        # a delivery covers its day: history by day puts it there, in full
        hist = c.get("/v1/history", params={**MARCH, "step": "1d"}, headers=env.h("viewer")).json()
        day = {b["start"][:10]: b for b in hist["buckets"] if b["manual_co2e_kg"]}
        assert day["2026-03-03"]["manual_co2e_kg"] == pytest.approx(0.84 * 2 * DIESEL_KG_PER_T, rel=1e-9)
        # a day's balance holds only that day's delivery
        one = _balance(c, env, **{"from": "2026-03-04T00:00:00Z", "to": "2026-03-05T00:00:00Z"})
        assert one["manual_co2e_kg"] == pytest.approx(DIESEL_KG_PER_T, rel=1e-9)
        first = resp.json()["stored"][0]
        voided = c.post(f"/v1/activity/{first}/void", json={"reason": "entered twice"}, headers=env.h("engineer"))
        assert voided.status_code == 200 and voided.json()["voided"] is True
        assert _balance(c, env)["manual_co2e_kg"] == pytest.approx(DIESEL_KG_PER_T, rel=1e-9)
        again = c.post(f"/v1/activity/{first}/void", json={"reason": "x"}, headers=env.h("engineer"))
        assert again.status_code == 409
        assert c.get("/v1/audit/verify", headers=env.h("admin")).json()["ok"] is True


def test_a_bill_for_a_live_meter_is_reconciled_not_added(env: Env) -> None:
    fill_store(env.store, plant_data(), {"m1": hourly(datetime(2026, 3, 1, tzinfo=UTC), 48, 10.0)})
    with TestClient(env.app()) as c:
        before = _balance(c, env)
        bill = {"kind": "bill", "start": "2026-03-01", "end": "2026-03-02", "quantity": 500, "unit": "kWh",
                "carrier": "electricity", "meters": ["m1"], "evidence": "invoice 2026-03"}
        resp = c.post("/v1/activity", json=bill, headers=env.h("engineer"))
        assert resp.status_code == 201, resp.text
        out = resp.json()
        assert out["counted"] is False and out["area"] == "a"
        rec = out["reconciliation"]
        assert (rec["billed"], rec["metered"], rec["difference"]) == pytest.approx((500.0, 480.0, 20.0))
        assert rec["difference_pct"] == pytest.approx(20 / 480 * 100)
        after = _balance(c, env)
        assert after["co2e_kg"] == before["co2e_kg"] and after["manual_co2e_kg"] == 0.0
        assert [r["entry_id"] for r in after["reconciliations"]] == [out["id"]]  # type: ignore[index]


def test_evidence_file_is_kept_by_its_hash(env: Env) -> None:
    content = b"%PDF-1.4 delivery note"
    with TestClient(env.app()) as c:
        resp = c.post("/v1/activity", headers=env.h("engineer"), json={
            "kind": "refrigerant", "start": "2026-03-05", "quantity": 10, "unit": "kg", "gas": "HFC-134a",
            "evidence_file": {"name": "service-report.pdf", "content_base64": base64.b64encode(content).decode()}})
        assert resp.status_code == 201, resp.text
        digest = hashlib.sha256(content).hexdigest()
        assert resp.json()["evidence_sha256"] == digest
        assert (env.tmp / "evidence" / digest).read_bytes() == content
        assert resp.json()["result"]["co2e_kg"] == pytest.approx(10 * 1300)
        got = c.get(f"/v1/activity/{resp.json()['id']}/evidence", headers=env.h("viewer"))
        assert got.status_code == 200 and got.content == content
        assert got.headers["x-evidence-sha256"] == digest and "service-report.pdf" in got.headers["content-disposition"]
        (env.tmp / "evidence" / digest).write_bytes(b"tampered")
        assert c.get(f"/v1/activity/{resp.json()['id']}/evidence", headers=env.h("viewer")).status_code == 409
        none = c.post("/v1/activity", headers=env.h("engineer"), json={
            "kind": "refrigerant", "start": "2026-03-05", "quantity": 10, "unit": "kg", "gas": "HFC-134a"})
        assert none.status_code == 422 and "evidence" in none.text


def test_a_csv_with_a_bad_row_stores_nothing_unless_asked(env: Env) -> None:
    bad = CSV + "fuel,2026-03-05,,500,L,diesel,,DN-3\nrefrigerant,2026-03-06,,2,kg,,,DN-4\n"
    with TestClient(env.app()) as c:
        resp = c.post("/v1/activity/import", content=bad.encode(), headers=env.h("engineer"))
        assert resp.status_code == 422
        assert "line 4: diesel metered by volume (L) needs a density" in resp.text
        assert "line 5: " in resp.text and "gas" in resp.text
        assert c.get("/v1/activity", headers=env.h("viewer")).json() == []
        took = c.post("/v1/activity/import", params={"take_good_rows": "true"}, content=bad.encode(),
                      headers=env.h("engineer"))
        assert took.status_code == 200
        assert [e["line"] for e in took.json()["errors"]] == [4, 5]
        assert len(took.json()["stored"]) == 2
        header = c.post("/v1/activity/import", content=b"kind,when\nfuel,x\n", headers=env.h("engineer"))
        assert header.status_code == 422 and "line 1" in header.text


def test_entries_are_never_edited(env: Env) -> None:
    import sqlite3

    with TestClient(env.app()) as c:
        c.post("/v1/activity/import", content=CSV.encode(), headers=env.h("engineer"))
    conn = sqlite3.connect(env.tmp / "api.sqlite")
    try:
        with pytest.raises(sqlite3.IntegrityError, match="never edited"):
            conn.execute("UPDATE activity SET evidence = 'x'")
        with pytest.raises(sqlite3.IntegrityError, match="never edited"):
            conn.execute("DELETE FROM activity")
    finally:
        conn.close()


def test_the_readme_tours_delivery_is_what_it_says(env: Env) -> None:
    """The CSV the README's tour writes is valid and amounts to the kg it states (docs cannot drift)."""
    import re
    from pathlib import Path

    from api.activity import parse_rows

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    fmt = re.search(r"printf '([^']+)'", readme)
    stated = re.search(r"= ([\d ]+\.\d+) kg CO2 \(GB/T 32150 defaults\)", readme)
    assert fmt and stated
    text = fmt.group(1).replace("\\n", "\n").replace("%s", "2026-03-05")
    good, errors, rows = parse_rows(env.settings(), text.encode(), "delivery.csv", "0" * 64)
    assert (rows, errors) == (1, [])
    assert good[0][1].co2e_kg == pytest.approx(float(stated.group(1).replace(" ", "")), abs=0.005)


def test_the_period_report_shows_manual_entries_and_their_share(env: Env) -> None:
    fill_store(env.store, plant_data(), {"m1": hourly(datetime(2026, 3, 2, tzinfo=UTC), 24, 10.0)})
    with TestClient(env.app()) as c:
        assert c.post("/v1/activity/import", content=CSV.encode(), headers=env.h("engineer")).status_code == 200
        report = c.get("/v1/reports/period", params=MARCH, headers=env.h("viewer")).json()["balance"]
        added = DIESEL_T * DIESEL_KG_PER_T
        assert report["manual_co2e_kg"] == pytest.approx(added, rel=1e-9)
        share = report["manual_share"]
        csv_text = c.get("/v1/reports/period", params={**MARCH, "format": "csv"}, headers=env.h("viewer")).text
        rows = [r.split(",") for r in csv_text.splitlines()]
        total = next(r for r in rows if r[:2] == ["total", "manual"])
        assert (float(total[4]), float(total[6])) == pytest.approx((added, share), rel=1e-9)
        manual_rows = [r for r in rows if r[0] == "manual"]
        assert [(r[1], float(r[4])) for r in manual_rows] == [("manual:diesel", pytest.approx(added, rel=1e-9))]
        page = c.get("/v1/reports/period", params={**MARCH, "format": "html"}, headers=env.h("viewer")).text
        assert "manual:diesel (manual entries: 2)" in page and f"({share:.1%})" in page


@pytest.mark.parametrize(("row", "reason"), [
    ("fuel,2026-03-05,,1,1/0,diesel,,DN", "unit"),
    ("fuel,2026-03-05,,1,(,diesel,,DN", "unit"),
    ("fuel,2026-03-05,,1000,L,diesel,-0.84 kg/L,DN", "density"),
    ("fuel,2026-03-05,,1000,L,diesel,1e999 kg/L,DN", "density"),
    ("fuel,2026-03-05,,nan,t,diesel,,DN", "quantity"),
    ("fuel,99999-03-05,,1,t,diesel,,DN", "start"),
    ("fuel,2026-03-05,,1,t,diesel,,DN,extra", "more values than columns"),
    ("fuel,2026-03-05,,1,t,diesel,,\"DN\x00", "not CSV"),
    ("fuel,2026-03-05,,1,t,diesel,,\"unterminated", "not CSV"),
])
def test_hostile_rows_are_refused_with_their_line(env: Env, row: str, reason: str) -> None:
    with TestClient(env.app()) as c:
        resp = c.post("/v1/activity/import", content=(CSV + row + "\n").encode(), headers=env.h("engineer"))
        assert resp.status_code == 422, resp.text
        assert "line 4" in resp.text and reason in resp.text, resp.text
        assert c.get("/v1/activity", headers=env.h("viewer")).json() == []


def test_a_bill_of_a_metered_carrier_names_its_meters_or_says_unmetered(env: Env) -> None:
    bill = {"kind": "bill", "start": "2026-03-01", "end": "2026-03-31", "quantity": 900, "unit": "kWh",
            "carrier": "electricity", "evidence": "invoice of the canteen's own supply"}
    with TestClient(env.app()) as c:
        refused = c.post("/v1/activity", json=bill, headers=env.h("engineer"))
        assert refused.status_code == 422 and "this plant meters electricity live (m1, m2, m3)" in refused.text
        counted = c.post("/v1/activity", json={**bill, "unmetered": True}, headers=env.h("engineer"))
        assert counted.status_code == 201, counted.text
        assert counted.json()["counted"] is True
        assert _balance(c, env)["manual_co2e_kg"] == pytest.approx(counted.json()["result"]["co2e_kg"], rel=1e-9)
        wrong = c.post("/v1/activity", json={**bill, "unmetered": True, "meters": ["m1"]}, headers=env.h("engineer"))
        assert wrong.status_code == 422 and "unmetered" in wrong.text
