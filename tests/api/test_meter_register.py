"""/v1/meter-register over a real SQLite store: a meter's entry and calibrations through their lifecycle with the
audit chain verified; an overdue calibration fires a `calibration:` alert on the watch's own clock ticks and marks
the meter's energy measured while overdue as uncertain in the balance and the report (equal to the store's own
rows for those hours); a new certificate (a file kept by its SHA-256) resolves the alert and later energy is
certain again."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.notify import verify
from api.settings import Webhook
from tests.api.conftest import Env, fill_store, hourly, plant_data
from tests.api.test_live import Receiver

START = datetime(2026, 3, 1, tzinfo=UTC)
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
OVERDUE_FROM = datetime(2026, 3, 5, tzinfo=UTC)     # due on 03-04: overdue from the next day (site time: UTC)
ENTRY = {"serial": "PM-0042", "make": "Schneider Electric", "model": "PM5560", "accuracy_class": "0.5S",
         "ct_primary_a": 400, "ct_secondary_a": 5, "installed_on": "2024-05-01", "last_calibrated_on": "2025-03-04",
         "calibration_due_on": "2026-03-04", "certificate": {"reference": "CAL-2025-0612"}}
SECRET = "calibration-webhook-secret"
PDF = b"%PDF-1.4 calibration certificate CAL-2026-0310\n"


def wait_for(what: Callable[[], Any], deadline_s: float = 30.0) -> Any:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        found = what()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("condition not met before the deadline")


def calibration_alerts(c: TestClient, env: Env) -> list[dict[str, Any]]:
    return [a for a in c.get("/v1/alerts", headers=env.h("viewer")).json()["alerts"] if a["rule"] == "calibration:m1"]


def kg_of(env: Env, meter: str, start: datetime, end: datetime) -> float:
    return sum(t.co2e_kg for t in env.store.totals("s1", start, end) if t.meter == meter)


def balance(c: TestClient, env: Env, start: datetime, end: datetime) -> dict[str, Any]:
    resp = c.get("/v1/balance", params={"from": start.isoformat(), "to": end.isoformat()}, headers=env.h("viewer"))
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def test_overdue_calibration_alerts_flags_energy_and_a_certificate_clears_it(env: Env, receiver: Receiver) -> None:
    env.clock.now = NOW
    hours = int((NOW - START).total_seconds() // 3600)
    fill_store(env.store, plant_data(), {"m1": hourly(START, hours, 10.0), "m2": hourly(START, hours, 4.0)})
    hook = Webhook(url=receiver.url, secret=SECRET, backoff_s=0.05)
    with TestClient(env.app(tick_s=0.05, webhooks=(hook,))) as c:
        made = c.put("/v1/meter-register/m1", json=ENTRY, headers=env.h("admin"))
        assert made.status_code == 200, made.text
        doc = made.json()
        assert (doc["calibration_state"], doc["days_to_due"], doc["ct_ratio"]) == ("overdue", -6, 80.0)

        fired = wait_for(lambda: calibration_alerts(c, env))
        assert [(a["state"], a["target"], a["unit"], a["severity"]) for a in fired] == [
            ("firing", "m1", "d", "warning")]
        assert fired[0]["value"] == pytest.approx(6.5)   # 5.5 days past 03-05 00:00, counted from the due day
        posted = wait_for(lambda: [json.loads(b) for _, b, _ in receiver.posts])     # notified like a rule's alert
        assert [(p["transition"], p["alert"]["rule"], p["alert"]["id"]) for p in posted] == [
            ("fire", "calibration:m1", fired[0]["id"])]
        headers, body, _ = receiver.posts[0]
        assert verify(SECRET, headers["x-carbonwatch-timestamp"], body, headers["x-carbonwatch-signature"])

        # the balance and the report: m1's energy since 03-05 is uncertain, m2's is not
        b = balance(c, env, START, NOW)
        uncertain_kg = kg_of(env, "m1", OVERDUE_FROM, NOW)
        assert uncertain_kg > 0
        meters = {m["meter"]: m for m in b["meters"]}
        assert meters["m1"]["calibration_overdue"] is True
        assert meters["m1"]["uncertain_co2e_kg"] == pytest.approx(uncertain_kg, rel=1e-12)
        assert meters["m2"]["calibration_overdue"] is False and meters["m2"]["uncertain_co2e_kg"] == 0.0
        assert b["uncertain"]["co2e_kg"] == pytest.approx(uncertain_kg, rel=1e-12)
        assert b["uncertain"]["share"] == pytest.approx(uncertain_kg / b["co2e_kg"], rel=1e-12)
        assert b["uncertain"]["meters"][0]["spans"] == [[OVERDUE_FROM.isoformat().replace("+00:00", "Z"),
                                                          NOW.isoformat().replace("+00:00", "Z")]]
        report = c.get("/v1/reports/period", params={"from": START.isoformat(), "to": NOW.isoformat()},
                       headers=env.h("viewer")).json()
        assert report["balance"]["uncertain"] == b["uncertain"]
        params = {"from": START.isoformat(), "to": NOW.isoformat()}
        csv_text = c.get("/v1/reports/period", params={**params, "format": "csv"}, headers=env.h("viewer")).text
        rows = list(csv.reader(io.StringIO(csv_text)))
        total = next(r for r in rows if r[:2] == ["total", "uncertain"])
        assert float(total[4]) == pytest.approx(uncertain_kg, rel=1e-12)
        assert [r[1] for r in rows if r[0] == "meter_uncertain"] == ["m1"]
        page = c.get("/v1/reports/period", params={**params, "format": "html"}, headers=env.h("viewer")).text
        assert "Uncertain energy (meter calibration overdue" in page and "m1: " in page

        # a new calibration with its certificate file (engineer)
        cal = {"calibrated_on": "2026-03-10", "due_on": "2027-03-10", "issuer": "NIM lab",
               "file": {"filename": "CAL-2026-0310.pdf", "content_base64": base64.b64encode(PDF).decode()}}
        assert c.post("/v1/meter-register/m1/calibrations", json=cal, headers=env.h("viewer")).status_code == 403
        done = c.post("/v1/meter-register/m1/calibrations", json=cal, headers=env.h("engineer"))
        assert done.status_code == 201, done.text
        cert = done.json()["entry"]["certificate"]
        assert cert["sha256"] == hashlib.sha256(PDF).hexdigest() and cert["size_bytes"] == len(PDF)
        assert done.json()["calibration_state"] == "ok" and done.json()["calibrated"] is True
        got = c.get(f"/v1/meter-register/m1/certificates/{cert['sha256']}", headers=env.h("viewer"))
        assert got.content == PDF and hashlib.sha256(got.content).hexdigest() == got.headers["X-Sha256"]

        wait_for(lambda: all(a["state"] == "resolved" for a in calibration_alerts(c, env)))
        assert len(calibration_alerts(c, env)) == 1
        wait_for(lambda: len(receiver.posts) == 2)
        assert json.loads(receiver.posts[1][1])["transition"] == "resolve"

        # energy after the certificate is certain; what was measured while overdue stays uncertain
        later = NOW + timedelta(hours=12)
        fill_store(env.store, plant_data(), {"m1": hourly(NOW, 12, 10.0)})
        env.clock.now = later
        after = balance(c, env, NOW, later)
        assert after["uncertain"] == {"co2e_kg": 0.0, "share": 0.0, "meters": []}
        assert {m["meter"]: m["calibration_overdue"] for m in after["meters"]} == {"m1": False}
        assert balance(c, env, START, later)["uncertain"]["co2e_kg"] == pytest.approx(uncertain_kg, rel=1e-12)

        # removing the meter from the register keeps every version
        assert c.delete("/v1/meter-register/m1", headers=env.h("admin")).json()["active"] is False
        assert c.get("/v1/meter-register", headers=env.h("viewer")).json() == []
        detail = c.get("/v1/meter-register/m1", headers=env.h("viewer")).json()
        assert [(v["version"], v["calibrated"], v["active"]) for v in detail["versions"]] == [
            (1, True, True), (2, True, True), (3, False, False)]
        rows = c.get("/v1/audit", params={"entity": "meter_register"}, headers=env.h("admin")).json()["rows"]
        assert [r["action"] for r in rows] == ["create", "calibrate", "remove"]
        assert c.get("/v1/audit/verify", headers=env.h("viewer")).json()["ok"] is True


def test_register_refusals(env: Env) -> None:
    with TestClient(env.app(tick_s=3600)) as c:
        h = env.h("admin")
        assert c.put("/v1/meter-register/nope", json=ENTRY, headers=h).status_code == 422
        assert c.put("/v1/meter-register/m1", json={**ENTRY, "ct_secondary_a": None},
                     headers=h).status_code == 422
        assert c.post("/v1/meter-register/m2/calibrations", json={"calibrated_on": "2026-03-01",
                      "due_on": "2027-03-01", "reference": "x"}, headers=h).status_code == 404
        assert c.put("/v1/meter-register/m1", json=ENTRY, headers=h).status_code == 200
        assert c.post("/v1/meter-register/m1/calibrations", json={"calibrated_on": "2026-03-01",
                      "due_on": "2027-03-01"}, headers=h).status_code == 422      # no certificate
        assert c.post("/v1/meter-register/m1/calibrations", json={"calibrated_on": "2026-03-01",
                      "due_on": "2027-03-01", "file": {"filename": "a.pdf", "content_base64": "!!"}},
                      headers=h).status_code == 422
        assert c.get("/v1/meter-register/m1/certificates/" + "0" * 64, headers=h).status_code == 404
