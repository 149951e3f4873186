"""The issue's fault test with every part real: a simulated press meter whose energy follows a declared model of
its production counter and the outdoor temperature (simulators, Modbus and OPC UA) -> edge -> Mosquitto ->
ingest -> SQLite, and the API live on the same broker with a deviation rule against a baseline fitted on data
from the declared model (injected through the engine's BaselineLookup, as the baselines store will give it).
While the press follows its model the rule stays quiet; with the simulators' `waste` fault (+15 %) it fires, at a
window end no later than window + for_s (+ a few reading intervals) after the fault was injected.
"""

from __future__ import annotations

import time
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from api.auth import KeyRing
from api.live.rule_runner import Engine
from api.main import create_app
from api.settings import ApiSection, MqttSection, Settings
from calc.baseline import Baseline, fit_baseline
from calc.plant import parse_plant
from ingest.store.sqlite import SqliteStore
from tests.api.conftest import Env, Server
from tests.deploy.harness import wait_until
from tests.deploy.test_variables_end_to_end import Rig

pytestmark = pytest.mark.integration

SITE = "e2e-prod"
START = "2026-03-02T02:00:00Z"     # 10:00 on a Monday in Shanghai: the morning shift is pressing
BASE_KW, PER_PIECE_KWH, PER_HDD_KWH = 60.0, 1.2, 60.0
WINDOW_S, FOR_S, INTERVAL_S = 60.0, 10.0, 1.0


def plant_toml(workdir: Path, store: str, modbus_port: int, opc_port: int, control_port: int) -> str:
    """Real time (acceleration 1), readings every second; 3600 pieces an hour so a minute's count is not coarse."""
    return f"""
[site]
id = "{SITE}"
region = "CN"
timezone = "Asia/Shanghai"
start = 2026-01-01T00:00:00Z

[[gateways]]
id = "gw1"
kind = "modbus_tcp"
host = "127.0.0.1"
port = {modbus_port}

[[gateways]]
id = "opc1"
kind = "opcua"
host = "127.0.0.1"
port = {opc_port}
security = ["None"]
timestamps = "agent"

[[meters]]
id = "press"
area = "pressing"
line = "line-1"
carrier = "electricity"
max_power_kw = 100000.0
gateway = "gw1"
unit_id = 1
map = "schneider_pm5000"
interval_s = {INTERVAL_S}
[meters.sim.model]
production = "out"
temperature = "temp"
base = {BASE_KW}
per_unit = {PER_PIECE_KWH}
per_degree_day = {PER_HDD_KWH}
noise_sd = 5.0

[[variables]]
id = "out"
area = "pressing"
line = "line-1"
kind = "production"
quantity = "production"
unit = "count"
gateway = "gw1"
unit_id = 6
map = "production_counter"
interval_s = {INTERVAL_S}
sim = {{ profile = "continuous", base_per_h = 3600.0, peak_per_h = 3600.0 }}

[[variables]]
id = "temp"
area = "utilities"
kind = "driver"
quantity = "outdoor_temperature"
unit = "degC"
measure = "gauge"
degree_day_base_c = 18.0
gateway = "opc1"
map = "opcua_outdoor_temperature"
interval_s = {INTERVAL_S}
sim = {{ weather = {{ mean_c = 4.0, swing_c = 5.0 }} }}

[simulator]
seed = 5
acceleration = 1.0
start = {START}
control_url = "http://127.0.0.1:{control_port}"

[mqtt]
url = ""

[ingest]
client_id = "e2e-dev-{uuid.uuid4().hex[:12]}"

[edge]
state_dir = "{workdir / 'edge'}"

{store}
"""


def declared_model() -> Baseline:
    """A baseline fitted on hourly data generated from the simulator's declared model (a + b·pieces + c·HDD)."""
    rng = np.random.default_rng(11)
    pieces, hdd = rng.uniform(1000, 5000, 300), rng.uniform(0.0, 1.0, 300)
    energy = BASE_KW + PER_PIECE_KWH * pieces + PER_HDD_KWH * hdd + rng.normal(0, 5.0, 300)
    return fit_baseline(energy, {"pieces": pieces, "hdd": hdd}, energy_unit="kWh",
                        driver_units={"pieces": "count", "hdd": "K * day"}, resolution="hourly",
                        subject=f"{SITE}/pressing/press")


class FaultRig(Rig):
    def __post_init__(self) -> None:
        self.plant = self.workdir / "plant.toml"
        self.plant.write_text(plant_toml(self.workdir, self.store_section, self.modbus_port, _free(),
                                         self.control_port))
        self.sim = httpx.Client(base_url=f"http://127.0.0.1:{self.control_port}", timeout=10)

    def start_all(self) -> None:   # the simulators run from the start (no pause: real time)
        from deploy.services import wait_for_port

        self.start("simulate", "--plant", str(self.plant))
        wait_for_port("127.0.0.1", self.control_port, 60, self.procs["simulate"])
        wait_for_port("127.0.0.1", self.modbus_port, 60, self.procs["simulate"])
        self.start("ingest", "--config", str(self.plant), "--mqtt-url", self.mqtt_url)
        self.start("edge", "--config", str(self.plant), "--mqtt-url", self.mqtt_url)


def _free() -> int:
    from deploy.services import free_port

    return free_port()


@dataclass
class PlantEnv(Env):
    """The API over the rig's plant file and SQLite store."""

    data: dict[str, Any] = field(default_factory=dict)

    def settings(self, mqtt: MqttSection | None = None, **api: Any) -> Settings:
        section = ApiSection(keys_file=str(self.keys_file), db_path=str(self.tmp / "api.sqlite"), **api)
        return Settings(plant=parse_plant(self.data), plant_data=self.data, base_dir=self.tmp, api=section,
                        mqtt=mqtt or MqttSection())


@pytest.fixture
def rig(tmp_path: Path, mqtt_url: str) -> Iterator[FaultRig]:
    r = FaultRig(tmp_path, mqtt_url, f'[store]\nkind = "sqlite"\npath = "{tmp_path / "store.sqlite"}"')
    try:
        r.start_all()
        yield r
    except BaseException:
        print(r.logs())
        raise
    finally:
        r.stop_all()


def test_the_waste_fault_fires_the_deviation_rule_within_its_time(rig: FaultRig, tmp_path: Path,
                                                                   mqtt_url: str) -> None:
    model = declared_model()
    (tmp_path / "api").mkdir()
    env = PlantEnv(tmp_path / "api", site=SITE, data=tomllib.loads(rig.plant.read_text()))
    env.clock.now = datetime.now(UTC)
    settings = env.settings(MqttSection(url=mqtt_url), live=True, client_id=f"api-dev-{uuid.uuid4().hex[:8]}",
                            rate_refresh_s=1.0)
    app = create_app(settings, SqliteStore(tmp_path / "store.sqlite"), KeyRing.load(env.keys_file),
                     clock=lambda: datetime.now(UTC))
    engine: Engine = app.state.engine
    engine.baselines = lambda baseline_id: model if baseline_id == "press" else None
    with Server(app) as server:
        api = httpx.Client(base_url=server.url, headers=env.h("engineer"), timeout=10)
        rule = {"id": "press-waste", "name": "press uses more than its output explains", "metric": "deviation",
                "threshold": 10.0, "for_s": FOR_S, "window_s": WINDOW_S, "scope": "meter", "target": "press",
                "baseline_id": "press", "drivers": {"pieces": "out", "hdd": "temp"}}
        assert api.post("/v1/rules", json=rule).status_code == 201
        wait_until("a whole window of live data", lambda: api.get("/v1/rules/press-waste").json()["value"]
                   is not None, 180)
        quiet = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:       # the press follows its model: within a few % of expected
            quiet.append(api.get("/v1/rules/press-waste").json()["value"])
            time.sleep(1)
        assert all(v is not None and abs(v) < 5.0 for v in quiet), quiet
        assert api.get("/v1/alerts").json()["alerts"] == []
        injected = datetime.now(UTC)
        assert rig.sim.post("/faults", json={"meter": "press", "fault": "waste", "factor": 1.15}).status_code < 300
        alerts = wait_until("the deviation alert", lambda: api.get("/v1/alerts").json()["alerts"], 180)
        api.close()
    assert [a["rule"] for a in alerts] == ["press-waste"]
    fired_at = datetime.fromisoformat(alerts[0]["fired_at"])
    print(f"quiet deviation {min(quiet):.2f}..{max(quiet):.2f} %; fired {(fired_at - injected).total_seconds():.1f} s "
          f"after the fault (window {WINDOW_S:.0f} s + for {FOR_S:.0f} s) at {alerts[0]['value']:.2f} %")
    # window ends are reading times (the edge stamps them); a few intervals of slack for the poll that straddles
    # the injection and the inputs' arrival
    assert injected < fired_at <= injected + timedelta(seconds=WINDOW_S + FOR_S + 5 * INTERVAL_S)
    assert 10.0 < alerts[0]["value"] < 20.0, alerts[0]
