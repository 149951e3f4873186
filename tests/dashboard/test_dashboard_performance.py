"""The performance view in headless Chromium against the API (uvicorn on a free port) over a real SQLite store filled
through ingest's converter with energy from a known model and a +15 % waste from day 67: the page shows the
baseline's EnPI, deviation and CO2e as /v1/performance gives them, and draws actual vs expected and the CUSUM for
every period of the month. Screenshot: var/screenshots/performance.png."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.api.baseline_data import T0, BaselineEnv, Model, fill, generate
from tests.api.conftest import Server
from tests.dashboard.browser import Browser
from tests.dashboard.conftest import SCREENSHOTS

MODEL = Model()
BASELINE = {"id": "m1", "scope": "meter", "target": "m1", "resolution": "daily", "period_start": T0.isoformat(),
            "period_end": (T0 + timedelta(days=60)).isoformat(),
            "drivers": [{"name": "pieces", "variable": "out-1"},
                        {"name": "hdd", "variable": "temp", "transform": "heating_degree_days"}]}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BaselineEnv, Server]]:
    env = BaselineEnv(tmp_path_factory.mktemp("perf-dash"))
    env.clock.now = datetime(2026, 3, 20, tzinfo=UTC)   # "this month": March 1 to 19 are over
    fill(env.store, generate(MODEL, T0, 74 * 24, waste_from=T0 + timedelta(days=67)), MODEL.m2_kwh)
    with Server(env.app()) as srv:
        yield env, srv


def test_the_view_shows_actual_expected_and_cusum(served: tuple[BaselineEnv, Server], browser: Browser) -> None:
    env, srv = served
    with httpx.Client(base_url=srv.url, headers=env.h("viewer"), timeout=30) as c:
        browser.goto(f"{srv.url}/#key={env.keys['viewer']}")
        browser.wait("signed in", "!!document.querySelector('#nav-performance')")
        browser.eval("location.hash = '#/performance'")
        browser.wait("the empty state", "!!document.querySelector('#no-baseline')")
        fitted = c.post("/v1/baselines", json=BASELINE, headers=env.h("engineer"))
        assert fitted.status_code == 201, fitted.text
        browser.eval("location.hash = '#/performance/m1'")
        enpi = browser.wait("the EnPI", "document.querySelector('#kpi-enpi .kpi-value')?.dataset.value")
        want = c.get("/v1/performance", params={"baseline": "m1", "period": "month", "resolution": "daily"}).json()
        t = want["totals"]
        assert float(enpi) == pytest.approx(t["enpi"], rel=1e-12)
        shown = {k: float(browser.eval(f"document.querySelector('#{k} .kpi-value').dataset.value"))
                 for k in ("kpi-actual", "kpi-expected", "kpi-deviation", "kpi-co2e")}
        assert shown == pytest.approx({"kpi-actual": t["actual_energy"], "kpi-expected": t["expected_energy"],
                                       "kpi-deviation": t["deviation_energy"], "kpi-co2e": t["actual_co2e_kg"]},
                                      rel=1e-12)
        assert t["deviation_pct"] > 3.0, "the waste from March 13 shows in the month"
        periods = len(want["series"]["start"])
        assert periods == 19
        assert browser.eval("document.querySelector('#avse-chart svg').dataset.points") == str(2 * periods)
        assert browser.eval("document.querySelector('#cusum-chart svg').dataset.points") == str(periods)
        model_text = browser.eval("document.querySelector('#baseline-model').textContent")
        assert "s1/meter/m1" in model_text and "version 1" in model_text
        browser.screenshot(SCREENSHOTS / "performance.png")
