"""The records view in headless Chromium against the API (uvicorn on a free port) over a real SQLite store: a
target whose projection misses its milestone, the meter register with one overdue and one current calibration and
an open nonconformity; the page shows them as /v1/targets, /v1/meter-register and /v1/nonconformities give them.
Screenshot: var/screenshots/records.png."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from tests.api.conftest import Env, Server, fill_store, hourly, plant_data
from tests.dashboard.browser import Browser
from tests.dashboard.conftest import SCREENSHOTS

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
YEAR_START = datetime(2026, 1, 1, tzinfo=UTC)
TARGET = {"id": "site-2028", "title": "Site: −40 % by 2028", "owner": "plant manager", "kind": "reduction_pct",
          "base_year": 2024, "base_value": 45000.0,
          "milestones": [{"year": 2026, "value": 10}, {"year": 2028, "value": 40}]}
ENTRY = {"serial": "PM-0042", "make": "Schneider Electric", "model": "PM5560", "accuracy_class": "0.5S",
         "ct_primary_a": 400, "ct_secondary_a": 5, "installed_on": "2024-05-01", "last_calibrated_on": "2025-03-04",
         "calibration_due_on": "2026-03-04", "certificate": {"reference": "CAL-2025-0612"}}


def test_the_view_shows_target_progress_and_calibration_state(tmp_path: pytest.TempPathFactory,
                                                             browser: Browser) -> None:
    env = Env(tmp_path)  # type: ignore[arg-type]
    env.clock.now = NOW
    hours = int((NOW - YEAR_START).total_seconds() // 3600)
    fill_store(env.store, plant_data(), {"m1": hourly(YEAR_START, hours, 10.0)})
    with Server(env.app()) as srv, httpx.Client(base_url=srv.url, headers=env.h("admin"), timeout=30) as c:
        browser.goto(f"{srv.url}/#key={env.keys['viewer']}")
        browser.wait("signed in", "!!document.querySelector('#nav-records')")
        browser.eval("location.hash = '#/records'")
        browser.wait("the empty target list", "!!document.querySelector('#targets-table-empty')")
        browser.wait("the empty register", "!!document.querySelector('#register-table-empty')")
        browser.wait("no nonconformity", "!!document.querySelector('#nc-table-empty')")

        assert c.post("/v1/targets", json=TARGET).status_code == 201
        assert c.put("/v1/meter-register/m1", json=ENTRY).status_code == 200
        assert c.put("/v1/meter-register/m2", json={**ENTRY, "serial": "PM-0043",
                                                    "calibration_due_on": "2027-03-04"}).status_code == 200
        nc = {"id": "nc-7", "title": "Compressed air leaks", "description": "night base load", "owner": "maintenance",
              "due_on": "2026-04-30", "corrective_action": "couplings replaced", "state": "action_taken",
              "action_taken_at": "2026-03-09T10:00:00Z", "effectiveness": {"rule_id": "base", "clear_days": 7}}
        assert c.post("/v1/nonconformities", json=nc).status_code == 201
        browser.eval("location.hash = '#/'")
        browser.wait("the overview", "!document.querySelector('#targets-box')")
        browser.eval("location.hash = '#/records'")
        projected = browser.wait("the target's row",
                                 "document.querySelector('tr[data-target=\"site-2028\"] td:nth-child(5)')"
                                 "?.dataset.value")
        want = c.get("/v1/targets").json()[0]["progress"]
        assert float(projected) == pytest.approx(want["projected"], rel=1e-12)
        row = "document.querySelector('tr[data-target=\"site-2028\"]').dataset"
        assert browser.eval(f"{row}.onTrack") == str(want["on_track"]).lower() == "false"
        assert browser.eval(f"{row}.missesNext") == str(want["misses_next"]).lower()
        # the projection is above the base year: no part of the year's required reduction is done
        assert want["projected"] > TARGET["base_value"]
        assert browser.eval("document.querySelector('.bar span').getBoundingClientRect().width") == 0
        # the view loads targets, register and nonconformities one after the other: wait for each
        browser.wait("the register's rows", "document.querySelectorAll('#register-table tr[data-meter]').length === 2")
        browser.wait("the nonconformity's row", "!!document.querySelector('tr[data-nc]')")
        states = browser.eval("JSON.stringify([...document.querySelectorAll('#register-table tr[data-meter]')]"
                              ".map((r) => [r.dataset.meter, r.dataset.state]))")
        assert states == '[["m1","overdue"],["m2","ok"]]'
        nc_row = browser.eval("JSON.stringify(Object.assign({}, document.querySelector('tr[data-nc]').dataset))")
        assert nc_row == '{"nc":"nc-7","state":"action_taken","verdict":"pending"}'
        assert c.get("/v1/nonconformities").json()[0]["effectiveness"]["verdict"] == "pending"
        assert [(e["meter"], e["calibration_state"]) for e in c.get("/v1/meter-register").json()] == [
            ("m1", "overdue"), ("m2", "ok")]
        browser.screenshot(SCREENSHOTS / "records.png")
