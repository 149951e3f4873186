"""Shift production entered by hand through the API reaches the store through a real Mosquitto and a real ingest
process (SQLite and InfluxDB), and shows in /v1/performance and the balance's intensity equal to a hand computation
from the stored rows; the same entry sent twice counts once; a void takes it out again; an overlapping entry (with
another entry or with a live counter's readings) is refused; a CSV file with a bad row is refused naming the line."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.auth import KeyRing
from api.main import create_app
from api.settings import MqttSection
from calc import topics
from calc.plant import parse_plant
from ingest.config import InfluxStoreSettings
from ingest.convert import Converter
from ingest.points import ts_to_us
from ingest.store.base import Store
from ingest.store.influx import InfluxStore
from ingest.store.sqlite import SqliteStore
from tests.api.baseline_data import HDD_BASE_C, SITE, T0, BaselineEnv, Hours, Model, fill, generate, plant_data
from tests.ingest.helpers import IngestProcess, wait_for

pytestmark = pytest.mark.integration

MODEL = Model()
FIT_DAYS = 40
DAY = T0 + timedelta(days=FIT_DAYS)            # the day whose production is entered by hand
BASELINE = {"id": "m1", "scope": "meter", "target": "m1", "resolution": "daily", "period_start": T0.isoformat(),
            "period_end": DAY.isoformat(),
            "drivers": [{"name": "pieces", "variable": "out-1"},
                        {"name": "hdd", "variable": "temp", "transform": "heating_degree_days"}]}
EARLY = {"start": (DAY + timedelta(hours=6)).isoformat(), "end": (DAY + timedelta(hours=14)).isoformat(),
         "value": 4200, "unit": "piece", "note": "early shift, press line 1"}
LATE = {"start": (DAY + timedelta(hours=14)).isoformat(), "end": (DAY + timedelta(hours=22)).isoformat(),
        "value": 3.1, "unit": "kpiece"}
ENTRIES = "/v1/variables/out-1/entries"


def plant_toml(tmp: Path, mqtt_url: str, store: str) -> Path:
    """The baseline plant (tests.api.baseline_data) as a plant file for a real ingest process."""
    data = plant_data()
    lines = ['[site]', f'id = "{SITE}"', 'region = "CN"', 'timezone = "UTC"', 'start = 2026-01-01T00:00:00Z', '']
    for table, rows in (("meters", data["meters"]), ("variables", data["variables"])):
        for row in rows:
            lines.append(f"[[{table}]]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in row.items()]
            lines.append("")
    lines += ["[mqtt]", f'url = "{mqtt_url}"', "", store, "", "[ingest]",
              f'client_id = "entries-{uuid.uuid4().hex[:8]}"', f'metrics_path = "{tmp / "metrics.json"}"',
              "ack_interval_s = 0.2"]
    path = tmp / "plant.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def fill_day_without_production(store: Store, hours: Hours) -> None:
    """The entry day's energy and temperature through ingest's converter, but no production reading."""
    conv = Converter(parse_plant(plant_data()), clock=lambda: datetime(2030, 1, 1, tzinfo=UTC).timestamp())
    per: dict[str, list[dict[str, Any]]] = {"m1": [], "m2": [], "temp": []}
    for h in range(FIT_DAYS * 24, (FIT_DAYS + 1) * 24):
        ts = hours.start[h].isoformat()
        for meter, kwh in (("m1", float(hours.m1_kwh[h])), ("m2", MODEL.m2_kwh)):
            per[meter].append({"ts": ts, "quantity": "active_energy_import", "value": 5e5 + h, "unit": "kWh",
                               "delta": kwh, "interval_s": 3600.0})
        per["temp"].append({"ts": ts, "quantity": "outdoor_temperature", "value": float(hours.temp_c[h]),
                            "unit": "degC", "interval_s": 3600.0})
    items = [(topics.reading(SITE, "utilities" if m == "temp" else "press", m),
              json.dumps({"v": 1, "meter": m, "seq": 900, "agent": "e1", "samples": s}).encode(),
              ts_to_us(datetime(2030, 1, 1, tzinfo=UTC))) for m, s in per.items()]
    outs, batch = conv.convert_to_batch(items)
    assert [d.reason for o in outs for d in o.dead] == []
    store.write(batch)


@dataclass
class Rig:
    env: BaselineEnv
    client: TestClient
    store: Store
    ingest: IngestProcess

    def produced(self) -> float | None:
        rows = [t for t in self.store.variable_totals(SITE, DAY, DAY + timedelta(days=1)) if t.variable == "out-1"]
        return rows[0].total if rows else None

    def wait_produced(self, pieces: float) -> None:
        wait_for(lambda: self.produced() == pytest.approx(pieces, abs=1e-6), 30.0, f"{pieces} pieces in the store")

    def h(self, role: str = "engineer") -> dict[str, str]:
        return self.env.h(role)


@pytest.fixture(params=["sqlite", "influxdb"])
def rig(request: pytest.FixtureRequest, tmp_path: Path, mqtt_url: str) -> Iterator[Rig]:
    env = BaselineEnv(tmp_path)
    env.clock.now = datetime(2026, 4, 1, tzinfo=UTC)
    hours = generate(MODEL, T0, (FIT_DAYS + 1) * 24)
    fit = Hours(hours.start[:FIT_DAYS * 24], hours.pieces[:FIT_DAYS * 24], hours.temp_c[:FIT_DAYS * 24],
                hours.m1_kwh[:FIT_DAYS * 24])
    if request.param == "sqlite":
        store: Store = SqliteStore(tmp_path / "store.sqlite")
        section = (f'[store]\nkind = "sqlite"\npath = "{tmp_path / "store.sqlite"}"\nretention_days = 0\n'
                   'minute_rollup_retention_days = 0')
    else:
        influx_url: str = request.getfixturevalue("influx_url")
        database = f"e{uuid.uuid4().hex[:12]}"
        store = InfluxStore(InfluxStoreSettings(kind="influxdb", url=influx_url, database=database))
        section = f'[store]\nkind = "influxdb"\nurl = "{influx_url}"\ndatabase = "{database}"'
    fill(store, fit, MODEL.m2_kwh)
    fill_day_without_production(store, hours)
    proc = IngestProcess(plant_toml(tmp_path, mqtt_url, section), tmp_path / "metrics.json", tmp_path)
    proc.start()
    try:
        settings = env.settings(MqttSection(url=mqtt_url))
        reader: Store = SqliteStore(tmp_path / "store.sqlite") if request.param == "sqlite" else store
        app = create_app(settings, reader, KeyRing.load(env.keys_file), clock=env.clock)
        with TestClient(app) as client:
            resp = client.post("/v1/baselines", json=BASELINE, headers=env.h("engineer"))
            assert resp.status_code == 201, resp.text
            yield Rig(env, client, store, proc)
    finally:
        proc.stop()
        if request.param == "sqlite":
            store.close()


def hand_expected(rig: Rig, pieces: float) -> float:
    """The model's energy for the day from the stored coefficients, the entered pieces and the stored temperature."""
    doc = rig.client.get("/v1/baselines/m1", headers=rig.h("viewer")).json()
    coef = {t["name"]: t["value"] for t in doc["model"]["terms"]}
    hdd = sum(max(HDD_BASE_C - (v.mean or 0.0), 0.0) / 24.0
              for v in rig.store.variable_series(SITE, DAY, DAY + timedelta(days=1), "1h", "UTC")
              if v.variable == "temp")
    return float(coef["intercept"] + coef["pieces"] * pieces + coef["hdd"] * hdd)


def check_figures(rig: Rig, pieces: float) -> None:
    """/v1/performance's expected and the balance's line intensity for the day equal a hand computation."""
    window = {"from": DAY.isoformat(), "to": (DAY + timedelta(days=1)).isoformat()}
    perf = rig.client.get("/v1/performance", params={"baseline": "m1", **window}, headers=rig.h("viewer"))
    assert perf.status_code == 200, perf.text
    assert perf.json()["series"]["drivers"]["pieces"] == [pytest.approx(pieces)]
    assert perf.json()["totals"]["expected_energy"] == pytest.approx(hand_expected(rig, pieces), rel=1e-9)
    balance = rig.client.get("/v1/balance", params=window, headers=rig.h("viewer"))
    assert balance.status_code == 200, balance.text
    line = next(i for i in balance.json()["intensity"] if i["level"] == "line" and i["name"] == "l1")
    co2e = sum(t.co2e_kg for t in rig.store.totals(SITE, DAY, DAY + timedelta(days=1)) if t.meter in ("m1", "m2"))
    assert line["production"] == pytest.approx(pieces)
    assert line["co2e_kg_per_unit"] == pytest.approx(co2e / pieces, rel=1e-9)


def test_entered_shifts_reach_performance_and_intensity_once_and_a_void_takes_them_out(rig: Rig) -> None:
    assert rig.produced() is None
    posted = time.monotonic()
    early = rig.client.post(ENTRIES, json=EARLY, headers=rig.h())
    assert early.status_code == 201, early.text
    assert early.json()["amount"] == 4200 and early.json()["amount_unit"] == "count" and early.json()["sent"]
    late = rig.client.post(ENTRIES, json=LATE, headers=rig.h())
    assert late.status_code == 201, late.text
    assert late.json()["amount"] == pytest.approx(3100)
    rig.wait_produced(7300)
    print(f"two shifts entered and stored through the broker and ingest in {time.monotonic() - posted:.2f} s")
    check_figures(rig, 7300)

    before = rig.ingest.read_metrics().get("duplicates", 0)
    again = rig.client.post(f"{ENTRIES}/{early.json()['id']}/send", headers=rig.h())   # the same message again
    assert again.status_code == 200 and again.json()["sent"], again.text
    wait_for(lambda: rig.ingest.read_metrics().get("duplicates", 0) >= before + 32, 30.0, "the re-send seen")
    assert rig.produced() == pytest.approx(7300)

    void = rig.client.post(f"{ENTRIES}/{late.json()['id']}/void", json={"reason": "counted on line 2"},
                           headers=rig.h())
    assert void.status_code == 200 and void.json()["voided"], void.text
    rig.wait_produced(4200)
    check_figures(rig, 4200)

    overlap = rig.client.post(ENTRIES, json={**EARLY, "start": (DAY + timedelta(hours=13)).isoformat(),
                                             "end": (DAY + timedelta(hours=15)).isoformat()}, headers=rig.h())
    assert overlap.status_code == 409 and f"entry {early.json()['id']}" in overlap.json()["detail"], overlap.text
    live = rig.client.post(ENTRIES, json={**EARLY, "start": (DAY - timedelta(hours=4)).isoformat(),
                                          "end": (DAY + timedelta(hours=2)).isoformat()}, headers=rig.h())
    assert live.status_code == 409 and "live counter" in live.json()["detail"], live.text
    replaced = rig.client.post(ENTRIES, json={**LATE, "value": 2900, "unit": "count"}, headers=rig.h())
    assert replaced.status_code == 201, replaced.text   # the voided time may be entered anew
    rig.wait_produced(7100)
    check_figures(rig, 7100)


def test_a_csv_with_a_bad_row_is_refused_naming_its_line(rig: Rig) -> None:
    csv = ("variable,start,end,value,unit,note\n"
           f"out-1,{EARLY['start']},{EARLY['end']},4200,piece,early\n"
           f"out-1,{LATE['start']},{LATE['end']},3100,kWh,late\n"
           f"nope,{LATE['start']},{LATE['end']},3100,piece,\n")
    resp = rig.client.post("/v1/variable-entries/import", content=csv, headers={**rig.h(), "Content-Type": "text/csv"})
    assert resp.status_code == 422, resp.text
    errors = {e["line"]: e["reason"] for e in resp.json()["errors"]}
    assert set(errors) == {3, 4} and "'kWh' cannot be converted to 'count'" in errors[3] and "nope" in errors[4]
    assert rig.client.get(ENTRIES, headers=rig.h("viewer")).json() == []
    taken = rig.client.post("/v1/variable-entries/import", params={"take_good_rows": "true"}, content=csv,
                            headers={**rig.h(), "Content-Type": "text/csv"})
    assert taken.status_code == 200 and len(taken.json()["stored"]) == 1, taken.text
    rig.wait_produced(4200)
