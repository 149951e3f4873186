"""A whole running plant for the SCADA tests: simulators, edge, ingest and API as child processes (tests/deploy
harness) on a real Mosquitto, plus `carbonwatch scada` with OPC UA, Sparkplug B and Modbus on free loopback ports.

The plant runs, an allowance, an offset and an alert exist, then the plant is paused and we wait until SCADA has
recomputed after the last stored reading: from then on the API's figures and SCADA's do not move, so both
can be read "at the same moment" without racing the meters.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from pymodbus.client import ModbusTcpClient

from api.auth import write_key
from deploy.services import free_port, wait_for_port
from tests.deploy.harness import System, wait_until

REPO = Path(__file__).resolve().parents[2]
NODE_DIR = Path(__file__).resolve().parent / "node"
OPCUA_USER, OPCUA_PASSWORD = "operator", "s3cret-pass"
NAMESPACE = "urn:carbonwatch:scada"


def scada_toml(opcua_port: int, modbus_port: int, workdir: Path, security: str = '"Basic256Sha256_SignAndEncrypt", '
               '"Basic256Sha256_Sign"') -> str:
    return f"""
[scada]
refresh_s = 1.0
min_interval_s = 0.1

[scada.opcua]
enabled = true
port = {opcua_port}
security = [{security}]
users = [{{ username = "{OPCUA_USER}", password = "{OPCUA_PASSWORD}" }}]
cert_dir = "{workdir / 'opcua-pki'}"

[scada.sparkplug]
enabled = true
group_id = "cw-test"
state_file = "{workdir / 'spb-state.json'}"

[scada.modbus]
enabled = true
port = {modbus_port}
unit_id = 1
"""


def node() -> str:
    exe = shutil.which("node")
    assert exe, "node is not installed"
    assert (NODE_DIR / "node_modules" / "node-opcua").is_dir(), \
        f"node packages are not installed: run `npm ci --prefix {NODE_DIR}`"
    return exe


def read_registers(port: int, address: int, count: int, unit: int = 1) -> list[int]:
    with ModbusTcpClient("127.0.0.1", port=port, timeout=5) as client:
        reply = client.read_input_registers(address, count=count, device_id=unit)
        assert not reply.isError(), f"Modbus read {address}+{count}: {reply}"
        return list(reply.registers)


@dataclass
class Plant:
    system: System
    admin: httpx.Client
    opcua_port: int
    modbus_port: int
    workdir: Path
    scada: subprocess.Popen[bytes] | None = None
    facts: dict[str, Any] = field(default_factory=dict)

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "scada.cli", "--config", str(self.system.plant),
                "--mqtt-url", self.system.mqtt_url]

    def start_scada(self) -> None:
        # A process still running from an earlier test (one that failed before it stopped it) is stopped first:
        # overwriting self.scada would lose the only reference to it, and nothing would ever stop it.
        self.stop_scada()
        log = (self.workdir / "scada.log").open("ab")
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self.scada = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      cwd=self.workdir, env=env)
        log.close()
        wait_for_port("127.0.0.1", self.modbus_port, 60, self.scada)
        wait_for_port("127.0.0.1", self.opcua_port, 60, self.scada)

    def stop_scada(self, sig: int = signal.SIGTERM) -> int | None:
        proc, self.scada = self.scada, None
        if proc is None:
            return None
        if proc.poll() is not None:
            return proc.returncode
        proc.send_signal(sig)
        try:
            return proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait(10)

    def log(self) -> str:
        path = self.workdir / "scada.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def header(self) -> list[int]:
        return read_registers(self.modbus_port, 0, 10)

    def wait_scada_after(self, moment: datetime, timeout_s: float = 60) -> None:
        """Until SCADA has recomputed (Modbus header: snapshot time) at least one second after `moment`."""
        target = int(moment.timestamp()) + 1

        def done() -> bool:
            regs = self.header()
            return (regs[6] << 16 | regs[7]) > target

        wait_until("a SCADA recompute after the last stored reading", done, timeout_s, 0.2)

    def api_balance(self, period: str, **where: str) -> dict[str, Any]:
        resp = self.system.api.get("/v1/balance", params={"period": period, **where})
        resp.raise_for_status()
        body: dict[str, Any] = resp.json()
        return body

    def open_alert_state(self, scope: str, target: str) -> tuple[int, int]:
        """(AlertState, ActiveAlerts) of a boundary as the API lists its alerts (2 firing, 1 acknowledged)."""
        alerts = [a for a in self.admin.get("/v1/alerts").json()["alerts"]
                  if a["state"] != "resolved" and a["target"] == target]
        state = 2 if any(a["state"] == "firing" for a in alerts) else (1 if alerts else 0)
        return state, len(alerts)


def _stored_after(system: System, moment: datetime) -> bool:
    meters = system.meters()
    return all(m["last_sample_ts"] and datetime.fromisoformat(m["last_sample_ts"]) > moment for m in meters.values())


@pytest.fixture(scope="module")
def plant(tmp_path_factory: pytest.TempPathFactory, mqtt_url: str) -> Iterator[Plant]:
    workdir = tmp_path_factory.mktemp("scada")
    system = System(workdir, mqtt_url)
    admin_key = write_key(workdir / "keys.toml", "scada-test-admin", "admin")
    p = Plant(system, httpx.Client(base_url=f"http://127.0.0.1:{system.api_port}", timeout=10,
                                   headers={"Authorization": f"Bearer {admin_key}"}),
              free_port(), free_port(), workdir)
    # the harness starts the API without --mqtt-url: name the broker in the file so its rule engine runs live
    text = system.plant.read_text(encoding="utf-8").replace('[mqtt]\nurl = ""', f'[mqtt]\nurl = "{mqtt_url}"')
    system.plant.write_text(text + scada_toml(p.opcua_port, p.modbus_port, workdir), encoding="utf-8")
    try:
        system.start_all()
        p.start_scada()
        _run_plant(p)
        yield p
    except BaseException:
        for name in ("simulate", "edge", "ingest", "api"):
            print(f"--- {name} log ---\n{system.log(name)}")
        print(f"--- scada log ---\n{p.log()}")
        raise
    finally:
        p.stop_scada()
        system.stop_all()
        p.admin.close()


def _run_plant(p: Plant) -> None:
    system = p.system
    wait_until("every meter's baseline stored", lambda: all(m["samples"] >= 2 for m in system.meters().values()), 60)
    rule = {"id": "pressing-running", "name": "pressing draws power", "metric": "power", "comparison": ">",
            "threshold": 1.0, "scope": "area", "target": "pressing", "severity": "warning"}
    assert p.admin.post("/v1/rules", json=rule).status_code == 201
    now = datetime.now(UTC)
    for body in ({"scope": "site", "start": (now - timedelta(days=1)).isoformat(),
                  "end": (now + timedelta(days=30)).isoformat(), "amount": 5.0, "unit": "t"},
                 {"scope": "area", "target": "pressing", "start": (now - timedelta(days=1)).isoformat(),
                  "end": (now + timedelta(days=30)).isoformat(), "amount": 2500.0, "unit": "kg"}):
        resp = p.admin.post("/v1/allowances", json=body)
        assert resp.status_code == 201, resp.text
    local_day = now.astimezone(ZoneInfo("Asia/Shanghai")).date()   # 00:00 UTC of it lies in the local day
    resp = p.admin.post("/v1/offsets", json={"kind": "sink", "quantity": 12.5, "unit": "kg",
                                             "applies_on": local_day.isoformat(),
                                             "evidence": "forestry survey F-1 (test)"})
    assert resp.status_code == 201, resp.text
    assert system.sim.post("/resume").status_code < 300
    start = {mid: m["samples"] for mid, m in system.meters().items()}
    wait_until("ten polls stored", lambda: all(m["samples"] >= start[mid] + 10
                                               for mid, m in system.meters().items()), 60)
    wait_until("the rule fired", lambda: p.admin.get("/v1/alerts").json()["alerts"], 30)
    assert system.sim.post("/pause").status_code < 300
    paused_at = datetime.now(UTC)
    wait_until("a reading after the pause stored", lambda: _stored_after(system, paused_at + timedelta(seconds=0.5)),
               60)
    p.facts["settled_at"] = datetime.now(UTC)
    p.wait_scada_after(p.facts["settled_at"])
