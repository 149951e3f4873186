"""`carbonwatch run` on the shipped demo plant, for real: it starts and shows a balance, Ctrl-C stops everything;
a service killed with SIGKILL (ingest, the edge, the embedded broker) is restarted and the balance keeps growing;
a service that crashes at once backs off instead of spinning, and Ctrl-C during a backoff wait exits 0 and
leaves nothing running."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from deploy.runner import STOP_TIMEOUT_S
from deploy.services import free_port
from deploy.supervisor import BACKOFF_FIRST_S, BACKOFF_MAX_S, pid_alive
from tests.deploy.harness import wait_until

pytestmark = pytest.mark.integration

EXIT_LINE = re.compile(r"^(?P<name>\S+) exited unexpectedly \((?P<how>[^)]*)\) after [\d.]+ s; restart "
                       r"(?P<n>\d+) in (?P<delay>[\d.]+) s; log: (?P<log>\S+)$")


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class Run:
    """One `carbonwatch run` in a folder of its own: its console lines, the pids it reports, its balance."""

    def __init__(self, workdir: Path, *extra: str) -> None:
        self.workdir = workdir
        self.api_port = free_port()
        self.out_path = workdir / "run.out"
        self.seen_pids: set[int] = set()
        self.seen_lines: dict[str, float] = {}  # console line -> monotonic time the test first saw it
        with self.out_path.open("wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "deploy.cli", "run", "--api-port", str(self.api_port),
                                          *extra], cwd=workdir, stdout=out, stderr=subprocess.STDOUT)
        self.client: httpx.Client | None = None

    def lines(self) -> list[str]:
        text = self.out_path.read_text(errors="replace")
        now = time.monotonic()
        for line in text.splitlines():
            self.seen_lines.setdefault(line.strip(), now)
        return [line.strip() for line in text.splitlines()]

    def pids(self) -> dict[str, int]:
        try:
            state = json.loads((self.workdir / "var" / "run.json").read_text())
        except (OSError, ValueError):
            return {}
        pids = {name: int(s["pid"]) for name, s in state.items() if s["pid"]}
        self.seen_pids |= set(pids.values())
        return pids

    def wait_running(self) -> None:
        wait_until("the table of a running plant", lambda: any("Press Ctrl-C" in line for line in self.lines()), 90)
        key = (self.workdir / "var" / "demo-api-key").read_text().strip()
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.api_port}",
                                   headers={"Authorization": f"Bearer {key}"}, timeout=5)
        self.pids()

    def co2e_kg(self) -> float:
        assert self.client is not None
        try:
            resp = self.client.get("/v1/balance", params={"period": "today"})
        except httpx.HTTPError:
            return 0.0
        return float(resp.json()["co2e_kg"]) if resp.status_code == 200 else 0.0

    def site_intensity(self) -> dict[str, Any] | None:
        """Today's intensity of the whole site, once the demo has counted product; None before."""
        assert self.client is not None
        try:
            resp = self.client.get("/v1/balance", params={"period": "today"})
        except httpx.HTTPError:
            return None
        rows = resp.json().get("intensity", []) if resp.status_code == 200 else []
        return next((r for r in rows if r["level"] == "site" and r["co2e_kg_per_unit"] is not None), None)

    def wait_growth(self, what: str, timeout_s: float = 60) -> float:
        before = self.co2e_kg()
        return wait_until(what, lambda: (v := self.co2e_kg()) > before and v, timeout_s)

    def interrupt(self) -> tuple[int | None, float]:
        """Ctrl-C; returns (exit code, seconds it took)."""
        self.pids()
        began = time.monotonic()
        self.proc.send_signal(signal.SIGINT)
        try:
            code: int | None = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            code = None
        return code, time.monotonic() - began

    def close(self) -> None:
        """Whatever happened: the runner and every child it ever reported are gone afterwards."""
        if self.client is not None:
            self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.pids()
        for pid in self.seen_pids:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        print(self.out_path.read_text(errors="replace"))

    def assert_nothing_left(self) -> None:
        self.pids()
        alive = sorted(pid for pid in self.seen_pids if pid_alive(pid) and not _zombie(pid))
        assert not alive, f"children of the runner still running after it stopped: {alive}"
        for port in (self.api_port, 5020, 8021, 4841):  # API, Modbus gateway, simulator control, OPC UA server
            assert not _listening(port), f"something still listens on {port} after Ctrl-C"


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


@pytest.fixture
def run_in(tmp_path: Path) -> Iterator[list[Run]]:
    runs: list[Run] = []
    try:
        yield runs
    finally:
        for run in runs:
            run.close()


@pytest.mark.parametrize("broker", ["mosquitto", "amqtt"])
def test_run_shows_a_balance_and_stops_cleanly(tmp_path: Path, run_in: list[Run], broker: str) -> None:
    run = Run(tmp_path, "--broker", broker)
    run_in.append(run)
    run.wait_running()
    total = wait_until("a non-zero balance", run.co2e_kg, 60)
    assert total > 0
    if broker == "mosquitto":  # the demo's press line counts product from the start: the site has an intensity
        began = time.monotonic()
        site = wait_until("the site's intensity", run.site_intensity, 90)
        print(f"intensity {site['co2e_kg_per_unit']:.4g} {site['unit']} after {time.monotonic() - began:.0f} s more")
        assert site["co2e_kg_per_unit"] == pytest.approx(site["co2e_kg"] / site["production"])
    assert httpx.get(f"http://127.0.0.1:{run.api_port}/v1/balance").status_code == 401  # no key, no data
    code, stop_s = run.interrupt()
    print(f"stopped in {stop_s:.2f} s (the runner kills what is left of each stage after {STOP_TIMEOUT_S} s)")
    assert code == 0, "Ctrl-C must stop the system cleanly (exit 0)"
    run.assert_nothing_left()


def test_killed_services_come_back_and_the_balance_keeps_growing(tmp_path: Path, run_in: list[Run]) -> None:
    run = Run(tmp_path, "--broker", "mosquitto")
    run_in.append(run)
    run.wait_running()
    wait_until("a non-zero balance", run.co2e_kg, 60)
    for victim in ("ingest", "edge", "mosquitto"):
        pid = run.pids()[victim]
        seen_lines = len(run.lines())
        os.kill(pid, signal.SIGKILL)

        def replaced(victim: str = victim, pid: int = pid) -> bool:
            new = run.pids().get(victim)
            return new is not None and new != pid

        wait_until(f"a new {victim} process", replaced, 60)
        exits = [m for line in run.lines() if (m := EXIT_LINE.match(line)) and m["name"] == victim]
        assert len(exits) == 1, run.lines()
        assert exits[0]["how"] == "signal SIGKILL" and exits[0]["n"] == "1"
        assert exits[0]["log"].endswith(f"logs/{victim}.log")
        if victim == "mosquitto":  # ingest and the edge are started again after the broker, in that order
            def restarts(start: int = seen_lines) -> list[str]:
                return [line.split()[0] for line in run.lines()[start:] if " started again " in line]

            wait_until("three restarts after the broker was killed", lambda: len(restarts()) >= 3, 60)
            assert restarts()[:3] == ["mosquitto", "ingest", "edge"], run.lines()
        run.wait_growth(f"the balance growing after {victim} was killed")
    assert run.proc.poll() is None, "the runner must not stop the plant when a service dies"
    code, _ = run.interrupt()
    assert code == 0
    run.assert_nothing_left()


def test_a_crashing_service_backs_off_and_ctrl_c_during_the_wait_stops_everything(tmp_path: Path,
                                                                                   run_in: list[Run]) -> None:
    # the edge cannot create its state folder where a file is: it exits with code 1 at every start
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "edge").write_text("not a folder")
    run = Run(tmp_path, "--broker", "mosquitto")
    run_in.append(run)
    run.wait_running()

    def edge_exits() -> list[re.Match[str]]:
        return [m for line in run.lines() if (m := EXIT_LINE.match(line)) and m["name"] == "edge"]

    # wait until a restart is more than two seconds away
    wait_until("a backoff of at least 2 s", lambda: (e := edge_exits()) and float(e[-1]["delay"]) >= 2.0, 120, 0.02)
    code, stop_s = run.interrupt()
    exits = edge_exits()
    assert [int(m["n"]) for m in exits] == list(range(1, len(exits) + 1))
    assert all(m["how"] == "exit code 1" for m in exits)
    delays = [float(m["delay"]) for m in exits]
    for n, delay in enumerate(delays, start=1):  # capped exponential with equal jitter: in [ceiling/2, ceiling]
        ceiling = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (n - 1))
        assert ceiling / 2 - 0.05 <= delay <= ceiling + 0.05, (n, delays)
    # it did not spin: each restart came no sooner than its announced delay (lower bounds only)
    seen = [run.seen_lines[m.group(0)] for m in exits]
    for (earlier, later), delay in zip(itertools.pairwise(seen), delays, strict=False):
        assert later - earlier >= delay - 0.2, (seen, delays)
    assert code == 0, f"Ctrl-C during a backoff must exit 0 (took {stop_s:.1f} s)"
    last = run.lines().index(exits[-1].group(0))
    assert not any(line.startswith("edge started again") for line in run.lines()[last:]), \
        "the edge was started again after Ctrl-C"
    run.assert_nothing_left()
