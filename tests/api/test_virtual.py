"""Virtual meters and on-site solar in the API over a real SQLite store filled through ingest's converter: a day of
minute samples of a main meter and two submeters; the virtual rest equals main − Σ submeters to 1e-9 in
/v1/balance and per bucket in /v1/history, and /v1/reconciliation says it in kWh and %; a roof meter's export
counter shows as flows in the balance and lowers net import by the exported kWh while the site's CO2e stays."""

from __future__ import annotations

import csv
import io
import random
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.auth import KeyRing
from api.main import create_app
from api.settings import ApiSection, MqttSection, Settings
from calc import topics
from calc.plant import parse_plant
from calc.schema import ReadingMessage, Sample, encode
from ingest.config import InfluxStoreSettings
from ingest.convert import Converter
from ingest.store.base import Store
from ingest.store.influx import InfluxStore
from ingest.store.sqlite import SqliteStore
from tests.api.conftest import START, Env

DAY = datetime(2026, 3, 9, tzinfo=START.tzinfo)
SUBS = ("press-1", "press-2")


def plant(site: str = "s1") -> dict[str, Any]:
    meters = [{"id": m, "area": "a", "carrier": "electricity", "interval_s": 60.0, "max_power_kw": 1000.0}
              for m in ("main", *SUBS, "roof")]
    return {"site": {"id": site, "region": "CN", "timezone": "UTC", "start": START}, "meters": meters,
            "virtual_meters": [{"id": "rest", "area": "a", "expression": "main - press-1 - press-2",
                                "description": "unmetered load and losses"}]}


class VirtualEnv(Env):
    influx: InfluxStoreSettings | None = None   # the store behind the app: SQLite unless set

    def open_store(self) -> Store:
        return InfluxStore(self.influx) if self.influx is not None else SqliteStore(self.tmp / "store.sqlite")

    def app(self, mqtt: MqttSection | None = None, **api: Any) -> FastAPI:
        if self.influx is None:
            return super().app(mqtt, **api)
        return create_app(self.settings(mqtt, **api), self.open_store(), KeyRing.load(self.keys_file),
                          clock=self.clock)

    def settings(self, mqtt: MqttSection | None = None, **api: Any) -> Settings:
        data = plant(self.site)
        api.setdefault("live", False)
        section = ApiSection(keys_file=str(self.keys_file), db_path=str(self.tmp / "api.sqlite"), **api)
        return Settings(plant=parse_plant(data), plant_data=data, base_dir=self.tmp, api=section,
                        mqtt=mqtt or MqttSection())


def day_of_samples(seed: int = 7) -> dict[str, list[float]]:
    """Per meter, 1440 minute deltas (kWh): submeters at random, the main above their sum by a random rest."""
    rnd = random.Random(seed)
    subs = {m: [rnd.uniform(0.5, 3.0) for _ in range(1440)] for m in SUBS}
    main = [subs["press-1"][i] + subs["press-2"][i] + rnd.uniform(0.0, 1.0) for i in range(1440)]
    roof = [rnd.uniform(0.1, 0.4) for _ in range(1440)]
    return {"main": main, **subs, "roof": roof}


def fill(store: Store, deltas: dict[str, list[float]], export_wh: list[float] | None,
         day: datetime = DAY) -> None:
    """Minute samples from `day`'s midnight through ingest's converter (a roof export register when given, Wh)."""
    conv = Converter(parse_plant(plant()), clock=lambda: day.timestamp() + 10 * 86400)
    for meter, values in deltas.items():
        counter = 1000.0
        for i, kwh in enumerate(values):
            ts = day + timedelta(minutes=i, seconds=30)
            counter += kwh
            samples = [Sample(ts=ts, quantity="active_energy_import", value=counter, unit="kWh", delta=kwh,
                              interval_s=60.0)]
            if meter == "roof" and export_wh is not None:
                samples.append(Sample(ts=ts, quantity="active_energy_export", value=5e5 + sum(export_wh[:i + 1]),
                                      unit="Wh", delta=export_wh[i], interval_s=60.0))
            out = conv.convert(topics.reading("s1", "a", meter),
                               encode(ReadingMessage(meter=meter, seq=i, samples=tuple(samples))))
            assert not out.dead, out.dead
            store.write(conv.batch([out]))


def period() -> dict[str, str]:
    return {"from": DAY.isoformat(), "to": (DAY + timedelta(days=1)).isoformat()}


@pytest.fixture(params=["sqlite", "influxdb"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_virtual_rest_equals_main_minus_submeters(tmp_path: Path, store_kind: str,
                                                  request: pytest.FixtureRequest) -> None:
    """Through either store: the converter writes, the API reads back and evaluates the rest."""
    env = VirtualEnv(tmp_path)
    if store_kind == "influxdb":
        env.influx = InfluxStoreSettings(kind="influxdb", url=request.getfixturevalue("influx_url"),
                                         database=f"t{uuid.uuid4().hex[:12]}")
    deltas = day_of_samples()
    store = env.open_store()
    try:
        fill(store, deltas, None)
    finally:
        store.close()
    env.store.close()
    hand = sum(deltas["main"]) - sum(deltas["press-1"]) - sum(deltas["press-2"])
    with TestClient(env.app()) as c:
        body = c.get("/v1/balance", params=period(), headers=env.h("viewer")).json()
        rows = {m["meter"]: m for m in body["meters"]}
        vm = {v["meter"]: v for v in body["virtual_meters"]}["rest"]
        assert abs(vm["energy"] - hand) < 1e-9
        assert abs(vm["energy"] - (rows["main"]["energy"] - rows["press-1"]["energy"]
                                   - rows["press-2"]["energy"])) < 1e-9
        assert abs(vm["co2e_kg"] - (rows["main"]["co2e_kg"] - rows["press-1"]["co2e_kg"]
                                    - rows["press-2"]["co2e_kg"])) < 1e-9
        assert vm["completeness"] == 1.0 and vm["negative"] is False and vm["points"] == 3 * 1440
        # the site's figure counts the real meters only (the virtual one is never added)
        assert abs(body["co2e_kg"] - sum(m["co2e_kg"] for m in body["meters"])) < 1e-9
        one = c.get("/v1/balance", params={**period(), "meter": "rest"}, headers=env.h("viewer")).json()
        assert one["meter"] == "rest" and abs(one["co2e_kg"] - vm["co2e_kg"]) < 1e-12
        assert {m["meter"] for m in one["meters"]} == {"main", *SUBS}
        hist = c.get("/v1/history", params={**period(), "meter": "rest", "step": "15m"},
                     headers=env.h("viewer")).json()
        assert len(hist["buckets"]) == 96
        for b in hist["buckets"]:
            i = int((datetime.fromisoformat(b["start"]) - DAY).total_seconds() // 60)
            want = sum(deltas["main"][i:i + 15]) - sum(deltas["press-1"][i:i + 15]) - sum(deltas["press-2"][i:i + 15])
            assert abs(b["energy"] - want) < 1e-9 and b["boundary"] == "rest" and b["completeness"] == 1.0
        assert abs(sum(b["energy"] for b in hist["buckets"]) - hand) < 1e-9
        rec = c.get("/v1/reconciliation", params={**period(), "meter": "rest", "step": "1h"},
                    headers=env.h("viewer")).json()
        assert rec["main"] == "main" and rec["submeters"] == list(SUBS)
        assert abs(rec["difference_energy"] - hand) < 1e-9
        assert abs(rec["difference_pct"] - hand / sum(deltas["main"]) * 100) < 1e-9
        assert abs(rec["main_energy"] - sum(deltas["main"])) < 1e-9
        assert len(rec["buckets"]) == 24 and rec["completeness"] == 1.0
        assert c.get("/v1/reconciliation", params={"meter": "main"}, headers=env.h("viewer")).status_code == 404


def test_missing_submeter_lowers_completeness_and_shows_as_unmetered(tmp_path: Path) -> None:
    """press-2 sends nothing in the afternoon: those buckets are incomplete and their rest holds press-2's load."""
    env = VirtualEnv(tmp_path)
    deltas = day_of_samples(11)
    deltas["press-2"] = deltas["press-2"][:720]
    fill(env.store, deltas, None)
    env.store.close()
    with TestClient(env.app()) as c:
        hist = c.get("/v1/history", params={**period(), "meter": "rest", "step": "1h"},
                     headers=env.h("viewer")).json()["buckets"]
        assert [b["completeness"] for b in hist] == [1.0] * 12 + [0.0] * 12
        rest = c.get("/v1/balance", params=period(), headers=env.h("viewer")).json()["virtual_meters"][0]
        assert rest["completeness"] == 0.5
        assert abs(rest["energy"] - (sum(deltas["main"]) - sum(deltas["press-1"]) - sum(deltas["press-2"]))) < 1e-9


def test_export_counter_shows_as_flow_and_lowers_net_import(tmp_path: Path) -> None:
    deltas = day_of_samples(3)
    rnd = random.Random(5)
    export_wh = [rnd.uniform(0.0, 900.0) for _ in range(1440)]
    bodies = []
    for name, export in (("with", export_wh), ("without", None)):
        (tmp_path / name).mkdir()
        env = VirtualEnv(tmp_path / name)
        fill(env.store, deltas, export)
        env.store.close()
        with TestClient(env.app()) as c:
            bodies.append(c.get("/v1/balance", params=period(), headers=env.h("viewer")).json())
    solar, plain = bodies
    imported = sum(sum(v) for v in deltas.values())
    exported = sum(export_wh) / 1000.0
    flows = solar["flows"]
    assert flows["meters"] == ["roof"] and flows["energy_unit"] == "kWh"
    assert abs(flows["import_energy"] - imported) < 1e-6
    assert abs(flows["export_energy"] - exported) < 1e-6
    assert abs(flows["net_import"] - (imported - exported)) < 1e-6
    assert flows["generation_energy"] == 0.0 and flows["self_consumed"] == 0.0
    # export carries no CO2e: location-based (and market-based) scope 2 is the same as without the counter
    assert plain["flows"] is None
    assert abs(solar["co2e_kg"] - plain["co2e_kg"]) < 1e-9
    assert abs(flows["location_co2e_kg"] - plain["co2e_kg"]) < 1e-9
    assert abs(solar["market_based"]["co2e_kg"] - plain["market_based"]["co2e_kg"]) < 1e-9


def test_the_period_report_shows_virtual_meters_and_flows_as_the_balance_does(tmp_path: Path) -> None:
    env = VirtualEnv(tmp_path)
    deltas = day_of_samples(13)
    rnd = random.Random(17)
    fill(env.store, deltas, [rnd.uniform(0.0, 500.0) for _ in range(1440)])
    env.store.close()
    with TestClient(env.app()) as c:
        h = env.h("viewer")
        bal = c.get("/v1/balance", params=period(), headers=h).json()
        report = c.get("/v1/reports/period", params={**period(), "format": "csv"}, headers=h)
        page = c.get("/v1/reports/period", params={**period(), "format": "html"}, headers=h).text
    assert report.status_code == 200, report.text
    rows = list(csv.reader(io.StringIO(report.text)))
    [rest] = [r for r in rows if r[0] == "virtual_meter"]
    [virtual] = bal["virtual_meters"]
    assert rest[:5] == \
        ["virtual_meter", "rest", repr(virtual["energy"]), "kWh", repr(virtual["co2e_kg"])]
    assert abs(float(rest[2]) - (sum(deltas["main"]) - sum(deltas["press-1"]) - sum(deltas["press-2"]))) < 1e-9
    flows = {r[1]: float(r[2]) for r in rows if r[0] == "flow"}
    assert flows == {"import": bal["flows"]["import_energy"], "export": bal["flows"]["export_energy"],
                     "generation": 0.0, "net_import": bal["flows"]["net_import"], "self_consumed": 0.0,
                     "consumption": bal["flows"]["consumption"]}
    assert flows["net_import"] == flows["import"] - flows["export"] and flows["export"] > 0
    assert "<h2>Virtual meters" in page and "main - press-1 - press-2" in page and "<h2>Electricity flows" in page
