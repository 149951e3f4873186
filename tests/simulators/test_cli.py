"""`carbonwatch simulate` as a user runs it: starts, serves, stops cleanly on SIGTERM/SIGINT; bad files named."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import httpx
import pytest

from deploy.services import free_port
from simulators.config import ConfigError, load_config
from tests.simulators.conftest import opcua_gateway, opcua_meter, plant_dict, pm5000_meter

pytestmark = pytest.mark.integration


def write_toml(path: Path, data: dict[str, Any]) -> Path:
    def value(v: Any) -> str:
        if isinstance(v, str):
            return f'"{v}"'
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }"
        if isinstance(v, list | tuple):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return repr(v)

    lines = []
    for key, section in data.items():
        if isinstance(section, list):
            for item in section:
                lines.append(f"[[{key}]]")
                lines += [f"{k} = {value(v)}" for k, v in item.items()]
        else:
            lines.append(f"[{key}]")
            lines += [f"{k} = {value(v)}" for k, v in section.items()]
    path.write_text("\n".join(lines) + "\n")
    tomllib.loads(path.read_text())  # the helper writes valid TOML
    return path


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
        try:
            if httpx.get(f"{url}/healthz", timeout=0.5).json() == {"ok": True}:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError("simulator never became healthy")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_simulate_serves_and_stops_within_two_seconds(tmp_path: Path, sig: signal.Signals) -> None:
    data = plant_dict([pm5000_meter("m1", 1)])
    plant = write_toml(tmp_path / "plant.toml", data)
    url = data["simulator"]["control_url"]
    proc = subprocess.Popen([sys.executable, "-m", "deploy.cli", "simulate", "--plant", str(plant), "--paused"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_healthy(url, proc)
        assert httpx.get(f"{url}/truth", timeout=2).json()["paused"] is True
        proc.send_signal(sig)
        t0 = time.monotonic()
        assert proc.wait(timeout=5) == 0
        assert time.monotonic() - t0 < 2.0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_simulate_with_opcua_stops_within_two_seconds(tmp_path: Path) -> None:
    data = plant_dict([pm5000_meter("m1", 1), opcua_meter("gas-1", "gas")],
                      gateways=[{"id": "gw1", "kind": "modbus_tcp", "host": "127.0.0.1", "port": free_port()},
                                opcua_gateway(cert_dir=str(tmp_path / "certs"))])
    plant = write_toml(tmp_path / "plant.toml", data)
    url = data["simulator"]["control_url"]
    proc = subprocess.Popen([sys.executable, "-m", "deploy.cli", "simulate", "--plant", str(plant)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_healthy(url, proc, timeout_s=60)
        proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        assert proc.wait(timeout=10) == 0
        assert time.monotonic() - t0 < 2.0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_control_url_override(tmp_path: Path) -> None:
    data = plant_dict([pm5000_meter("m1", 1)])
    plant = write_toml(tmp_path / "plant.toml", data)
    url = f"http://127.0.0.1:{free_port()}"
    proc = subprocess.Popen([sys.executable, "-m", "deploy.cli", "simulate", "--plant", str(plant),
                             "--control-url", url], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_healthy(url, proc)
    finally:
        proc.terminate()
        assert proc.wait(timeout=5) == 0


def test_bad_plant_file_names_file_key_and_reason(tmp_path: Path) -> None:
    data = plant_dict([pm5000_meter("m1", 1, peak_kw=-5.0)])
    data["simulator"]["acceleration"] = 0
    plant = write_toml(tmp_path / "bad.toml", data)
    with pytest.raises(ConfigError) as err:
        load_config(plant)
    text = str(err.value)
    assert f"{plant}: meters.0.sim.peak_kw:" in text and "greater than or equal to 0" in text
    assert f"{plant}: simulator.acceleration:" in text
    proc = subprocess.run([sys.executable, "-m", "deploy.cli", "simulate", "--plant", str(plant)],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "meters.0.sim.peak_kw" in proc.stderr


def test_meter_on_missing_gateway_is_named(tmp_path: Path) -> None:
    data = plant_dict([pm5000_meter("m1", 1, gateway="nowhere")])
    with pytest.raises(ConfigError, match=r"meters.0 \(m1\): gateway 'nowhere' is not in \[\[gateways\]\]"):
        load_config(write_toml(tmp_path / "p.toml", data))


def test_demo_plant_validates() -> None:
    config = load_config(Path(__file__).resolve().parents[2] / "deploy" / "examples" / "demo-plant.toml")
    assert {m.map for m in config.meters} >= {"schneider_pm5000"}
