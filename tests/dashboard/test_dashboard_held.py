"""Held energy on the dashboard, in headless Chromium against the whole running system: two readings the edge held
(flags spike, held), published on their reading topics, are stored as held energy by the running ingest; the page
shows them per meter and in its list; a viewer is refused, an engineer rejects one and releases the other, and the
API and the audit log say so. Screenshot: var/screenshots/held-wide.png."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from calc import topics
from calc.schema import ReadingMessage, Sample, encode
from tests.dashboard.browser import Browser
from tests.dashboard.conftest import SCREENSHOTS, DashboardSystem
from tests.deploy.harness import wait_until
from tests.ingest.helpers import Publisher

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("logs_on_failure")]

# (meter, area, held kWh)
HELD = (("press-2", "pressing", 12_345.5), ("paint-oven", "painting", 777.25))


def publish_held(system: DashboardSystem, meter: str, kwh: float, ts: datetime) -> None:
    """A reading the edge held (flags spike, held), published on the meter's reading topic of the running system:
    its ingest stores it as held energy, as it would from a real agent."""
    data = tomllib.loads(system.plant.read_text())
    sample = Sample(ts=ts, quantity="active_energy_import", value=5_000_000.0 + kwh, unit="kWh", delta=kwh,
                    interval_s=1.0, flags=("spike", "held"),  # type: ignore[arg-type]
                    reason=f"counter jumped {kwh} kWh in 1 s, above the meter's limit: awaits an engineer")
    area = next(m["area"] for m in data["meters"] if m["id"] == meter)
    pub = Publisher(system.mqtt_url)
    try:
        pub.publish([(topics.reading("e2e", area, meter),
                      encode(ReadingMessage(meter=meter, seq=10**9, samples=(sample,))))])
    finally:
        pub.close()


def api(system: DashboardSystem, path: str, key: str | None = None, **params: Any) -> Any:
    headers = {"Authorization": f"Bearer {key}"} if key else None
    resp = system.api.get(path, params=params, headers=headers)
    resp.raise_for_status()
    return resp.json()


def test_held_energy_shown_released_and_rejected_on_the_page(system: DashboardSystem, browser: Browser) -> None:
    ts = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    for meter, _, kwh in HELD:
        publish_held(system, meter, kwh, ts)
    records = wait_until("both held records stored", lambda: (lambda r: r if len(r) == 2 else None)(
        [r for r in api(system, "/v1/held", status="open")["records"] if r["seq"] == 10**9]), 60)
    ids = {r["meter"]: r["id"] for r in records}
    assert {r["meter"]: r["energy"] for r in records} == {m: kwh for m, _, kwh in HELD}
    totals = api(system, "/v1/held/totals")

    # a viewer sees them and is refused a decision, with the reason
    browser.goto(f"{system.base_url}/#key={system.key}")
    row = f'#held-list tr[data-held-id="{ids["press-2"]}"]'
    browser.wait("the held records listed", f"!!document.querySelector('{row}') && "
                 f"!!document.querySelector('#held-list tr[data-held-id=\"{ids['paint-oven']}\"]')")
    held_kpi = browser.wait("the held figure", "document.querySelector('#kpi-held .kpi-value')?.dataset.value")
    assert float(held_kpi) == totals["co2e_kg"] > 0
    cells = browser.eval("Object.fromEntries([...document.querySelectorAll('#meters tr[data-meter]')].map(tr => "
                         "[tr.dataset.meter, Number(tr.querySelector('.held').dataset.value)]))")
    open_energy = {m["meter"]: m["energy"] for m in totals["meters"]}
    assert cells == {m: open_energy.get(m, 0.0) for m in cells}
    assert (cells["press-2"], cells["paint-oven"]) == (12_345.5, 777.25)
    browser.click(f"{row} button.held-reject")
    browser.type(f"{row} input[name=note]", "trying without the right")
    browser.click(f"{row} button.held-submit")
    refused = browser.wait("the refusal", f"document.querySelector('{row} .held-error')?.textContent")
    assert "engineer" in refused
    assert api(system, f"/v1/held/{ids['press-2']}")["status"] == "open"
    browser.screenshot(SCREENSHOTS / "held-wide.png")
    # the refusal is the only error the page saw (the browser logs the 403 of the refused call)
    assert [e for e in browser.errors if "403" not in e] == []
    browser.errors.clear()

    # an engineer rejects one and releases the other
    browser.eval("sessionStorage.clear()")
    browser.goto(f"{system.base_url}/#key={system.engineer_key}")
    browser.wait("the held records listed", f"!!document.querySelector('{row}')")
    browser.click(f"{row} button.held-reject")
    browser.type(f"{row} input[name=note]", "gateway garbage: the test said so")
    browser.click(f"{row} button.held-submit")
    browser.wait("the rejected record gone from the open list", f"!document.querySelector('{row}')")
    oven = f'#held-list tr[data-held-id="{ids["paint-oven"]}"]'
    browser.click(f"{oven} button.held-release")
    browser.type(f"{oven} input[name=note]", "oven restart: real energy")
    browser.click(f"{oven} button.held-submit")
    browser.wait("the released record gone from the open list", f"!document.querySelector('{oven}')")

    rejected, released = (api(system, f"/v1/held/{ids[m]}") for m in ("press-2", "paint-oven"))
    assert (rejected["status"], rejected["decided_by"], rejected["note"]) == (
        "rejected", "shift-engineer", "gateway garbage: the test said so")
    assert (released["status"], released["decided_by"], released["counted_ts"]) == (
        "released", "shift-engineer", records[[r["meter"] for r in records].index("paint-oven")]["ts"])
    audit = api(system, "/v1/audit", entity="held")["rows"]
    assert [(r["action"], r["entity_id"], r["actor"]) for r in audit] == [
        ("reject", str(ids["press-2"]), "shift-engineer"), ("release", str(ids["paint-oven"]), "shift-engineer")]
    # the page's figure follows: nothing of the two is held any more
    browser.wait("the held figure back to what is still open",
                 f"Number(document.querySelector('#kpi-held .kpi-value')?.dataset.value) === "
                 f"{api(system, '/v1/held/totals')['co2e_kg']!r}")
    assert browser.errors == []
