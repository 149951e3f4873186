"""Benchmark: one edge agent against Node-RED 4.1 + node-red-contrib-modbus on the same simulated SDM630 meters
and the same Mosquitto, side by side: CPU seconds per delivered read, peak memory, reads delivered vs offered.

Both read the same registers at the same rate: per meter, the requests of the agent's own read plan
(edge.drivers.modbus.plan over the SDM630 map: 3 input-register reads), one TCP connection per gateway of 25
meters, one request at a time per connection. Node-RED runs a generated flow per gateway: an inject node every
1/rate s -> a function node emitting one request per meter and block -> modbus-flex-getter -> a function node
decoding the float32 values and publishing one JSON message per meter read once its blocks are in -> mqtt out
(QoS 1). The agent runs as shipped (`confirm = "ingest"`, one message per poll, spool on disk); the bare
subscriber that counts also acknowledges once a second as ingest does.
A read is counted when its message reaches the subscriber and its time (the poll's) lies in the measured window;
offered = meters x rate x window. CPU is utime + stime of the tool's process tree over the window (/proc), peak
memory its VmHWM. Node-RED and contrib-modbus are installed from npm, pinned, into var/bench-node-red on first
run (modbus-serial aliased through npm `overrides`). Runs alternate tool by tool, `--rounds` times.
usage: python bench/edge_peer.py [--scenarios 1000x1,2500x1,500x4] [--seconds 20] [--rounds 3]
Last line: one JSON object; `ratio` = carbonwatch CPU per read / Node-RED CPU per read at 1,000 meters, 1 Hz
(median over the rounds of each round's own ratio).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parents[1])  # bench/edge.py would shadow the edge package

import msgspec
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.edge import SIMULATE, cpu_s, spawn, stop
from calc import topics
from calc.acks import encode_acks
from deploy.services import Mosquitto, free_port, wait_for_port
from edge.drivers.modbus.plan import plan_reads
from edge.maps import SDM630

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / "var" / "bench-node-red"
PACKAGE = {"name": "carbonwatch-bench-node-red", "private": True,
           "dependencies": {"node-red": "4.1.15", "node-red-contrib-modbus": "5.45.2"},
           # contrib-modbus names a tarball outside the registry; the registry's modbus-serial is the same library
           "overrides": {"@openp4nr/modbus-serial": "npm:modbus-serial@8.0.25"}}
# meters behind one gateway: an RS-485 segment holds up to 32 devices; and contrib-modbus's client waits at least
# commandDelay (1 ms, its floor) between requests, so one connection carries ~600 requests/s at most here
PER_GATEWAY = 25
SITE = "peer"
BLOCKS = plan_reads(SDM630, max_gap=8)  # the agent's plan with its default max_gap


def ensure_node_red() -> Path:
    """Node-RED's red.js in the cache, installing the pinned packages when missing or changed."""
    CACHE.mkdir(parents=True, exist_ok=True)
    wanted = json.dumps(PACKAGE, indent=1)
    package = CACHE / "package.json"
    red = CACHE / "node_modules" / "node-red" / "red.js"
    if not red.exists() or not package.exists() or package.read_text() != wanted:
        package.write_text(wanted)
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent"], cwd=CACHE, check=True)
    return red


def units(meters: int) -> list[int]:
    """Meters behind each gateway."""
    return [min(PER_GATEWAY, meters - start) for start in range(0, meters, PER_GATEWAY)]


def plant_toml(gateways: dict[int, tuple[int, int]], rate_hz: float, mqtt_url: str, state_dir: Path) -> str:
    """The plant file of the agent and the simulators; `gateways`: gateway number -> (port, meters behind it)."""
    parts = [f'[site]\nid = "{SITE}"\nregion = "CN"\ntimezone = "UTC"\nstart = 2026-01-01T00:00:00Z\n']
    for g, (port, behind) in gateways.items():
        parts.append(f'[[gateways]]\nid = "gw{g}"\nkind = "modbus_tcp"\nhost = "127.0.0.1"\nport = {port}\n')
        for u in range(1, behind + 1):
            parts.append(f'[[meters]]\nid = "g{g}m{u}"\narea = "a{g}"\ncarrier = "electricity"\ngateway = "gw{g}"\n'
                         f'unit_id = {u}\nmap = "eastron_sdm630"\ninterval_s = {1.0 / rate_hz}\n'
                         'sim = { profile = "continuous", base_kw = 50.0, peak_kw = 90.0 }\n')
    parts.append(f'[simulator]\nseed = 1\nacceleration = 1.0\ncontrol_url = "http://127.0.0.1:{free_port()}"\n')
    parts.append(f'[mqtt]\nurl = "{mqtt_url}"\n')
    parts.append(f'[edge]\nagent = "{SITE}"\nstate_dir = "{state_dir}"\nstatus_interval_s = 3600\n')
    return "\n".join(parts)


DECODE_JS = """
let acc = context.get('acc'); if (!acc) { acc = new Map(); context.set('acc', acc); }
const key = msg.meter + '@' + msg.t;
let read = acc.get(key); if (!read) { read = {n: 0, values: {}}; acc.set(key, read); }
const regs = msg.payload, dv = new DataView(new ArrayBuffer(4));
for (const [name, offset] of POINTS[msg.block]) {
  dv.setUint16(0, regs[offset]); dv.setUint16(2, regs[offset + 1]); read.values[name] = dv.getFloat32(0);
}
if (++read.n < NBLOCKS) return null;
acc.delete(key);
return {topic: 'nodered/' + msg.meter, payload: JSON.stringify({meter: msg.meter, ts: msg.t, values: read.values})};
"""


def node_red_flow(ports: list[int], meters: int, rate_hz: float, broker_port: int) -> list[dict[str, object]]:
    """The flow: per gateway inject -> requests -> flex-getter -> decode/assemble -> one shared mqtt out."""
    blocks = [[b.address, b.count] for b in BLOCKS]
    points = [[[p.quantity, off] for p, off in b.points] for b in BLOCKS]
    decode = f"const POINTS = {json.dumps(points)}, NBLOCKS = {len(BLOCKS)};\n{DECODE_JS}"
    nodes: list[dict[str, object]] = [
        {"id": "tab", "type": "tab", "label": "bench"},
        {"id": "broker", "type": "mqtt-broker", "broker": "127.0.0.1", "port": str(broker_port),
         "clientid": "nodered-bench", "usetls": False, "protocolVersion": "4", "keepalive": "60",
         "cleansession": True, "autoConnect": True},
        {"id": "mqttout", "type": "mqtt out", "z": "tab", "broker": "broker", "qos": "1", "retain": "false",
         "topic": "", "wires": []},
    ]
    for g, (port, behind) in enumerate(zip(ports, units(meters), strict=True)):
        unit_ids = list(range(1, behind + 1))
        poll = (f"const t = Date.now(), B = {json.dumps(blocks)};\n"
                f"for (const u of {json.dumps(unit_ids)}) for (let b = 0; b < B.length; b++)\n"
                f"  node.send({{payload: {{fc: 4, unitid: u, address: B[b][0], quantity: B[b][1]}}, "
                f"meter: 'g{g}m' + u, block: b, t}});\nreturn null;")
        nodes += [
            {"id": f"client{g}", "type": "modbus-client", "name": f"gw{g}", "clienttype": "tcp",
             "bufferCommands": True, "stateLogEnabled": False, "queueLogEnabled": False, "failureLogEnabled": False,
             "tcpHost": "127.0.0.1", "tcpPort": str(port), "tcpType": "DEFAULT", "unit_id": "1",
             "commandDelay": "1", "clientTimeout": "1000", "reconnectOnTimeout": True, "reconnectTimeout": "2000",
             "parallelUnitIdsAllowed": False, "showErrors": False, "showWarnings": False, "showLogs": False},
            {"id": f"inject{g}", "type": "inject", "z": "tab", "props": [{"p": "payload"}], "repeat": str(1 / rate_hz),
             "crontab": "", "once": True, "onceDelay": "1", "topic": "", "payload": "", "payloadType": "date",
             "wires": [[f"poll{g}"]]},
            {"id": f"poll{g}", "type": "function", "z": "tab", "func": poll, "outputs": 1, "wires": [[f"get{g}"]]},
            {"id": f"get{g}", "type": "modbus-flex-getter", "z": "tab", "server": f"client{g}",
             "showStatusActivities": False, "showErrors": False, "showWarnings": False, "useIOFile": False,
             "emptyMsgOnFail": False, "keepMsgProperties": True, "delayOnStart": False,
             "wires": [[f"decode{g}"], []]},
            {"id": f"decode{g}", "type": "function", "z": "tab", "func": decode, "outputs": 1, "wires": [["mqttout"]]},
        ]
    return nodes


class _Stamp(msgspec.Struct):
    ts: str


class _AgentMessage(msgspec.Struct):
    meter: str
    seq: int
    samples: list[_Stamp]


class _NodeRedMessage(msgspec.Struct):
    ts: float


_AGENT = msgspec.json.Decoder(_AgentMessage)
_NODE_RED = msgspec.json.Decoder(_NodeRedMessage)


class Subscriber:
    """Counts reads at the broker per tool by the poll time they carry, and acknowledges the agent's messages
    once a second on its ack topic, as ingest would."""

    def __init__(self, port: int) -> None:
        self.stamps: dict[str, list[float]] = {"agent": [], "nodered": []}
        self.arrived: dict[str, list[float]] = {"agent": [], "nodered": []}  # when each read came, s
        self.lags: dict[str, list[float]] = {"agent": [], "nodered": []}  # arrival - poll time, s
        self._seen: set[tuple[str, int]] = set()
        self._due: dict[str, set[int]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-peer-counter", protocol=mqtt.MQTTv311)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(
            [(f"carbonwatch/v1/{SITE}/+/+/reading", 1), ("nodered/#", 1)])
        self.client.on_subscribe = lambda c, u, mid, rcs, p: ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not ready.wait(10):
            raise RuntimeError("subscriber could not subscribe")
        self._acker = threading.Thread(target=self._ack_loop, name="bench-acker", daemon=True)
        self._acker.start()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        if msg.topic.startswith("nodered/"):
            ts = _NODE_RED.decode(msg.payload).ts / 1000.0
            now = time.time()
            with self._lock:
                self.stamps["nodered"].append(ts)
                self.arrived["nodered"].append(now)
                self.lags["nodered"].append(now - ts)
            return
        message = _AGENT.decode(msg.payload)  # only what is counted: a subscriber behind delays the counts
        key = (message.meter, message.seq)
        with self._lock:
            self._due.setdefault(key[0], set()).add(key[1])
            if key in self._seen:  # published again: one read
                return
            self._seen.add(key)
            polls = {s.ts for s in message.samples}
            stamps = [datetime.fromisoformat(ts).timestamp() for ts in polls]
            now = time.time()
            self.stamps["agent"] += stamps
            self.arrived["agent"] += [now] * len(stamps)
            self.lags["agent"].append(now - stamps[0])

    def _ack_loop(self) -> None:
        while not self._stop.wait(1.0):
            with self._lock:
                due, self._due = self._due, {}
            if due:
                self.client.publish(topics.edge_ack(SITE, SITE), encode_acks(SITE, due), qos=1)

    def count(self, tool: str, t0: float = 0.0, t1: float = float("inf"), arrived: bool = False) -> int:
        """Reads polled in [t0, t1), or that arrived then."""
        with self._lock:
            return sum(1 for t in (self.arrived if arrived else self.stamps)[tool] if t0 <= t < t1)

    def close(self) -> None:
        self._stop.set()
        self._acker.join(5)
        self.client.disconnect()
        self.client.loop_stop()


def tree(pid: int) -> list[int]:
    """pid and its descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def tree_cpu_s(pid: int) -> float:
    total = 0.0
    for p in tree(pid):
        with contextlib.suppress(OSError, IndexError):  # a thread or child that just ended
            total += cpu_s(p)
    return total


def tree_peak_mb(pid: int) -> float:
    total = 0.0
    for p in tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            pass
    return total


def measure(tool: str, proc: subprocess.Popen[bytes], sub: Subscriber, meters: int, rate_hz: float,
            seconds: float, log: Path, others: dict[str, int]) -> dict[str, float]:
    """Wait until the tool delivers, warm up, then one window: CPU, reads, memory of the tool."""
    try:
        deadline = time.monotonic() + 180  # a subscriber still behind with the last tool's reads delays the first
        start = sub.count(tool)
        while sub.count(tool) < start + meters:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{tool} did not publish; see {log}")
            time.sleep(0.1)
        time.sleep(5.0)  # warm up
        o0 = {k: tree_cpu_s(p) for k, p in others.items()}
        c0, t0 = tree_cpu_s(proc.pid), time.time()
        time.sleep(seconds)
        c1, t1 = tree_cpu_s(proc.pid), time.time()
        o1 = {k: tree_cpu_s(p) for k, p in others.items()}
        peak = tree_peak_mb(proc.pid)
        # reads of the window still on their way (Node-RED's arrive up to ~20 s late here): until all are in, or
        # none came for 6 s after the first, or a minute
        offered = meters * rate_hz * (t1 - t0)
        reads, last_change, settle = 0, time.monotonic(), time.monotonic() + 60
        while reads < offered - 0.5 and time.monotonic() < settle:
            time.sleep(1.0)
            if (now := sub.count(tool, t0, t1)) != reads:
                reads, last_change = now, time.monotonic()
            elif reads and time.monotonic() - last_change > 6.0:
                break
        lags = sorted(sub.lags[tool][-1000:])
        print(f"#   {tool}: lag p50 {lags[len(lags) // 2]:.3f} s, max {lags[-1]:.3f} s; {len(sub.stamps[tool])} reads",
              flush=True)
    finally:
        stop(proc)
    cpu = c1 - c0
    # CPU per read over the reads that arrived in the window: a tool running behind works on older polls then
    handled = sub.count(tool, t0, t1, arrived=True)
    out = {"cpu_us_per_read": 1e6 * cpu / max(handled, 1), "cpu_percent": 100.0 * cpu / (t1 - t0),
           "reads_per_s": handled / (t1 - t0), "delivered": reads / offered, "peak_mb": peak}
    out.update({f"{k}_cpu_percent": 100.0 * (o1[k] - o0[k]) / (t1 - t0) for k in others})
    return out


def scenario(meters: int, rate_hz: float, seconds: float, rounds: int, sim_procs: int, work: Path,
             broker: Mosquitto, sub: Subscriber, red: Path) -> dict[str, float]:
    behind = units(meters)
    ports = [free_port() for _ in behind]
    everything = {g: (port, n) for g, (port, n) in enumerate(zip(ports, behind, strict=True))}
    sims: list[subprocess.Popen[bytes]] = []
    serving: dict[int, subprocess.Popen[bytes]] = {}
    for s in range(min(sim_procs, len(ports))):  # gateways spread over simulator processes
        mine = {g: everything[g] for g in range(s, len(ports), sim_procs)}
        (work / f"sim{s}.toml").write_text(plant_toml(mine, rate_hz, broker.url, work / "unused"))
        sims.append(spawn(*SIMULATE, "--plant", str(work / f"sim{s}.toml"), log=work / f"sim{s}.log"))
        serving.update({everything[g][0]: sims[-1] for g in mine})
    results: dict[str, list[dict[str, float]]] = {"agent": [], "nodered": []}
    try:
        for port in ports:
            wait_for_port("127.0.0.1", port, 60, serving[port])  # type: ignore[arg-type]
        assert broker.proc is not None
        others = {"broker": broker.proc.pid, **{f"sim{i}": p.pid for i, p in enumerate(sims)}}
        for r in range(rounds):
            userdir = CACHE
            flow = work / f"flow-{meters}x{rate_hz}.json"
            flow.write_text(json.dumps(node_red_flow(ports, meters, rate_hz, broker.port)))
            log = work / "nodered.log"
            with log.open("ab") as out:
                proc = subprocess.Popen(["node", str(red), "--userDir", str(userdir), "--port", str(free_port()),
                                         str(flow)], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            results["nodered"].append(measure("nodered", proc, sub, meters, rate_hz, seconds, log, others))
            config = work / f"agent-{meters}x{rate_hz}-{r}.toml"
            config.write_text(plant_toml(everything, rate_hz, broker.url, work / f"state-{meters}x{rate_hz}-{r}"))
            log = work / "agent.log"
            proc = spawn("-m", "edge", "--config", str(config), "--log-level", "WARNING", log=log)
            results["agent"].append(measure("agent", proc, sub, meters, rate_hz, seconds, log, others))
            a, n = results["agent"][-1], results["nodered"][-1]
            print(f"# {meters} meters x {rate_hz} Hz round {r}: agent {a['cpu_us_per_read']:.0f} us/read "
                  f"({a['delivered']:.3f} delivered), Node-RED {n['cpu_us_per_read']:.0f} us/read "
                  f"({n['delivered']:.3f}), ratio {a['cpu_us_per_read'] / n['cpu_us_per_read']:.3f}", flush=True)
    finally:
        for p in sims:
            stop(p)
    out: dict[str, float] = {"meters": meters, "rate_hz": rate_hz, "offered_per_s": meters * rate_hz}
    for tool, runs in results.items():
        for k in runs[0]:
            vals = [run[k] for run in runs]
            out[f"{tool}_{k}"] = round(max(vals) if k == "peak_mb" else statistics.median(vals), 4)
    ratios = sorted(a["cpu_us_per_read"] / n["cpu_us_per_read"] for a, n in zip(results["agent"], results["nodered"],
                                                                              strict=True))
    out.update({"ratio": round(statistics.median(ratios), 3), "ratio_min": round(ratios[0], 3),
                "ratio_max": round(ratios[-1], 3)})
    return out


def main(scenarios: list[tuple[int, float]], seconds: float, rounds: int, sim_procs: int) -> dict[str, object]:
    red = ensure_node_red()
    work = Path(tempfile.mkdtemp(prefix="cw-bench-peer-"))
    broker = Mosquitto(work / "mosquitto")
    broker.start()
    sub: Subscriber | None = None
    try:
        sub = Subscriber(broker.port)
        load = [round(x, 2) for x in os.getloadavg()]
        results = [scenario(m, hz, seconds, rounds, sim_procs, work, broker, sub, red) for m, hz in scenarios]
    finally:
        if sub is not None:
            sub.close()
        broker.stop()
    summary: dict[str, object] = {"loadavg_start": load, "loadavg_end": [round(x, 2) for x in os.getloadavg()],
                                  "seconds": seconds, "rounds": rounds}
    for res in results:
        tag = f"{int(res['meters'])}x{res['rate_hz']:g}hz"
        print(json.dumps(res), flush=True)
        summary[f"ratio_{tag}"] = res["ratio"]
        for tool in ("agent", "nodered"):
            summary[f"{tool}_reads_per_s_{tag}"] = round(res[f"{tool}_reads_per_s"], 1)
            summary[f"{tool}_delivered_{tag}"] = round(res[f"{tool}_delivered"], 4)
            summary[f"{tool}_cpu_us_per_read_{tag}"] = round(res[f"{tool}_cpu_us_per_read"], 1)
            summary[f"{tool}_peak_mb_{tag}"] = round(res[f"{tool}_peak_mb"], 1)
        if res["meters"] == 1000 and res["rate_hz"] == 1.0:
            summary["ratio"] = res["ratio"]
    return summary


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", default="1000x1,2500x1,500x4", help="METERSxHZ,...")
    parser.add_argument("--seconds", type=float, default=20.0, help="measuring window per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sim-procs", type=int, default=4, help="simulator processes the gateways are spread over")
    args = parser.parse_args()
    chosen = [(int(m), float(hz)) for m, hz in (s.split("x") for s in args.scenarios.split(","))]
    print(json.dumps(main(chosen, args.seconds, args.rounds, args.sim_procs)))
