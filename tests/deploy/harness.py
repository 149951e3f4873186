"""A whole carbonwatch system for end-to-end tests: each service a real child process on free loopback ports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx

from api.auth import write_key
from deploy.services import free_port, wait_for_port

T = TypeVar("T")

METERS = (  # (id, area, unit id, base kW, peak kW)
    ("press-1", "pressing", 1, 60.0, 420.0),
    ("press-2", "pressing", 2, 40.0, 300.0),
    ("paint-oven", "painting", 3, 150.0, 220.0),
)


def plant_toml(workdir: Path, modbus_port: int, control_port: int, api_port: int, interval_s: float = 0.2,
               acceleration: float = 600.0) -> str:
    ingest_client_id = f"e2e-ingest-{uuid.uuid4().hex[:12]}"
    meters = "\n".join(f"""
[[meters]]
id = "{mid}"
area = "{area}"
carrier = "electricity"
max_power_kw = 1000000.0  # the simulators run 600x faster than real time: counters advance that much faster
gateway = "gw1"
unit_id = {unit}
map = "schneider_pm5000"
interval_s = {interval_s}
sim = {{ profile = "continuous", base_kw = {base}, peak_kw = {peak} }}
""" for mid, area, unit, base, peak in METERS)
    return f"""
[site]
id = "e2e"
name = "end-to-end test plant"
region = "CN"
timezone = "Asia/Shanghai"
start = 2026-01-01T00:00:00Z

[[gateways]]
id = "gw1"
kind = "modbus_tcp"
host = "127.0.0.1"
port = {modbus_port}
{meters}
[simulator]
seed = 11
acceleration = {acceleration}
control_url = "http://127.0.0.1:{control_port}"

[mqtt]
url = ""

[ingest]
client_id = "{ingest_client_id}"    # unique per run: a persistent session must not outlive its test

[store]
kind = "sqlite"
path = "{workdir / 'store.sqlite'}"

[api]
host = "127.0.0.1"
port = {api_port}
keys_file = "{workdir / 'keys.toml'}"
"""


def wait_until(what: str, probe: Callable[[], T | None], timeout_s: float = 30.0, every_s: float = 0.1) -> T:
    """Poll `probe` until it returns something truthy; fail naming `what` after the deadline."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what} (last: {last!r})")


@dataclass
class System:
    workdir: Path
    mqtt_url: str
    modbus_port: int = field(default_factory=free_port)
    control_port: int = field(default_factory=free_port)
    api_port: int = field(default_factory=free_port)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    key: str = ""

    def __post_init__(self) -> None:
        self.plant = self.workdir / "plant.toml"
        self.plant.write_text(plant_toml(self.workdir, self.modbus_port, self.control_port, self.api_port))
        self.key = write_key(self.workdir / "keys.toml", "e2e", "viewer")
        self.api = httpx.Client(base_url=f"http://127.0.0.1:{self.api_port}",
                                headers={"Authorization": f"Bearer {self.key}"}, timeout=10)
        self.sim = httpx.Client(base_url=f"http://127.0.0.1:{self.control_port}", timeout=10)

    def argv(self, name: str) -> list[str]:
        cli = [sys.executable, "-m", "deploy.cli"]
        plant = str(self.plant)
        return {
            "simulate": [*cli, "simulate", "--plant", plant, "--paused"],
            "ingest": [*cli, "ingest", "--config", plant, "--mqtt-url", self.mqtt_url],
            "edge": [*cli, "edge", "--config", plant, "--mqtt-url", self.mqtt_url,
                     "--state-dir", str(self.workdir / "edge")],
            "api": [*cli, "api", "--config", plant, "--mqtt-url", self.mqtt_url],
        }[name]

    def start(self, name: str) -> None:
        log = (self.workdir / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(self.argv(name), stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, cwd=self.workdir, env=dict(os.environ))
        log.close()
        if name == "simulate":
            wait_for_port("127.0.0.1", self.control_port, 30, self.procs[name])
            wait_for_port("127.0.0.1", self.modbus_port, 30, self.procs[name])
        if name == "api":
            wait_for_port("127.0.0.1", self.api_port, 30, self.procs[name])

    def start_all(self) -> None:
        for name in ("simulate", "ingest", "edge", "api"):
            self.start(name)

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def stop_all(self) -> None:
        for name in ("edge", "simulate", "ingest", "api"):
            proc = self.procs.pop(name, None)
            if proc is None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        self.api.close()
        self.sim.close()

    def log(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    # --- observations -------------------------------------------------------------------------
    def truth(self) -> dict[str, int]:
        """Counter register value (Wh) per meter, as the simulator reports it."""
        body = self.sim.get("/truth").json()
        out = {}
        for mid, meter in body["meters"].items():
            counter = meter["counters"]["active_energy_import"]
            assert counter["unit"] == "Wh"
            out[mid] = int(counter["value"])
        return out

    def meters(self) -> dict[str, dict[str, Any]]:
        resp = self.api.get("/v1/meters")
        resp.raise_for_status()
        return {m["meter"]: m for m in resp.json()["meters"]}

    def balance(self) -> dict[str, Any]:
        """Balance over a window around the test (a named period could be cut by local midnight)."""
        now = datetime.now(UTC)
        window = {"from": (now - timedelta(hours=2)).isoformat(), "to": (now + timedelta(hours=2)).isoformat()}
        resp = self.api.get("/v1/balance", params=window)
        resp.raise_for_status()
        body: dict[str, Any] = resp.json()
        return body
