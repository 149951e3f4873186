"""Benchmark: meters polled per second by one edge agent, next to a bare pymodbus read loop with the same
concurrency against the same simulated meters, in the same run.

The simulator (`carbonwatch simulate`) and the agent (`carbonwatch edge`) run as their own processes, with a
real Mosquitto. The agent polls every meter as fast as its gateways allow and its rate is counted end to end:
polls in the reading messages received from the broker per second. A meter is polled at most once per tick of
its interval (0.01 s, the config's floor), so there are more meters behind a gateway (40) than it can serve
in one tick: a meter is always waiting, and the rate measures the agent rather than the meters' schedule
(with 20, a round of all of them often ends before the next tick and the gateway idles until it comes).
The bare loop opens one pymodbus client per gateway, as the agent does, and issues the same coalesced
requests (edge.drivers.modbus.plan) for every meter, decoding nothing and publishing nothing.
Also reports the agent's CPU (percent of one core, from /proc) and its peak memory (VmHWM).
There is no ingest here: the subscriber that counts also acknowledges (calc.acks, once a second, as ingest does), so
the agent runs as shipped (`confirm = "ingest"`) and its spool is emptied by those acknowledgements.
Last line: one JSON object; `ratio` = the median over the rounds of the agent's rate / the bare loop's rate in
the same round (each round runs the bare loop, then the agent, seconds apart).
usage: python bench/edge.py [--gateways 2] [--meters 40] [--seconds 5] [--rounds 5] [--batch-polls 10]

`--spool` measures the spool alone instead: the writer's transaction (a batch of messages in, the batch before it
deleted as acknowledged, as the agent's writer does every 20 ms) with synchronous=FULL (as shipped) and NORMAL,
alternating, in a state folder on the repository's disk (var/), not in a tmpfs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

# run as a script, bench/ comes first on sys.path and its calc*.py / edge.py would shadow our packages
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import sqlite3
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from pymodbus.client import AsyncModbusTcpClient

from calc import topics
from calc.acks import encode_acks
from calc.reading_codec import EdgeSample, encode_reading
from deploy.services import Mosquitto, free_port, wait_for_port
from edge.drivers.modbus.plan import plan_reads
from edge.maps import SCHNEIDER_PM5000
from edge.readings import CounterState
from edge.spool import Confirmed, Outgoing, Spool

REPO = Path(__file__).resolve().parents[1]
TICK_S = os.sysconf("SC_CLK_TCK")


def plant_toml(ports: list[int], meters: int, mqtt_url: str, state_dir: Path, batch_polls: int = 1) -> str:
    parts = ['[site]\nid = "bench"\nregion = "CN"\ntimezone = "UTC"\nstart = 2026-01-01T00:00:00Z\n']
    for g, port in enumerate(ports):
        parts.append(f'[[gateways]]\nid = "gw{g}"\nkind = "modbus_tcp"\nhost = "127.0.0.1"\nport = {port}\n'
                     'timeout_s = 2.0\n')
        for u in range(1, meters + 1):
            parts.append(f'[[meters]]\nid = "g{g}m{u}"\narea = "a{g}"\ncarrier = "electricity"\ngateway = "gw{g}"\n'
                         f'unit_id = {u}\nmap = "schneider_pm5000"\ninterval_s = 0.01\n'
                         'sim = { profile = "continuous", base_kw = 50.0, peak_kw = 90.0 }\n')
    parts.append(f'[simulator]\nseed = 1\nacceleration = 1.0\ncontrol_url = "http://127.0.0.1:{free_port()}"\n')
    parts.append(f'[mqtt]\nurl = "{mqtt_url}"\n')
    parts.append(f'[edge]\nagent = "bench"\nstate_dir = "{state_dir}"\npublish_window = 1024\n'
                 f'status_interval_s = 3600\nbatch_polls = {batch_polls}\nbatch_max_s = 1.0\n')
    return "\n".join(parts)


# Each process is started through its own package's command, so that one package's import trouble does not
# stop the other's (deploy.cli imports every subcommand module).
SIMULATE = ("-c", "import argparse, sys; from simulators.cli import register; p = argparse.ArgumentParser(); "
            "register(p.add_subparsers()); a = p.parse_args(sys.argv[1:]); sys.exit(a.func(a))", "simulate")


def spawn(*args: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, *args], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, cwd=REPO)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK_S  # utime + stime


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def bare_loop(ports: list[int], meters: int, seconds: float) -> float:
    """Meters read per second by one pymodbus client per gateway, the same requests as the agent's plan."""
    blocks = plan_reads(SCHNEIDER_PM5000, max_gap=8)
    count = 0
    counting = False
    running = True

    async def gateway(port: int) -> None:
        nonlocal count
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0)
        await client.connect()
        try:
            while running:  # a flag, not cancel(): Python 3.11's wait_for inside pymodbus can swallow a cancel
                for unit in range(1, meters + 1):
                    for block in blocks:
                        r = await client.read_holding_registers(block.address, count=block.count, device_id=unit)
                        assert not r.isError(), r
                    if counting:
                        count += 1
        finally:
            client.close()

    tasks = [asyncio.create_task(gateway(p)) for p in ports]
    await asyncio.sleep(1.0)  # connect and warm up
    counting = True
    t0 = time.perf_counter()
    await asyncio.sleep(seconds)
    rate = count / (time.perf_counter() - t0)
    running = False
    await asyncio.gather(*tasks)
    return rate


class Counter:
    """Counts the polls in the reading messages of the bench site arriving at the broker (a message holds
    one or more polls of one meter: its samples over the points of a PM5000), and acknowledges the messages once a
    second on the agent's ack topic, as ingest would."""

    def __init__(self, url_port: int, ack_every_s: float = 1.0) -> None:
        self.count = 0
        self.acknowledged = 0
        self._due: dict[str, set[int]] = {}
        self._seen: set[tuple[str, int]] = set()
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._stop = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-counter", protocol=mqtt.MQTTv311)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe("carbonwatch/v1/bench/+/+/reading", qos=1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self._ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", url_port)
        self.client.loop_start()
        if not self._ready.wait(10):
            raise RuntimeError("counter could not subscribe")
        self._acker = threading.Thread(target=self._ack_loop, args=(ack_every_s,), name="bench-acker", daemon=True)
        self._acker.start()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        message = json.loads(msg.payload)
        key = (message["meter"], message["seq"])
        polls = len(message["samples"]) // len(SCHNEIDER_PM5000)
        with self._lock:
            if key not in self._seen:  # what a restarted agent publishes again is not counted twice
                self._seen.add(key)
                self.count += polls
            self._due.setdefault(key[0], set()).add(key[1])

    def _ack_loop(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            with self._lock:
                due, self._due = self._due, {}
            if due:
                self.client.publish(topics.edge_ack("bench", "bench"), encode_acks("bench", due), qos=1)
                self.acknowledged += sum(len(s) for s in due.values())

    def value(self) -> int:
        with self._lock:
            return self.count

    def close(self) -> None:
        self._stop.set()
        self._acker.join(5)
        self.client.disconnect()
        self.client.loop_stop()


def agent_run(config: Path, counter: Counter, seconds: float, log: Path, others: dict[str, int]
              ) -> tuple[float, float, float, dict[str, float]]:
    """(meters per second end to end, CPU percent of one core, peak RSS MB) of one agent process, and the
    CPU percent of the other processes during the same window."""
    proc = spawn("-m", "edge", "--config", str(config), "--log-level", "WARNING", log=log)
    try:
        deadline = time.monotonic() + 30
        start = counter.value()
        while counter.value() < start + 100:  # running and publishing
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"agent did not publish; see {log}")
            time.sleep(0.05)
        time.sleep(1.0)  # warm up
        o0 = {k: cpu_s(pid) for k, pid in others.items()}
        c0, n0, t0 = cpu_s(proc.pid), counter.value(), time.perf_counter()
        time.sleep(seconds)
        c1, n1, t1 = cpu_s(proc.pid), counter.value(), time.perf_counter()
        o1 = {k: cpu_s(pid) for k, pid in others.items()}
        other = {k: 100.0 * (o1[k] - o0[k]) / (t1 - t0) for k in others}
        return (n1 - n0) / (t1 - t0), 100.0 * (c1 - c0) / (t1 - t0), peak_rss_mb(proc.pid), other
    finally:
        stop(proc)


def main(gateways: int, meters: int, seconds: float, rounds: int, batch_polls: int) -> dict[str, float | int]:
    work = Path(tempfile.mkdtemp(prefix="cw-bench-edge-"))
    ports = [free_port() for _ in range(gateways)]
    broker = Mosquitto(work / "mosquitto")
    broker.start()
    config = work / "plant.toml"
    config.write_text(plant_toml(ports, meters, broker.url, work / "state", batch_polls))
    sim = spawn(*SIMULATE, "--plant", str(config), log=work / "simulator.log")
    counter: Counter | None = None
    try:
        for port in ports:
            wait_for_port("127.0.0.1", port, 30, sim)  # type: ignore[arg-type]
        counter = Counter(broker.port)
        bare, agent, cpu, mem, sim_bare, sim_agent, broker_cpu = [], [], [], [], [], [], []
        assert broker.proc is not None
        for _ in range(rounds):  # alternate, so that machine noise hits both alike
            s0, t0 = cpu_s(sim.pid), time.perf_counter()
            bare.append(asyncio.run(bare_loop(ports, meters, seconds)))
            sim_bare.append(100.0 * (cpu_s(sim.pid) - s0) / (time.perf_counter() - t0))
            rate, cpu_pct, rss, other = agent_run(config, counter, seconds, work / "agent.log",
                                                  {"sim": sim.pid, "broker": broker.proc.pid})
            agent.append(rate)
            cpu.append(cpu_pct)
            mem.append(rss)
            sim_agent.append(other["sim"])
            broker_cpu.append(other["broker"])
    finally:
        if counter is not None:
            counter.close()
        stop(sim)
        broker.stop()
    with sqlite3.connect(work / "state" / "edge.sqlite") as db:
        left = int(db.execute("SELECT COUNT(*) FROM spool").fetchone()[0])
    agent_rate, bare_rate = statistics.median(agent), statistics.median(bare)
    # each round's agent run follows its bare run within seconds: their ratio cancels the machine's drift,
    # which moves the bare loop's rate by ±20 % between rounds here
    ratios = sorted(a / b for a, b in zip(agent, bare, strict=True))
    return {
        "gateways": gateways,
        "batch_polls": batch_polls,
        "meters": gateways * meters,
        "bare_meters_per_s": round(bare_rate, 1),
        "agent_meters_per_s": round(agent_rate, 1),
        "agent_samples_per_s": round(agent_rate * len(SCHNEIDER_PM5000), 1),
        "agent_cpu_percent": round(statistics.median(cpu), 1),
        "agent_peak_rss_mb": round(max(mem), 1),
        "simulator_cpu_percent_bare": round(statistics.median(sim_bare), 1),
        "simulator_cpu_percent_agent": round(statistics.median(sim_agent), 1),
        "broker_cpu_percent": round(statistics.median(broker_cpu), 1),
        "acknowledged_messages": counter.acknowledged if counter is not None else 0,
        "spool_rows_left": left,  # unacknowledged at the last stop (replayed at a next start)
        "ratio_min": round(ratios[0], 3),
        "ratio_max": round(ratios[-1], 3),
        "ratio": round(statistics.median(ratios), 3),
    }


def spool_commits(meters: int, commits: int, rounds: int) -> dict[str, float | int]:
    """Median and 90th percentile milliseconds of the writer's transaction, FULL against NORMAL."""
    ts = datetime(2026, 3, 2, tzinfo=UTC)
    times: dict[str, list[float]] = {"FULL": [], "NORMAL": []}
    (REPO / "var").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-spool-", dir=REPO / "var") as work:
        for r in range(rounds):
            for mode in times:  # alternate, so that the disk's and the machine's moods hit both alike
                spool = Spool(Path(work) / f"{mode}-{r}.sqlite")
                spool._db.execute(f"PRAGMA synchronous={mode}")  # the spool sets FULL; NORMAL was before
                previous: list[tuple[str, int, int]] = []
                for c in range(commits):
                    batch = []
                    for m in range(meters):
                        at = ts + timedelta(seconds=c)
                        samples = [EdgeSample(at, p.quantity, 1000.0 + c, p.unit, 1.0 if p.kind == "counter" else None,
                                              1.0 if p.kind == "counter" else None) for p in SCHNEIDER_PM5000]
                        batch.append(Outgoing(f"m{m}", f"t/m{m}", encode_reading(f"m{m}", c, "bench", samples), c,
                                              {"active_energy_import": CounterState(1000 + c, at)}))
                    t0 = time.perf_counter()
                    spool.commit(batch, Confirmed(ranges=previous), publishable=True)
                    times[mode].append((time.perf_counter() - t0) * 1000.0)
                    previous = [(f"m{m}", c, c) for m in range(meters)]
                spool.close()
    out: dict[str, float | int] = {"messages_per_commit": meters, "commits": commits * rounds}
    for mode, ms in times.items():
        ms.sort()
        out[f"{mode.lower()}_commit_ms"] = round(statistics.median(ms), 3)
        out[f"{mode.lower()}_commit_ms_p90"] = round(ms[int(len(ms) * 0.9)], 3)
    out["full_over_normal"] = round(float(out["full_commit_ms"]) / float(out["normal_commit_ms"]), 2)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gateways", type=int, default=2)
    parser.add_argument("--meters", type=int, default=40, help="meters per gateway")
    parser.add_argument("--seconds", type=float, default=5.0, help="measuring window per run")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-polls", type=int, default=10, help="[edge] batch_polls of the agent")
    parser.add_argument("--spool", action="store_true", help="the spool's transaction alone, FULL against NORMAL")
    args = parser.parse_args()
    if args.spool:
        print(json.dumps(spool_commits(args.gateways * args.meters, 200, args.rounds)))
    else:
        print(json.dumps(main(args.gateways, args.meters, args.seconds, args.rounds, args.batch_polls)))
