"""Allowance status with the CCER offset cap (calc.balance.allowance_check), and completeness counted from a
meter's first reading, against hand-computed figures; data written to a real SQLite store through ingest's converter."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from calc import topics
from calc.plant import parse_plant
from calc.schema import encode
from ingest.convert import Converter
from tests.api.conftest import Env, fill_store, plant_data, reading
from tests.api.test_ledger import APRIL, MARCH, credit, filled, grid_factor

__all__ = ["filled"]   # the fixture, imported for this module's tests


def test_ccer_counts_against_the_site_allowance_up_to_five_percent(filled: Env) -> None:
    f = grid_factor()
    with TestClient(filled.app()) as c:
        h = filled.h("admin")
        for body in (credit("C-1", tonnes=0.03, day="2026-03-05"),            # 30 kg CCER in March
                     credit("C-2", tonnes=0.04, day="2026-03-06"),            # 40 kg CCER in March
                     credit("C-feb", tonnes=0.5, day="2026-02-20"),           # before the period: not counted
                     {**credit("V-1", tonnes=0.2), "standard": "VCS"},        # a credit, but not CCER
                     {"kind": "sink", "quantity": 10, "unit": "kg", "applies_on": "2026-03-02",
                      "evidence": "forest survey"}):
            assert c.post("/v1/offsets", json=body, headers=h).status_code == 201
        voided = c.post("/v1/offsets", json=credit("C-void", tonnes=0.1), headers=h).json()["id"]
        assert c.post(f"/v1/offsets/{voided}/void", json={"reason": "wrong"}, headers=h).status_code == 200
        site = c.post("/v1/allowances", json={"start": MARCH.isoformat(), "end": APRIL.isoformat(), "amount": 1,
                                              "unit": "t"}, headers=h).json()["id"]
        area = c.post("/v1/allowances", json={"scope": "area", "target": "a", "start": MARCH.isoformat(),
                                              "end": APRIL.isoformat(), "amount": 0.5, "unit": "t"},
                      headers=h).json()["id"]
        site_status = c.get(f"/v1/allowances/{site}", headers=h).json()["status"]
        area_status = c.get(f"/v1/allowances/{area}", headers=h).json()["status"]
        balance = c.get("/v1/balance", params={"period": "month"}, headers=h).json()
    # used: m1 228 kWh + m3 48 kWh = 276 f kg. Projection along the hour-of-week profile of the history (1 March
    # 00:00 to 10 March 12:00; 1 March is a Sunday): Sunday hours were 3 f (1 March) and 1 f (8 March), mean 2 f;
    # every other hour 1 f. 516 h left in March, 72 of them on Sundays (15, 22, 29 March): expected
    # 444 f + 72 × 2 f = 588 f, projected 276 f + 588 f = 864 f (a flat 24 h burn rate would say 792 f).
    # CCER of March: 30 + 40 = 70 kg, capped at 5 % of 1000 kg = 50 kg.
    assert site_status["used_kg"] == pytest.approx(276 * f)
    assert site_status["ccer_cap_fraction"] == 0.05
    assert site_status["ccer_kg"] == pytest.approx(70.0)
    assert site_status["ccer_usable_kg"] == pytest.approx(50.0)
    assert site_status["projection_method"] == "hour_of_week_profile"
    assert site_status["projected_kg"] == pytest.approx(864 * f)
    assert site_status["projected_over_kg"] == pytest.approx(864 * f - 1000 - 50)
    assert site_status["remaining_kg"] == pytest.approx(1000 - 276 * f)
    assert balance["allowance"]["ccer_usable_kg"] == pytest.approx(50.0)
    # an area's allowance: credits are the site's, none count against it
    assert area_status["ccer_kg"] == 0 and area_status["ccer_usable_kg"] == 0
    assert area_status["projected_over_kg"] == pytest.approx(744 * f - 500)


def test_ccer_below_the_cap_counts_in_full(filled: Env) -> None:
    f = grid_factor()
    with TestClient(filled.app()) as c:
        h = filled.h("admin")
        assert c.post("/v1/offsets", json=credit("C-1", tonnes=0.02), headers=h).status_code == 201
        made = c.post("/v1/allowances", json={"start": MARCH.isoformat(), "end": APRIL.isoformat(), "amount": 2,
                                              "unit": "t"}, headers=h).json()["id"]
        status = c.get(f"/v1/allowances/{made}", headers=h).json()["status"]
    assert status["ccer_usable_kg"] == pytest.approx(20.0)       # 20 kg < 5 % of 2000 kg = 100 kg
    assert status["projected_over_kg"] == pytest.approx(864 * f - 2000 - 20)   # the profile's projection, above


def test_completeness_counts_from_a_meters_first_reading(env: Env) -> None:
    """A plant whose meters began minutes ago reads complete, not 0 %: expected samples count from each meter's
    first stored reading (m1: every 60 s since 11:50, 10 of 10), a meter with history counts from the period's
    start (m3), and a meter never seen has no expected count."""
    now = env.clock.now                                   # 2026-03-10 12:00 UTC
    began = now - timedelta(minutes=10)
    fill_store(env.store, plant_data(), {
        "m1": [(began + timedelta(minutes=i), 1.0) for i in range(10)],
        "m3": [(datetime(2026, 3, 9, 23, 0, tzinfo=UTC), 1.0), (now - timedelta(hours=1), 1.0)]})
    with TestClient(env.app()) as c:
        h = env.h("viewer")
        bal = c.get("/v1/balance", params={"period": "today"}, headers=h).json()
        meters = {m["meter"]: m for m in c.get("/v1/meters", headers=h).json()["meters"]}
    by = {m["meter"]: m for m in bal["meters"]}
    assert by["m1"]["expected_from"] == began.isoformat().replace("+00:00", "Z")
    assert by["m1"]["expected_points"] == 10 and by["m1"]["completeness"] == 1.0
    assert by["m3"]["expected_points"] == 12 * 60 and by["m3"]["points"] == 1    # since midnight: 720 expected
    assert bal["completeness"] == pytest.approx(11 / 730)
    assert meters["m1"]["completeness"] == 1.0 and meters["m1"]["expected_points"] == 10
    assert meters["m2"]["status"] == "never_seen" and meters["m2"]["expected_points"] is None


def test_rate_shows_at_once_from_the_meters_factor_before_any_energy_is_stored(env: Env) -> None:
    """A plant that just started: 900 kW flows but no energy is stored yet. The live rate is the flow times the
    meter's current factor (as ingest will count it), in /v1/balance, /v1/meters and the live stream, not 0."""
    f = grid_factor()
    now = env.clock.now
    conv = Converter(parse_plant(plant_data()), clock=lambda: datetime(2030, 1, 1, tzinfo=UTC).timestamp())
    msg = reading("m1", 0, now - timedelta(seconds=5), kw=900.0)
    out = conv.convert(topics.reading("s1", "a", "m1"), encode(msg))
    assert not out.dead
    env.store.write(conv.batch([out]))
    app = env.app()
    with TestClient(app) as c:
        queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue(100)
        app.state.hub.add(queue, meters=("m1",))   # m1's every update
        c.portal.call(app.state.engine.handle, topics.reading("s1", "a", "m1"),  # type: ignore[union-attr]
                      encode(reading("m1", 1, now - timedelta(seconds=1), kw=900.0)), 0.0)
        h = env.h("viewer")
        bal = c.get("/v1/balance", params={"period": "today"}, headers=h).json()
        meters = {m["meter"]: m for m in c.get("/v1/meters", headers=h).json()["meters"]}
    events = []
    while not queue.empty():
        event, text = queue.get_nowait()
        events.append((event, json.loads(text)))
    streamed = [d["co2e_rate_kg_per_h"] for e, d in events if e == "meter"]
    assert bal["rate_kg_per_h"] == pytest.approx(900 * f) and bal["co2e_kg"] == 0
    assert meters["m1"]["co2e_rate_kg_per_h"] == pytest.approx(900 * f)
    assert streamed == [pytest.approx(900 * f)]
