"""The edge clock offset: the simulator writes it (plant file, POST/DELETE /edge_clock) and a Python process started
with `simulators.edgeclock.preload_env` (libfaketime) sees its wall clock jump there and back while its monotonic
clock runs on, and its sleeps, thread waits and asyncio timers keep working."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from simulators.edgeclock import LIBFAKETIME, build_sleepfix, offset_text, preload_env, remove_shm
from simulators.plant import SimulatedPlant
from tests.simulators.conftest import plant_config, pm5000_meter

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not LIBFAKETIME.exists() or shutil.which("gcc") is None,
                                 reason="needs Debian's libfaketime and gcc (deploy/test.sh installs them)")]

DAY_S = 86400.0
TOLERANCE_S = 30.0  # offsets are a day; this only absorbs how late a line is read on a loaded machine

# the stand-in for the edge: every clock it has, after a real sleep, a thread wait and an asyncio timer
CHILD = """
import asyncio, json, sys, threading, time
from datetime import UTC, datetime
async def tick():
    await asyncio.sleep(0.02)
while True:
    time.sleep(0.02)
    threading.Event().wait(0.01)
    asyncio.run(tick())
    print(json.dumps({"wall": time.time(), "now": datetime.now(UTC).timestamp(), "mono": time.monotonic()}),
          flush=True)
"""


class Child:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.last_mono: float | None = None

    async def line(self) -> dict[str, float]:
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), 30)
        assert raw, f"the child exited: {await self._stderr()}"
        body: dict[str, float] = json.loads(raw)
        body["real"] = time.time()  # this process's clock is not faked
        if self.last_mono is not None:  # the monotonic clock never jumps with the wall clock
            assert 0 <= body["mono"] - self.last_mono < TOLERANCE_S, (self.last_mono, body)
        self.last_mono = body["mono"]
        return body

    async def until_offset(self, offset_s: float, max_lines: int = 2000) -> dict[str, float]:
        """Lines until the child's wall clock (time.time() and datetime.now()) is offset_s off the real one."""
        for _ in range(max_lines):
            body = await self.line()
            if abs(body["wall"] - body["real"] - offset_s) < TOLERANCE_S:
                assert abs(body["now"] - body["real"] - offset_s) < TOLERANCE_S, body
                return body
        raise AssertionError(f"the child's clock never reached {offset_s:+} s")

    async def _stderr(self) -> str:
        assert self.proc.stderr is not None
        return (await self.proc.stderr.read()).decode(errors="replace")


@pytest.fixture
async def plant(tmp_path: Path) -> AsyncIterator[tuple[SimulatedPlant, httpx.AsyncClient]]:
    config = plant_config([pm5000_meter("pm", 1)], edge_clock_file=str(tmp_path / "edge-clock.rc"),
                          edge_clock_offset_s=-3600)
    async with SimulatedPlant(config) as plant, httpx.AsyncClient(base_url=plant.control_url, timeout=5) as http:
        yield plant, http


@pytest.fixture
async def child(plant: tuple[SimulatedPlant, httpx.AsyncClient], tmp_path: Path) -> AsyncIterator[Child]:
    sim, _ = plant
    assert sim.edge_clock is not None
    env = preload_env(sim.edge_clock.path, build_sleepfix(tmp_path / "sleepfix"))
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", CHILD, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE, env=env)
    try:
        yield Child(proc)
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        remove_shm(proc.pid)


async def test_the_edge_wall_clock_jumps_a_day_each_way_and_its_monotonic_clock_does_not(
        plant: tuple[SimulatedPlant, httpx.AsyncClient], child: Child) -> None:
    _, http = plant
    first = await child.until_offset(-3600.0, max_lines=1)  # from the plant file, from the first line on
    assert (await http.get("/edge_clock")).json()["seconds"] == -3600.0
    r = await http.post("/edge_clock", json={"seconds": DAY_S})
    assert r.status_code == 200 and r.json()["seconds"] == DAY_S
    ahead = await child.until_offset(DAY_S)
    r = await http.post("/edge_clock", json={"seconds": -DAY_S})
    assert r.status_code == 200
    behind = await child.until_offset(-DAY_S)
    assert (await http.delete("/edge_clock")).json()["seconds"] == 0.0
    back = await child.until_offset(0.0)
    # a day either way in the wall clock; the monotonic clock only moved by the real time in between
    assert ahead["wall"] - first["wall"] > DAY_S
    assert behind["wall"] < ahead["wall"] - 2 * DAY_S + TOLERANCE_S
    assert back["mono"] - first["mono"] == pytest.approx(back["real"] - first["real"], abs=TOLERANCE_S)


async def test_edge_clock_requests_are_checked(plant: tuple[SimulatedPlant, httpx.AsyncClient]) -> None:
    _, http = plant
    for bad in ({"seconds": "soon"}, {"seconds": 1e12}, {}, {"seconds": 1, "extra": 2}):
        assert (await http.post("/edge_clock", json=bad)).status_code == 422, bad
    assert (await http.get("/edge_clock")).json()["seconds"] == -3600.0


async def test_no_edge_clock_without_its_file() -> None:
    config = plant_config([pm5000_meter("pm", 1)])
    async with SimulatedPlant(config) as sim, httpx.AsyncClient(base_url=sim.control_url, timeout=5) as http:
        r = await http.post("/edge_clock", json={"seconds": 60})
        assert r.status_code == 409 and "edge_clock_file" in r.text


def test_offsets_as_libfaketime_reads_them(tmp_path: Path) -> None:
    assert [offset_text(v) for v in (86400, -86400.0, 0, 1.5, -0.25)] == ["+86400", "-86400", "+0", "+1.5", "-0.25"]
    with pytest.raises(ValueError):
        offset_text(float("nan"))
    with pytest.raises(Exception, match="edge_clock_file"):
        plant_config([pm5000_meter("pm", 1)], edge_clock_offset_s=60)
    cfg: Any = plant_config([pm5000_meter("pm", 1)], edge_clock_file=str(tmp_path / "x.rc"))
    assert SimulatedPlant(cfg).edge_clock is not None and (tmp_path / "x.rc").read_text() == "+0\n"
