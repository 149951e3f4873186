"""End to end with real parts, for production counters and driver variables: simulated Modbus and OPC UA devices ->
edge -> Mosquitto -> ingest -> SQLite, and the same to InfluxDB. The production counter's stored total equals what
its register advanced (the simulator's ground truth) exactly, the model-driven press meter's energy too, and the
outdoor temperature arrives in degC with its time-weighted mean equal to a hand computation from the stored samples.

As in test_end_to_end: the simulators start paused, so the edge's first reading is the baseline noted as the start
of the truth; after the run the plant is paused again and the store is polled until it has every count.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from deploy.services import free_port, wait_for_port
from ingest.config import InfluxStoreSettings
from ingest.store.base import Store, VariableTotal
from ingest.store.influx import InfluxStore
from ingest.store.sqlite import SqliteStore
from tests.deploy.harness import wait_until

pytestmark = pytest.mark.integration

SITE = "e2e-prod"
START = "2026-03-02T02:00:00Z"  # 10:00 on a Monday in Shanghai: the morning shift is pressing


def plant_toml(workdir: Path, store: str, modbus_port: int, opc_port: int, control_port: int) -> str:
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
timestamps = "agent"                 # the simulated server's source times run 600x fast

[[meters]]
id = "press"
area = "pressing"
line = "line-1"
carrier = "electricity"
max_power_kw = 1000000000.0          # counters advance 600x faster than the model's kW
gateway = "gw1"
unit_id = 1
map = "schneider_pm5000"
interval_s = 0.2
[meters.sim.model]
production = "out"
temperature = "temp"
base = 60.0
per_unit = 1.2
per_degree_day = 60.0
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
interval_s = 0.2
sim = {{ profile = "shift", base_per_h = 0.0, peak_per_h = 240.0 }}

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
interval_s = 0.2
sim = {{ weather = {{ mean_c = 4.0, swing_c = 5.0 }} }}

[simulator]
seed = 5
acceleration = 600.0
start = {START}
control_url = "http://127.0.0.1:{control_port}"

[mqtt]
url = ""

[ingest]
client_id = "e2e-prod-{uuid.uuid4().hex[:12]}"

[edge]
state_dir = "{workdir / 'edge'}"

{store}
"""


@dataclass
class Rig:
    workdir: Path
    mqtt_url: str
    store_section: str
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    control_port: int = field(default_factory=free_port)
    modbus_port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        self.plant = self.workdir / "plant.toml"
        self.plant.write_text(plant_toml(self.workdir, self.store_section, self.modbus_port, free_port(),
                                         self.control_port))
        self.sim = httpx.Client(base_url=f"http://127.0.0.1:{self.control_port}", timeout=10)

    def start(self, name: str, *args: str) -> None:
        log = (self.workdir / f"{name}.log").open("ab")
        argv = [sys.executable, "-m", "deploy.cli", name, *args]
        self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            cwd=self.workdir, env=dict(os.environ))
        log.close()

    def start_all(self) -> None:
        self.start("simulate", "--plant", str(self.plant), "--paused")
        wait_for_port("127.0.0.1", self.control_port, 60, self.procs["simulate"])
        wait_for_port("127.0.0.1", self.modbus_port, 60, self.procs["simulate"])
        self.start("ingest", "--config", str(self.plant), "--mqtt-url", self.mqtt_url)
        self.start("edge", "--config", str(self.plant), "--mqtt-url", self.mqtt_url)

    def stop_all(self) -> None:
        for name in ("edge", "simulate", "ingest"):
            proc = self.procs.pop(name, None)
            if proc is None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        self.sim.close()

    def logs(self) -> str:
        return "\n".join(f"--- {n} ---\n{(self.workdir / f'{n}.log').read_text(errors='replace')[-3000:]}"
                         for n in ("simulate", "edge", "ingest") if (self.workdir / f"{n}.log").exists())

    def truth(self) -> dict[str, Any]:
        meters: dict[str, Any] = self.sim.get("/truth").json()["meters"]
        return meters


@pytest.fixture(params=["sqlite", "influxdb"])
def rig(request: pytest.FixtureRequest, tmp_path: Path, mqtt_url: str) -> Iterator[tuple[Rig, Store]]:
    store: Store
    if request.param == "sqlite":
        section = f'[store]\nkind = "sqlite"\npath = "{tmp_path / "store.sqlite"}"'
        store = SqliteStore(tmp_path / "store.sqlite")
    else:
        url = request.getfixturevalue("influx_url")
        database = f"e2e{uuid.uuid4().hex[:12]}"
        section = f'[store]\nkind = "influxdb"\nurl = "{url}"\ndatabase = "{database}"'
        store = InfluxStore(InfluxStoreSettings(kind="influxdb", url=url, database=database))
    r = Rig(tmp_path, mqtt_url, section)
    try:
        r.start_all()
        yield r, store
    except BaseException:
        print(r.logs())
        raise
    finally:
        r.stop_all()
        store.close()


def _window() -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    return now - timedelta(hours=2), now + timedelta(hours=2)


def _variables(store: Store) -> dict[str, VariableTotal]:
    return {v.variable: v for v in store.variable_totals(SITE, *_window())}


def _energy_kwh(store: Store) -> float:
    return sum(t.energy for t in store.totals(SITE, *_window()) if t.meter == "press")


def _temperatures(store: Store, path: Path) -> list[tuple[float, float, str]]:
    """(value, interval_s, unit) of every stored good sample of the outdoor temperature, read around the store's
    own figures (SQLite's table, InfluxDB's measurement)."""
    if isinstance(store, SqliteStore):
        with sqlite3.connect(path) as db:
            return [(float(v), float(w), str(u)) for v, w, u in db.execute(
                "SELECT value, interval_s, unit FROM points WHERE meter = 'temp' AND quantity = 'outdoor_temperature' "
                "AND quality != 'bad' AND interval_s IS NOT NULL")]
    assert isinstance(store, InfluxStore)
    out = []
    for result in store.query(f"SELECT value, interval_s, unit, quality FROM {store._from_points} "
                              f"WHERE meter = 'temp' AND quantity = 'outdoor_temperature'"):
        for series in result.get("series", []):
            for _, v, w, u, q in series["values"]:
                if q != "bad" and w is not None:
                    out.append((float(v), float(w), str(u)))
    return out


def test_production_and_temperature_arrive_with_units_and_totals_equal_the_truth(
        rig: tuple[Rig, Store], tmp_path: Path) -> None:
    system, store = rig
    wait_until("the baselines stored", lambda: (v := _variables(store)).get("out") and v["out"].points >= 2
               and v.get("temp") and _energy_kwh(store) == 0.0 and store.meter_summaries(SITE), 90)
    before = system.truth()
    assert system.sim.post("/resume").status_code < 300
    wait_until("pieces counted", lambda: (_variables(store)["out"].total or 0.0) >= 200, 120)
    assert system.sim.post("/pause").status_code < 300
    after = system.truth()
    made = after["out"]["counters"]["pieces"]["value"] - before["out"]["counters"]["pieces"]["value"]
    used_kwh = (after["press"]["counters"]["active_energy_import"]["value"]
                - before["press"]["counters"]["active_energy_import"]["value"]) / 1000.0
    assert made > 0 and used_kwh > 0, "the test would prove nothing"

    def settled() -> bool:
        total = _variables(store)["out"].total or 0.0
        assert total <= made, f"{total} pieces stored, {made} made: counted twice"
        return total == made and abs(_energy_kwh(store) - used_kwh) <= 1e-9 * used_kwh

    wait_until("every piece and kWh stored", settled, 120)
    figures = _variables(store)
    out, temp = figures["out"], figures["temp"]
    assert (out.total, out.unit, out.kind, out.measure, out.line) == (made, "count", "production", "counter", "line-1")
    assert out.held == 0.0
    assert _energy_kwh(store) == pytest.approx(used_kwh, rel=1e-9)
    # the temperature: in degC, within the weather's range, its mean the samples' time-weighted mean
    samples = _temperatures(store, tmp_path / "store.sqlite")
    assert len(samples) >= 10 and {u for _, _, u in samples} == {"degC"}
    assert all(-25.0 < v < 30.0 for v, _, _ in samples)
    weight = sum(w for _, w, _ in samples)
    assert (temp.unit, temp.measure, temp.total) == ("degC", "gauge", None)
    assert temp.weight_s == pytest.approx(weight, rel=1e-9)
    assert temp.mean == pytest.approx(sum(v * w for v, w, _ in samples) / weight, rel=1e-9)
    # neither shows up as a meter, and neither has a CO2e
    assert {s.meter for s in store.meter_summaries(SITE)} == {"press"}
    assert {t.meter for t in store.totals(SITE, *_window())} == {"press"}
    assert json.dumps(after["out"]).count("co2e") == 0
