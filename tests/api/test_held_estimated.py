"""What of a figure is estimated, over the real SQLite and InfluxDB stores: points flagged "estimated" (a gap's
energy spread over the gap, as ingest writes the shares) are summed apart in balances, history, meters and reports."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from calc.schema import ReadingMessage
from tests.api.conftest import Env
from tests.api.held_data import DAY, app_over, feed, grid_kg_per_kwh, sample

WINDOW = {"from": DAY.isoformat(), "to": (DAY + timedelta(days=1)).isoformat()}


@pytest.fixture(params=["sqlite", pytest.param("influx", marks=pytest.mark.integration)])
def client(request: pytest.FixtureRequest, env: Env) -> Iterator[TestClient]:
    """m2: 1 kWh measured at 06:00; then a 3 h outage: the reading at 09:00 carries its 30 kWh (flag gap), which
    ingest's converter spreads over the gap's 180 minutes (flag estimated); m1: 2 kWh measured at 09:00."""
    url = request.getfixturevalue("influx_url") if request.param == "influx" else None
    gap = sample(DAY + timedelta(hours=9), 30.0, interval_s=3 * 3600.0, flags=("gap",), counter=1031.0)
    messages: list[tuple[str, ReadingMessage, str | None]] = [
        ("m2", ReadingMessage(meter="m2", seq=1, samples=(sample(DAY + timedelta(hours=6), 1.0),)), None),
        ("m2", ReadingMessage(meter="m2", seq=2, samples=(gap,)), None),
        ("m1", ReadingMessage(meter="m1", seq=1, samples=(sample(DAY + timedelta(hours=9), 2.0),)), None),
    ]
    with app_over(env, request.param, url) as (store, app):
        feed(store, messages)
        with TestClient(app) as c:
            yield c


def test_balance_meters_history_and_report_say_what_is_estimated(client: TestClient, env: Env) -> None:
    f = grid_kg_per_kwh(DAY)
    h = env.h("viewer")
    b = client.get("/v1/balance", params=WINDOW, headers=h).json()
    meters = {m["meter"]: m for m in b["meters"]}
    assert (meters["m2"]["energy"], meters["m2"]["estimated_energy"]) == (pytest.approx(31.0), pytest.approx(30.0))
    assert (meters["m1"]["energy"], meters["m1"]["estimated_energy"]) == (pytest.approx(2.0), 0.0)
    assert meters["m2"]["estimated_co2e_kg"] == pytest.approx(30.0 * f)
    assert b["estimated_co2e_kg"] == pytest.approx(30.0 * f) and b["co2e_kg"] == pytest.approx(33.0 * f)
    (electricity,) = b["carriers"]
    assert electricity["estimated_energy"] == pytest.approx(30.0) and electricity["energy"] == pytest.approx(33.0)
    hours = client.get("/v1/history", params={**WINDOW, "step": "1h", "group": "meter"}, headers=h).json()["buckets"]
    # a share counts at its minute's end (the last one, the reading's own point, at 09:00): 60, 60, 59 and 1 minutes
    minute = 30.0 / 180
    assert [(x["start"][11:16], x["boundary"], x["energy"], x["estimated_energy"]) for x in hours] == [
        ("06:00", "m2", pytest.approx(11.0), pytest.approx(10.0)), ("07:00", "m2", pytest.approx(10.0),
                                                                  pytest.approx(10.0)),
        ("08:00", "m2", pytest.approx(59 * minute), pytest.approx(59 * minute)),
        ("09:00", "m1", 2.0, 0.0), ("09:00", "m2", pytest.approx(minute), pytest.approx(minute))]
    day = client.get("/v1/history", params={**WINDOW, "step": "1d", "format": "csv"}, headers=h).text
    (row,) = list(csv.DictReader(io.StringIO(day)))
    assert float(row["estimated_energy"]) == pytest.approx(30.0) and float(row["energy"]) == pytest.approx(33.0)
    listed = {m["meter"]: m for m in client.get("/v1/meters", params=WINDOW, headers=h).json()["meters"]}
    assert listed["m2"]["estimated_energy"] == pytest.approx(30.0) and listed["m2"]["period_energy"] == pytest.approx(
        31.0)
    report = client.get("/v1/reports/period", params={**WINDOW, "format": "csv"}, headers=h).text
    rows = {(r["section"], r["name"]): r for r in csv.DictReader(io.StringIO(report))}
    assert float(rows[("total", "estimated")]["co2e_kg"]) == pytest.approx(30.0 * f)
    assert float(rows[("meter_estimated", "m2")]["energy"]) == pytest.approx(30.0)
