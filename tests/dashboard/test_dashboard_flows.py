"""The overview's energy flows and virtual meters in headless Chromium against the API (uvicorn on a free port)
over a real SQLite store filled through ingest's converter: this morning's import, export (a roof meter's export
register) and net import, and the unmetered rest `main - press-1 - press-2`, as /v1/balance gives them.
Screenshot: var/screenshots/flows.png."""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import Server
from tests.api.test_virtual import VirtualEnv, day_of_samples, fill
from tests.dashboard.browser import Browser
from tests.dashboard.conftest import SCREENSHOTS


def test_the_overview_shows_flows_and_virtual_meters(tmp_path: Path, browser: Browser) -> None:
    env = VirtualEnv(tmp_path)
    midnight = env.clock.now.replace(hour=0, minute=0, second=0, microsecond=0)
    half_day = {m: v[:600] for m, v in day_of_samples(5).items()}   # 00:00 to 10:00, before the clock's noon
    rnd = random.Random(9)
    fill(env.store, half_day, [rnd.uniform(0.0, 800.0) for _ in range(600)], day=midnight)
    env.store.close()
    with Server(env.app()) as srv, httpx.Client(base_url=srv.url, headers=env.h("viewer"), timeout=30) as c:
        want = c.get("/v1/balance", params={"period": "today"}).json()
        browser.goto(f"{srv.url}/#key={env.keys['viewer']}")
        net = browser.wait("net import", "document.querySelector('#flow-net .kpi-value')?.dataset.value")
        f = want["flows"]
        assert float(net) == pytest.approx(f["net_import"], rel=1e-12)
        assert f["net_import"] == pytest.approx(f["import_energy"] - f["export_energy"], rel=1e-12)
        for kpi, key in (("flow-import", "import_energy"), ("flow-export", "export_energy"),
                         ("flow-generation", "generation_energy")):
            shown = browser.eval(f"document.querySelector('#{kpi} .kpi-value').dataset.value")
            assert float(shown) == pytest.approx(f[key], rel=1e-12), kpi
        assert browser.eval("document.querySelector('#flows-card').hidden") is False
        rest = browser.wait("the rest row", "document.querySelector('tr[data-meter=rest]')?.dataset.energy")
        assert float(rest) == pytest.approx(want["virtual_meters"][0]["energy"], rel=1e-12)
        hand = sum(half_day["main"]) - sum(half_day["press-1"]) - sum(half_day["press-2"])
        assert float(rest) == pytest.approx(hand, abs=1e-9)
        browser.screenshot(SCREENSHOTS / "flows.png")
    assert env.clock.now - midnight == timedelta(hours=12)
