"""Store-and-forward: the broker stops, the agent (a real `carbonwatch edge` process) is killed -9 during the
outage; once both are back every reading arrives (per meter, no sequence gaps) and the energy adds up to the
simulator's truth. Then SIGTERM stops the agent cleanly, saying offline. And a long outage with a tiny spool: what
was never published is merged, and once the broker is back and ingest (an acker) acknowledges, every meter's energy
is the simulator's truth.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from calc.schema import decode
from deploy.services import Mosquitto, free_port
from edge.agent import Agent
from edge.config import load_config
from simulators.plant import SimulatedPlant
from tests.edge.helpers import Acker, Collector, eventually, unique_site

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
METERS = {"p1": 1, "p2": 2, "p3": 3}


def toml_plant(site: str, port: int, mqtt_url: str, state_dir: Path, edge_extra: str = "",
               max_power_kw: float = 500.0) -> str:
    meters = "".join(
        f'[[meters]]\nid = "{m}"\narea = "press"\ncarrier = "electricity"\ngateway = "gw1"\nunit_id = {u}\n'
        f'map = "schneider_pm5000"\ninterval_s = 0.1\nmax_power_kw = {max_power_kw}\n'
        f'sim = {{ profile = "continuous", base_kw = {50 * u}.0, peak_kw = {80 * u}.0 }}\n\n'
        for m, u in METERS.items())
    return (f'[site]\nid = "{site}"\nregion = "CN"\ntimezone = "UTC"\nstart = 2026-01-01T00:00:00Z\n\n'
            f'[[gateways]]\nid = "gw1"\nkind = "modbus_tcp"\nhost = "127.0.0.1"\nport = {port}\n\n{meters}'
            f'[simulator]\nseed = 5\nacceleration = 60.0\nstart = 2026-03-02T05:50:00Z\n'
            f'control_url = "http://127.0.0.1:{free_port()}"\n\n'
            f'[mqtt]\nurl = "{mqtt_url}"\n\n'
            f'[edge]\nagent = "edge-outage"\nstate_dir = "{state_dir}"\npublish_window = 16\n'
            f'batch_polls = 3\nbatch_max_s = 1.0\n{edge_extra}')


class AgentProcess:
    """`python -m edge --config FILE`: the same command as `carbonwatch edge`, without importing the other
    packages' subcommands (their state must not decide whether this test runs)."""

    def __init__(self, config: Path, log: Path) -> None:
        self.log = log.open("ab")
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen([sys.executable, "-m", "edge", "--config", str(config)],
                                     stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                     cwd=REPO)

    def kill9(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        self.log.close()

    def terminate(self) -> tuple[int, float]:
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(10)
        self.log.close()
        return code, time.monotonic() - t0


def spooled(state_dir: Path) -> dict[str, list[int]]:
    with sqlite3.connect(state_dir / "edge.sqlite") as db:
        rows = db.execute("SELECT meter, seq FROM spool ORDER BY id").fetchall()
    out: dict[str, list[int]] = {}
    for meter, seq in rows:
        out.setdefault(meter, []).append(seq)
    return out


def energy_samples(collector: Collector, meter: str) -> list[Any]:
    unique = {m.seq: m for m in collector.messages(meter)}  # QoS 1 may repeat a message: same seq
    return [s for seq in sorted(unique) for s in unique[seq].samples if s.quantity == "active_energy_import"]


async def test_broker_outage_and_kill9_lose_nothing(mosquitto: Mosquitto, tmp_path: Path) -> None:
    site = unique_site()
    state_dir = tmp_path / "state"
    cfg = tmp_path / "plant.toml"
    # simulated 60 times faster: a 500 kW limit would find every reading implausible (held for an engineer)
    cfg.write_text(toml_plant(site, free_port(), mosquitto.url, state_dir, max_power_kw=60_000.0))
    sim = SimulatedPlant.from_file(cfg, paused=True, serve_control=False)
    await sim.start()
    collector = Collector(mosquitto.url, site)
    acker = Acker(mosquitto.url, site, client_id=f"ingest-{site}")
    agent: AgentProcess | None = None
    try:
        start = {m: t["counters"]["active_energy_import"] for m, t in sim.truth()["meters"].items()}
        agent = AgentProcess(cfg, tmp_path / "agent.log")
        await eventually(lambda: all(collector.messages(m) for m in METERS), 30, "a baseline of every meter")
        sim.resume()
        await eventually(lambda: all(len(collector.messages(m)) >= 10 for m in METERS), 30, "readings flowing")

        await asyncio.to_thread(mosquitto.stop)  # the outage begins
        delivered_before = {m: len(collector.messages(m)) for m in METERS}
        await eventually(lambda: sum(len(v) for v in spooled(state_dir).values()) >= 45, 30,
                         "readings piling up in the spool")
        agent.kill9()  # and the agent dies during it
        agent = None
        in_spool = spooled(state_dir)
        assert all(in_spool.get(m) for m in METERS), in_spool

        await asyncio.to_thread(mosquitto.start)
        subscribed = collector.subscriptions
        await eventually(lambda: collector.subscriptions > subscribed, 30, "the collector back on the broker")
        agent = AgentProcess(cfg, tmp_path / "agent.log")
        await eventually(lambda: all(max(m.seq for m in collector.messages(meter)) > max(in_spool[meter]) + 5
                                     for meter in METERS), 30, "fresh readings after the restart")
        truth = sim.pause()["meters"]
        finals = {m: truth[m]["counters"]["active_energy_import"]["value"] for m in METERS}
        await eventually(lambda: all(energy_samples(collector, m)[-1].value == finals[m] for m in METERS), 30,
                         "every meter's final counter delivered")
        code, took_s = agent.terminate()
        agent = None
        assert code == 0
        assert took_s < 3.0
        await eventually(lambda: collector.statuses()[-1]["status"] == "offline", 10, "offline status")
    finally:
        if agent is not None:
            agent.kill9()
        collector.close()
        acker.close()
        await sim.stop()

    for meter in METERS:
        seqs = [m.seq for m in collector.messages(meter)]
        assert sorted(set(seqs)) == list(range(max(seqs) + 1)), f"{meter}: a sequence number is missing"
        # the backlog was replayed in its own order
        backlog = [s for s in seqs if s in set(in_spool[meter])]
        first_seen = list(dict.fromkeys(backlog))
        assert first_seen == sorted(first_seen), f"{meter}: backlog out of order"
        assert delivered_before[meter] < len(set(seqs))
        samples = energy_samples(collector, meter)
        assert samples[0].flags == ("first",) and sum(1 for s in samples if s.flags == ("first",)) == 1
        produced = truth[meter]["counters"]["active_energy_import"]["produced"] - start[meter]["produced"]
        assert samples[0].value == start[meter]["value"]
        assert sum(s.delta or 0 for s in samples) == produced, f"{meter}: energy lost or counted twice"
    log = (tmp_path / "agent.log").read_text()
    assert "Traceback" not in log, log[-3000:]


def spooled_payloads(state_dir: Path) -> list[tuple[str, int, bytes]]:
    with sqlite3.connect(state_dir / "edge.sqlite") as db:
        return [(m, s, bytes(p)) for m, s, p in db.execute("SELECT meter, seq, payload FROM spool ORDER BY id")]


async def test_long_outage_with_a_tiny_spool_keeps_every_meters_energy(mosquitto: Mosquitto, tmp_path: Path) -> None:
    site = unique_site()
    state_dir = tmp_path / "state"
    cfg = tmp_path / "plant.toml"
    # the simulated time runs 60 times faster, so is the implied power: above 500 kW every delta would be a spike
    # (kept apart when merging, since ingest may hold it)
    cfg.write_text(toml_plant(site, free_port(), mosquitto.url, state_dir, "spool_max_messages = 12\n", 60_000.0))
    sim = SimulatedPlant.from_file(cfg, paused=True, serve_control=False)
    await sim.start()
    acker = Acker(mosquitto.url, site, client_id=f"ingest-{site}")
    agent = Agent(load_config(cfg))
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    spool = agent.spool

    async def until(condition: Any, what: str, timeout_s: float = 30.0) -> None:
        await eventually(lambda: task.done() or condition(), timeout_s, what)
        assert not task.done(), f"the agent stopped while waiting for {what}"

    try:
        start = {m: t["counters"]["active_energy_import"] for m, t in sim.truth()["meters"].items()}
        await until(lambda: all(acker.acked_seqs(m) for m in METERS), "a baseline of every meter acknowledged")
        sim.resume()
        await until(lambda: all(len(acker.acked_seqs(m)) >= 5 for m in METERS), "readings acknowledged")

        await asyncio.to_thread(mosquitto.stop)  # a long outage: the spool fills up many times over
        await until(lambda: spool.compactions >= 30, "the full spool compacted again and again", 60)
        truth = sim.pause()["meters"]
        finals = {m: truth[m]["counters"]["active_energy_import"]["value"] for m in METERS}

        def polled_final(meter: str) -> bool:
            return any(s.quantity == "active_energy_import" and s.value == finals[meter]
                       for m, _, p in spooled_payloads(state_dir) if m == meter for s in decode(p).samples)

        await until(lambda: all(polled_final(m) for m in METERS), "the final counters spooled")
        # nothing was published meanwhile, so merging always made room (once the broker is back, a spool full of
        # messages awaiting ingest's acknowledgement may refuse some: their energy comes with the next one)
        assert spool.size <= 12 and spool.refused == 0
        holding_energy = {(m, s) for m, s, _ in spooled_payloads(state_dir)}  # later ones carry none: paused

        await asyncio.to_thread(mosquitto.start)
        await until(lambda: not holding_energy & {(m, s) for m, s, _ in spooled_payloads(state_dir)},
                    "every spooled message acknowledged by ingest and deleted", 60)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        acker.close()
        await sim.stop()

    for meter in METERS:
        readings = acker.readings(meter)  # one copy per seq
        seqs = [r.seq for r in readings]
        assert len(seqs) < max(seqs) + 1, f"{meter}: merged messages leave gaps in the sequence"
        assert {(meter, s) for s in seqs} & holding_energy <= acker.acked
        samples = [s for r in readings for s in r.samples if s.quantity == "active_energy_import"]
        produced = truth[meter]["counters"]["active_energy_import"]["produced"] - start[meter]["produced"]
        assert samples[0].value == start[meter]["value"] and samples[0].flags == ("first",)
        assert sum(s.delta or 0 for s in samples) == produced, f"{meter}: energy lost or counted twice"
        assert any(sum(s.quantity == "active_power" for s in r.samples) > sum(s.quantity == "active_energy_import"
                                                                             for s in r.samples) for r in readings), \
            f"{meter}: a merged message (one energy sample over several polls)"
