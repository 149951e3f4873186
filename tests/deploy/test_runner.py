"""Smoke test of `carbonwatch run` on the shipped demo plant: it starts, shows a non-zero balance within
30 s, and Ctrl-C stops everything within 5 s, with both embedded brokers (Mosquitto and amqtt at 3.1.1)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from deploy.runner import STOP_TIMEOUT_S
from deploy.services import free_port
from tests.deploy.harness import wait_until

pytestmark = pytest.mark.integration


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@pytest.mark.parametrize("broker", ["mosquitto", "amqtt"])
def test_run_shows_a_balance_and_stops_cleanly(tmp_path: Path, broker: str) -> None:
    api_port = free_port()
    out = (tmp_path / "run.out").open("wb")
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "deploy.cli", "run", "--api-port", str(api_port),
                             "--broker", broker], cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    try:
        key_file = tmp_path / "var" / "demo-api-key"
        wait_until("the demo API key", key_file.exists, 30)
        key = key_file.read_text().strip()
        client = httpx.Client(base_url=f"http://127.0.0.1:{api_port}",
                              headers={"Authorization": f"Bearer {key}"}, timeout=5)

        def co2e() -> float:
            try:
                resp = client.get("/v1/balance", params={"period": "today"})
            except httpx.HTTPError:
                return 0.0
            return float(resp.json()["co2e_kg"]) if resp.status_code == 200 else 0.0

        total = wait_until("a non-zero balance", co2e, timeout_s=30 - (time.monotonic() - started))
        assert total > 0
        assert client.get("/v1/balance").status_code == 200
        assert httpx.get(f"http://127.0.0.1:{api_port}/v1/balance").status_code == 401  # no key, no data
        client.close()
    finally:
        proc.send_signal(signal.SIGINT)
        stop_began = time.monotonic()
        try:
            code = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = None
        stop_s = time.monotonic() - stop_began
        out.close()
        print((tmp_path / "run.out").read_text(errors="replace"))
        print(f"stopped in {stop_s:.2f} s (the runner kills what is left after {STOP_TIMEOUT_S} s)")
    assert code == 0, "Ctrl-C must stop the system cleanly (exit 0)"
    for port in (api_port, 5020, 8021, 4841):  # API, Modbus gateway, simulator control, OPC UA server
        assert not _listening(port), f"something still listens on {port} after Ctrl-C"
