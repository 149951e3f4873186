"""On-site solar end to end with real parts: the simulators' PV generation meter and a grid SDM630 with it behind
(export when generation exceeds the load) and a press importing, read over Modbus TCP by the edge agent,
published to a real Mosquitto, stored by `carbonwatch ingest` (a subprocess) in SQLite and read by the API: the
balance shows the generation and the export the edge measured, net import = import − export (the hand
computation from the published samples), and the site's CO2e is the import's alone (import × grid factor)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.auth import KeyRing, write_key
from api.main import create_app
from api.settings import ApiSection, MqttSection, Settings
from calc.factors import default_factor_set
from calc.plant import parse_plant
from deploy.services import free_port
from edge.agent import Agent
from edge.config import parse_config
from ingest.store.sqlite import SqliteStore
from simulators.config import parse_config as sim_parse_config
from simulators.plant import SimulatedPlant
from tests.edge.helpers import Collector, eventually, unique_site
from tests.ingest.helpers import IngestProcess, wait_for

pytestmark = pytest.mark.integration

START = "2026-03-02T05:50:00Z"   # 13:50 in Asia/Shanghai: the sun is high, generation above the load
COUNTERS = (("incomer", "active_energy_import"), ("incomer", "active_energy_export"),
            ("roof-pv", "active_energy_generation"), ("press", "active_energy_import"))


def meters() -> list[dict[str, Any]]:
    common = {"carrier": "electricity", "gateway": "gw1", "interval_s": 0.2, "max_power_kw": 50_000.0}
    return [{"id": "roof-pv", "area": "utilities", "unit_id": 1, "map": "eastron_sdm630_pv", **common,
             "sim": {"profile": "solar", "base_kw": 0.0, "peak_kw": 80.0, "noise": 0.0}},
            {"id": "incomer", "area": "utilities", "unit_id": 2, "map": "eastron_sdm630", **common,
             "sim": {"profile": "continuous", "base_kw": 30.0, "peak_kw": 50.0, "noise": 0.0,
                     "generation": "roof-pv"}},
            {"id": "press", "area": "pressing", "unit_id": 3, "map": "eastron_sdm630", **common,
             "sim": {"profile": "continuous", "base_kw": 100.0, "peak_kw": 120.0, "noise": 0.0}}]


def plant_dict(site: str, mqtt_url: str, state: Path) -> dict[str, Any]:
    return {"site": {"id": site, "region": "CN", "timezone": "Asia/Shanghai", "start": "2026-01-01T00:00:00Z"},
            "gateways": [{"id": "gw1", "kind": "modbus_tcp", "host": "127.0.0.1", "port": free_port(),
                          "timeout_s": 0.5}],
            "meters": meters(),
            "simulator": {"seed": 7, "acceleration": 60.0, "start": START,
                          "control_url": f"http://127.0.0.1:{free_port()}"},
            "mqtt": {"url": mqtt_url}, "edge": {"agent": "edge-solar", "state_dir": str(state)}}


def ingest_file(tmp: Path, site: str, mqtt_url: str) -> Path:
    """The plant file as ingest reads it (its own sections: site, meters, mqtt, store, ingest)."""
    rows = "".join(f'[[meters]]\nid = "{m["id"]}"\narea = "{m["area"]}"\ncarrier = "electricity"\n'
                   f'interval_s = 0.2\nmax_power_kw = 50000.0\n\n' for m in meters())
    path = tmp / "ingest.toml"
    path.write_text(f'[site]\nid = "{site}"\nregion = "CN"\ntimezone = "Asia/Shanghai"\n'
                    f'start = 2026-01-01T00:00:00Z\n\n{rows}[mqtt]\nurl = "{mqtt_url}"\n\n'
                    f'[store]\nkind = "sqlite"\npath = "{tmp / "store.sqlite"}"\n\n'
                    f'[ingest]\nclient_id = "ingest-{site}"\nmetrics_path = "{tmp / "metrics.json"}"\n')
    return path


def sums(collector: Collector) -> dict[tuple[str, str], float]:
    out = dict.fromkeys(COUNTERS, 0.0)
    for meter, quantity in COUNTERS:
        out[(meter, quantity)] = sum(s.delta or 0.0 for m in collector.messages(meter) for s in m.samples
                                     if s.quantity == quantity)
    return out


async def test_solar_shows_as_generation_and_lowers_net_import(tmp_path: Path, mqtt_url: str) -> None:
    site = unique_site()
    data = plant_dict(site, mqtt_url, tmp_path / "state")
    ingest = IngestProcess(ingest_file(tmp_path, site, mqtt_url), tmp_path / "metrics.json", tmp_path)
    ingest.start()
    sim = SimulatedPlant(sim_parse_config(data, "<test>"), paused=True, serve_control=False)
    collector = Collector(mqtt_url, site)
    stop = asyncio.Event()
    task: asyncio.Task[None] | None = None
    try:
        await sim.start()
        before = sim.truth()["meters"]
        task = asyncio.create_task(Agent(parse_config(data, "<test>")).run(stop))
        await eventually(lambda: all(collector.messages(m) for m in ("incomer", "roof-pv", "press")), what="baselines")
        sim.resume()
        await eventually(lambda: sums(collector)[("incomer", "active_energy_export")] > 0.5, timeout_s=30,
                         what="half a kWh exported")
        truth = sim.pause()["meters"]
        final = {(m, q): truth[m]["counters"][q]["value"] for m, q in COUNTERS}
        await eventually(lambda: all(
            [s.value for msg in collector.messages(m) for s in msg.samples if s.quantity == q][-1]
            == pytest.approx(final[(m, q)], rel=1e-6) for m, q in COUNTERS), what="the final counters read")
    finally:
        stop.set()
        if task is not None:
            await asyncio.wait_for(task, 10)
        await sim.stop()
    try:
        hand = sums(collector)
        collector.close()
        # what the edge measured is what the meters advanced (float32 kWh registers: rounded to about 1 Wh)
        for m, q in COUNTERS:
            assert hand[(m, q)] == pytest.approx(final[(m, q)] - before[m]["counters"][q]["value"], abs=2e-3)
        assert hand[("roof-pv", "active_energy_generation")] > hand[("incomer", "active_energy_export")] > 0.5
        imported = hand[("incomer", "active_energy_import")] + hand[("press", "active_energy_import")]
        assert imported > 1.0

        def stored() -> bool:
            s = SqliteStore(tmp_path / "store.sqlite")
            try:
                flows = s.energy_flows(site, datetime(2026, 1, 1, tzinfo=UTC), datetime.now(UTC) + timedelta(1))
            finally:
                s.close()
            got = {f.meter: f for f in flows}
            return ("incomer" in got and "roof-pv" in got and "press" in got
                    and got["incomer"].import_energy + got["press"].import_energy == pytest.approx(imported, abs=1e-9)
                    and got["incomer"].export_energy == pytest.approx(hand[("incomer", "active_energy_export")],
                                                                      abs=1e-9)
                    and got["roof-pv"].generation_energy == pytest.approx(
                        hand[("roof-pv", "active_energy_generation")], abs=1e-9))

        wait_for(stored, 30, "every sample stored")
    finally:
        ingest.stop()
    plant = {k: data[k] for k in ("site", "meters")}
    plant["meters"] = [{k: v for k, v in m.items() if k in ("id", "area", "carrier", "interval_s", "max_power_kw")}
                       for m in plant["meters"]]
    keys = tmp_path / "keys.toml"
    key = write_key(keys, "viewer", "viewer", (site,))
    now = datetime.now(UTC)
    settings = Settings(plant=parse_plant(plant), plant_data=plant, base_dir=tmp_path, mqtt=MqttSection(),
                        api=ApiSection(keys_file=str(keys), db_path=str(tmp_path / "api.sqlite"), live=False))
    app = create_app(settings, SqliteStore(tmp_path / "store.sqlite"), KeyRing.load(keys), clock=lambda: now)
    with TestClient(app) as c:
        body = c.get("/v1/balance", params={"from": (now - timedelta(hours=2)).isoformat(),
                                            "to": (now + timedelta(hours=1)).isoformat()},
                     headers={"Authorization": f"Bearer {key}"}).json()
    flows = body["flows"]
    exported, generated = hand[("incomer", "active_energy_export")], hand[("roof-pv", "active_energy_generation")]
    assert flows["meters"] == ["incomer", "roof-pv"]
    assert flows["generation_energy"] == pytest.approx(generated, abs=1e-9)
    assert flows["export_energy"] == pytest.approx(exported, abs=1e-9)
    assert flows["import_energy"] == pytest.approx(imported, abs=1e-9)
    assert flows["net_import"] == pytest.approx(imported - exported, abs=1e-9)
    assert flows["self_consumed"] == pytest.approx(generated - exported, abs=1e-9)
    # the site's CO2e is the import's, at the grid factor: neither export nor generation changes it
    factor = default_factor_set().grid_factor("CN", now).value
    assert body["co2e_kg"] == pytest.approx(imported * factor, rel=1e-9)
    assert flows["location_co2e_kg"] == pytest.approx(body["co2e_kg"], abs=1e-12)
    assert flows["avoided_location_kg"] == pytest.approx((generated - exported) * factor, rel=1e-9)
