"""The activity view in headless Chromium against the API (uvicorn on a free port, real SQLite): an engineer adds a
diesel delivery through the form; the row shows its kg CO2e and the month's manual figure equals the hand computation
and /v1/balance; a void takes it out again. Screenshot: var/screenshots/activity.png."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import Env, Server, fill_store, hourly, plant_data
from tests.dashboard.browser import Browser
from tests.dashboard.conftest import SCREENSHOTS

DIESEL_KG_PER_T = 42.652 * 20.2 * 0.98 * 44 / 12   # GB/T 32150 defaults, kg CO2 per t of diesel


def test_an_engineer_adds_and_voids_a_delivery(tmp_path: Path, browser: Browser) -> None:
    env = Env(tmp_path / "api")
    fill_store(env.store, plant_data(), {"m1": hourly(datetime(2026, 3, 2, tzinfo=UTC), 24, 10.0)})
    with Server(env.app()) as srv, httpx.Client(base_url=srv.url, headers=env.h("viewer"), timeout=30) as c:
        browser.goto(f"{srv.url}/#key={env.keys['engineer']}")
        browser.wait("signed in", "!!document.querySelector('#nav-activity')")
        browser.eval("location.hash = '#/activity'")
        browser.wait("the form", "!!document.querySelector('#activity-form')")
        values = {"kind": "fuel", "start": "2026-03-03", "quantity": "2", "unit": "t", "carrier": "diesel",
                  "evidence": "delivery note DN-9"}
        browser.eval("(() => { const f = document.querySelector('#activity-form'); "
                     f"for (const [k, v] of Object.entries({json.dumps(values)})) f.elements[k].value = v; "
                     "f.requestSubmit(); })()")
        shown = browser.wait("the entry's row", "document.querySelector('tr[data-activity-id] td.co2e')"
                             "?.dataset.value")
        assert float(shown) == pytest.approx(2 * DIESEL_KG_PER_T, rel=1e-12)
        manual = browser.wait("the month's manual figure", "document.querySelector('#kpi-manual .kpi-value')"
                              "?.dataset.value")
        balance = c.get("/v1/balance", params={"period": "month"}).json()
        assert float(manual) == pytest.approx(balance["manual_co2e_kg"], rel=1e-12)
        assert balance["manual_co2e_kg"] == pytest.approx(2 * DIESEL_KG_PER_T, rel=1e-12)
        browser.screenshot(SCREENSHOTS / "activity.png")
        browser.eval("window.prompt = () => 'entered on the wrong site'")
        browser.click("button.activity-void")
        browser.wait("the void", "document.querySelector('tr[data-activity-id]')?.dataset.voided === 'true'")
        assert c.get("/v1/balance", params={"period": "month"}).json()["manual_co2e_kg"] == 0.0
