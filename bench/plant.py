"""Benchmark: a whole plant of N meters at 1 Hz through a real Mosquitto, ingest, the store and the API together.

Per N (default 1,000, 5,000 and 10,000 meters; 80 % electricity, 10 % natural gas, 10 % steam), edge agents of
at most 2,500 meters each publish one reading message per meter per second as the edge agent does (one poll per
message, the agent's seq, the energy counter with its delta and the flow, QoS 1, acks subscribed), spread evenly
over each second. One or two ingest workers (a shared subscription) store into SQLite or InfluxDB and publish
CO2e; the API follows the broker, one client reads its live stream and another asks for today's balance every
second. Reported per N: readings stored per second against readings offered, sample → live stream latency
(p50/p99: from the sample's timestamp to its `meter` event, for the 50 meters the stream client names; and to
the once-a-second `aggregate` event that folded it, measured on the oldest reading of each aggregate, so the
worst of its second), the readings the aggregates counted, the machine's load, ingest's drain time after the
last message and its own lag, balance p50/p99, CPU seconds and peak memory of every process, and the broker's
message rate (from its $SYS counters: received + sent) against the bare Mosquitto rate measured in the same run
(two QoS 1 publisher processes to one subscriber, messages of the same size, counted the same way).

The last line is one JSON object: `ratio` = broker messages per second at the largest N / bare broker rate, and
per N the figures as `n<N>_<figure>` (rates `*_per_s`, latencies `*_ms`).

    .venv/bin/python bench/plant.py [--meters 1000,5000,10000] [--duration-s 30] [--store sqlite|influx]
                                    [--workers 1|2] [--balance today|year|none] [--co2e-per-meter]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# Run as a script, bench/ comes first on sys.path and its modules would shadow the packages of the same name.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import httpx  # noqa: E402
import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from api.auth import write_key  # noqa: E402
from calc import topics  # noqa: E402
from calc.reading_codec import EdgeSample, encode_reading  # noqa: E402
from deploy.services import InfluxDB, Mosquitto, free_port, wait_for_port  # noqa: E402

SITE = "plant"
AGENT_METERS = 2500  # meters per simulated edge agent (issue 19: one agent at 2,000+ meters)
AREAS = 20
WATCHED = 50         # meters the stream client follows update by update (the rest it sees in the aggregates)
CLK_TCK = os.sysconf("SC_CLK_TCK")

# carrier -> (counter quantity, counter unit, flow quantity, flow unit, flow per hour, meter extras)
CARRIERS: dict[str, tuple[str, str, str, str, float, str]] = {
    "electricity": ("active_energy_import", "kWh", "active_power", "kW", 120.0, ""),
    "natural_gas": ("volume", "m**3", "volume_flow", "m**3/h", 30.0, ""),
    "steam": ("mass", "kg", "mass_flow", "kg/h", 900.0,
              'conditions = { pressure = "8 bar", temperature = "180 degC" }\n'),
}


def carrier_of(index: int) -> str:
    return "natural_gas" if index % 10 == 8 else "steam" if index % 10 == 9 else "electricity"


def meter_id(index: int) -> str:
    return f"m{index:05d}"


def area_of(index: int) -> str:
    return f"area{index % AREAS:02d}"


class SysBroker(Mosquitto):
    """The test Mosquitto with $SYS counters published every second (the broker's own message rate)."""

    def command(self) -> list[str]:
        args = super().command()
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(conf.read_text() + "sys_interval 1\n")
        return args


# ---- process figures from /proc ---------------------------------------------------------------------------------

def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


# ---- roles run in their own processes ---------------------------------------------------------------------------

def _client(url: str, name: str) -> mqtt.Client:
    host, port = url.split("//")[1].split(":")
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name, protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect(host, int(port))
    return client


def role_edge(url: str, agent: str, first: int, count: int, duration_s: int) -> dict[str, Any]:
    """One edge agent: `count` meters from `first`, one message per meter per second for duration_s."""
    client = _client(url, f"bench-{agent}")
    acked = [0]
    published = [0]
    client.on_publish = lambda *a: published.__setitem__(0, published[0] + 1)
    client.on_message = lambda c, u, m: acked.__setitem__(0, acked[0] + 1)
    client.loop_start()
    client.subscribe(topics.edge_ack(SITE, agent), qos=1)
    meters = [(meter_id(i), topics.reading(SITE, area_of(i), meter_id(i)), CARRIERS[carrier_of(i)])
              for i in range(first, first + count)]
    counters = [1000.0 + i for i in range(count)]
    behind_s = 0.0
    sent = 0
    t0 = time.time() + 0.5
    for second in range(duration_s):
        for k, (meter, topic, (cq, cu, fq, fu, per_h, _)) in enumerate(meters):
            due = t0 + second + k / count
            ahead = due - time.time()
            if ahead > 0.002:
                time.sleep(ahead)
            else:
                behind_s = max(behind_s, -ahead)
            flow = per_h * (1.0 + 0.1 * ((second + k) % 7))
            delta = flow / 3600.0
            counters[k] += delta
            ts = datetime.now(UTC)
            payload = encode_reading(meter, second, agent, (
                EdgeSample(ts, cq, counters[k], cu, delta=delta, interval_s=1.0),
                EdgeSample(ts, fq, flow, fu)))
            client.publish(topic, payload, qos=1)
            sent += 1
    deadline = time.monotonic() + 60
    while published[0] < sent and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(3)  # the last acks (ingest sends them every ack_interval_s)
    client.loop_stop()
    client.disconnect()
    return {"sent": sent, "published": published[0], "acked_batches": acked[0], "behind_s": round(behind_s, 3),
            "cpu_s": cpu_s(os.getpid()), "peak_mb": peak_mb(os.getpid())}


def role_bare_pub(url: str, name: str, count: int, size: int) -> dict[str, Any]:
    """A bare baseline publisher: `count` QoS 1 messages of `size` bytes, as fast as the broker takes them."""
    client = _client(url, f"bench-{name}")
    done = threading.Event()
    acked = [0]

    def on_publish(*a: Any) -> None:
        acked[0] += 1
        if acked[0] >= count:
            done.set()

    client.on_publish = on_publish
    client.loop_start()
    payload = b"x" * size
    for _ in range(count):
        client.publish("bench/bare", payload, qos=1)
    done.wait(120)
    client.loop_stop()
    client.disconnect()
    return {"acked": acked[0]}


def spawn(role: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, __file__, "--role", role, *args], stdout=subprocess.PIPE, text=True)


def result_of(proc: subprocess.Popen[str], timeout_s: float) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=timeout_s)
    if proc.returncode != 0:
        raise RuntimeError(f"a bench process failed ({proc.args!r}): exit {proc.returncode}")
    doc: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return doc


# ---- the baseline -----------------------------------------------------------------------------------------------

def bare_broker_per_s(url: str, count: int, size: int, publishers: int = 2) -> float:
    """Messages the broker handles per second (each received once and sent once, as its $SYS counters count them)
    when `publishers` QoS 1 publisher processes send `count` messages in all to one subscriber."""
    got = [0]
    first = [0.0]
    last = [0.0]
    sub = _client(url, "bench-bare-sub")

    def on_message(*a: Any) -> None:
        now = time.perf_counter()
        if got[0] == 0:
            first[0] = now
        got[0] += 1
        last[0] = now

    sub.on_message = on_message
    subscribed = threading.Event()
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.loop_start()
    sub.subscribe("bench/bare", qos=1)
    subscribed.wait(10)
    procs = [spawn("bare-pub", "--url", url, "--agent", f"bare{i}", "--count", str(count // publishers),
                   "--size", str(size)) for i in range(publishers)]
    for proc in procs:
        result_of(proc, 180)
    expect = publishers * (count // publishers)
    deadline = time.monotonic() + 30
    while got[0] < expect and time.monotonic() < deadline:
        time.sleep(0.05)
    sub.loop_stop()
    sub.disconnect()
    if got[0] < expect:
        raise RuntimeError(f"bare baseline: {got[0]} of {expect} messages delivered")
    return 2 * (expect - 1) / (last[0] - first[0])


# ---- one plant run ----------------------------------------------------------------------------------------------

def plant_toml(n: int, workdir: Path, mqtt_url: str, store: str, api_port: int, workers: int, worker: int,
               co2e_per_meter: bool = False) -> str:
    """The plant file of ingest worker `worker` (the API reads worker 0's): each worker its own identity."""
    meters = "".join(f'[[meters]]\nid = "{meter_id(i)}"\narea = "{area_of(i)}"\ncarrier = "{carrier_of(i)}"\n'
                     f"interval_s = 1.0\n{CARRIERS[carrier_of(i)][5]}" for i in range(n))
    share = '\nshare_group = "bench"' if workers > 1 else ""
    return (f'[site]\nid = "{SITE}"\nregion = "CN"\ntimezone = "Asia/Shanghai"\nstart = 2026-01-01T00:00:00Z\n\n'
            f"{meters}\n[mqtt]\nurl = \"{mqtt_url}\"\n\n{store}\n"
            f'[ingest]\nclient_id = "bench-ingest-{worker}"\n'
            f'metrics_path = "{workdir / f"ingest-metrics-w{worker}.json"}"'
            f'\nbuffer_path = "{workdir / f"buffer-w{worker}.sqlite"}"{share}\n'
            f"co2e_per_meter = {'true' if co2e_per_meter else 'false'}\n\n"
            f'[api]\nport = {api_port}\nkeys_file = "{workdir / "keys.toml"}"\ndb_path = "{workdir / "api.sqlite"}"\n')


class SysCounters:
    """The broker's cumulative $SYS message counters, followed by one subscriber."""

    def __init__(self, url: str) -> None:
        self.values: dict[str, int] = {}
        self.client = _client(url, "bench-sys")
        self.client.on_message = self._on_message
        self.client.loop_start()
        self.client.subscribe("$SYS/broker/messages/+", qos=0)

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with contextlib.suppress(ValueError):
            self.values[msg.topic.rsplit("/", 1)[1]] = int(msg.payload)

    def total(self) -> int:
        return self.values.get("received", 0) + self.values.get("sent", 0)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class StreamWatch(threading.Thread):
    """Follows the API's live stream as a client watching `meters`: sample → `meter` event latency of each of
    their readings, and of each `aggregate` event the latency of the oldest reading it folded (the worst of
    that second), and the readings the aggregates counted."""

    def __init__(self, url: str, key: str, meters: list[str]) -> None:
        super().__init__(daemon=True)
        self.url, self.key, self.meters = url, key, meters
        self.latency_ms: list[float] = []
        self.aggregate_ms: list[float] = []
        self.readings = 0
        self.events = 0
        self.ready = threading.Event()
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            with httpx.stream("GET", f"{self.url}/v1/stream", params={"meter": self.meters},
                              headers={"Authorization": f"Bearer {self.key}"},
                              timeout=httpx.Timeout(10.0, read=None)) as resp:
                event = ""
                for line in resp.iter_lines():
                    if line.startswith(": connected"):
                        self.ready.set()
                    if self.stop.is_set():
                        return
                    if line.startswith("event: "):
                        event = line[7:]
                    elif event == "meter" and line.startswith("data: "):
                        doc = json.loads(line[6:])
                        if doc.get("seq") is not None and doc.get("ts"):
                            sample = datetime.fromisoformat(doc["ts"]).timestamp()
                            self.latency_ms.append((time.time() - sample) * 1000)
                        self.events += 1
                    elif event == "aggregate" and line.startswith("data: "):
                        doc = json.loads(line[6:])
                        self.readings += doc["readings"]
                        if doc["oldest_sample"]:
                            sample = datetime.fromisoformat(doc["oldest_sample"]).timestamp()
                            self.aggregate_ms.append((time.time() - sample) * 1000)
                        self.events += 1
        except httpx.HTTPError:
            if not self.stop.is_set():
                raise


class BalancePoll(threading.Thread):
    """Asks for the day's balance once a second, timing each answer."""

    def __init__(self, client: httpx.Client, period: str) -> None:
        super().__init__(daemon=True)
        self.client, self.period = client, period
        self.times_ms: list[float] = []
        self.errors = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while self.period != "none" and not self.stop.wait(1.0):
            t = time.perf_counter()
            try:
                self.client.get("/v1/balance", params={"period": self.period}).raise_for_status()
                self.times_ms.append((time.perf_counter() - t) * 1000)
            except httpx.HTTPError:
                self.errors += 1


def metrics(workdir: Path) -> dict[str, float]:
    """Ingest's counters summed over its workers (each writes a JSON snapshot every second)."""
    total: dict[str, float] = {"stored": 0, "received_samples": 0, "duplicates": 0, "dead_lettered": 0,
                               "lag_ms": 0.0}
    for path in workdir.glob("ingest-metrics*.json"):
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        for key in ("stored", "received_samples", "duplicates", "dead_lettered"):
            total[key] += doc.get(key, 0)
        total["lag_ms"] = max(total["lag_ms"], doc.get("lag_ms", 0.0))
    return total


def run_plant(n: int, duration_s: int, store_kind: str, workers: int, broker: SysBroker,
              influx: InfluxDB | None, co2e_per_meter: bool = False, balance_period: str = "today",
              ) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"cw-bench-plant-{n}-") as tmp:
        workdir = Path(tmp)
        api_port = free_port()
        store = (f'[store]\nkind = "sqlite"\npath = "{workdir / "store.sqlite"}"\n' if influx is None else
                 f'[store]\nkind = "influxdb"\nurl = "{influx.url}"\ndatabase = "plant{n}"\n')
        files = [workdir / f"plant-w{w}.toml" for w in range(workers)]
        for w, path in enumerate(files):
            path.write_text(plant_toml(n, workdir, broker.url, store, api_port, workers, w, co2e_per_meter))
        plant_file = files[0]
        key = write_key(workdir / "keys.toml", "bench", "viewer")
        procs: dict[str, subprocess.Popen[bytes]] = {}
        try:
            for w in range(workers):
                procs[f"ingest{w}"] = subprocess.Popen(
                    [sys.executable, "-m", "deploy.cli", "ingest", "--config", str(files[w])], cwd=workdir,
                    stdout=subprocess.DEVNULL, stderr=(workdir / f"ingest{w}.log").open("wb"))
            procs["api"] = subprocess.Popen([sys.executable, "-m", "deploy.cli", "api", "--config", str(plant_file)],
                                            cwd=workdir, stdout=subprocess.DEVNULL,
                                            stderr=(workdir / "api.log").open("wb"))
            wait_for_port("127.0.0.1", api_port, 60, procs["api"])
            api = httpx.Client(base_url=f"http://127.0.0.1:{api_port}", headers={"Authorization": f"Bearer {key}"},
                               timeout=30)
            deadline = time.monotonic() + 30
            while not api.get("/v1/status").json()["mqtt_subscribed"]:
                if time.monotonic() > deadline:
                    raise RuntimeError("the API did not subscribe to the broker")
                time.sleep(0.1)
            time.sleep(2)  # ingest subscribes within a second of its start; give it its session
            sys_counters = SysCounters(broker.url)
            watched = [meter_id(i) for i in range(0, n, max(1, n // WATCHED))]
            watch = StreamWatch(f"http://127.0.0.1:{api_port}", key, watched)
            watch.start()
            if not watch.ready.wait(10):
                raise RuntimeError("the live stream did not open")
            poll = BalancePoll(api, balance_period)
            poll.start()
            pids = {name: p.pid for name, p in procs.items()}
            pids["mosquitto"] = broker.proc.pid if broker.proc else 0
            cpu0 = {name: cpu_s(pid) for name, pid in pids.items()}
            time.sleep(2.5)  # at least two $SYS updates before the start
            sys0, t0 = sys_counters.total(), time.monotonic()
            agents = [spawn("edge", "--url", broker.url, "--agent", f"agent{a}", "--first", str(first),
                            "--count", str(min(AGENT_METERS, n - first)), "--duration-s", str(duration_s))
                      for a, first in enumerate(range(0, n, AGENT_METERS))]
            edge = [result_of(p, duration_s + 180) for p in agents]
            published_at = time.monotonic()
            sys1, t1 = sys_counters.total(), published_at
            offered = 2 * sum(e["sent"] for e in edge)
            deadline = published_at + 300
            while metrics(workdir)["stored"] < offered and time.monotonic() < deadline:
                time.sleep(0.2)
            drained_s = time.monotonic() - published_at
            final = metrics(workdir)
            poll.stop.set()
            watch.stop.set()
            cpu = {name: round(cpu_s(pid) - cpu0[name], 2) for name, pid in pids.items()}
            peaks = {name: round(peak_mb(pid), 1) for name, pid in pids.items()}
            sys_counters.close()
            api.close()
        finally:
            for p in procs.values():
                p.terminate()
            for p in procs.values():
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(10)
    window_s = t1 - t0
    load = float(Path("/proc/loadavg").read_text().split()[0])
    return {
        "meters": n,
        "offered_per_s": round(offered / duration_s, 1),
        "stored_per_s": round(final["stored"] / duration_s, 1),
        "stored_fraction": round(final["stored"] / offered, 4) if offered else None,
        "absorbed_per_s": round(final["stored"] / (duration_s + drained_s), 1),   # with the drain after the last
        "dead_lettered": int(final["dead_lettered"]),
        "drain_s": round(drained_s, 2),
        "ingest_lag_ms": round(final["lag_ms"], 1),
        "stream_events": watch.events,
        "stream_p50_ms": _round(percentile(watch.latency_ms, 0.5)),
        "stream_p99_ms": _round(percentile(watch.latency_ms, 0.99)),
        "aggregate_p50_ms": _round(percentile(watch.aggregate_ms, 0.5)),
        "aggregate_p99_ms": _round(percentile(watch.aggregate_ms, 0.99)),
        "streamed_readings": watch.readings,
        "load_1m": load,
        "balance_p50_ms": _round(percentile(poll.times_ms, 0.5)),
        "balance_p99_ms": _round(percentile(poll.times_ms, 0.99)),
        "balance_errors": poll.errors,
        "broker_msgs_per_s": round((sys1 - sys0) / window_s, 1) if window_s > 0 else None,
        "edge_behind_s": max(e["behind_s"] for e in edge),
        "edge_cpu_s": round(sum(e["cpu_s"] for e in edge), 2),
        "edge_peak_mb": round(max(e["peak_mb"] for e in edge), 1),
        "cpu_s": cpu,
        "peak_mb": peaks,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", default="main", choices=["main", "edge", "bare-pub"])
    parser.add_argument("--meters", default="1000,5000,10000", help="comma-separated plant sizes")
    parser.add_argument("--duration-s", type=int, default=30, help="seconds of publishing per plant size")
    parser.add_argument("--store", choices=["sqlite", "influx"], default="sqlite")
    parser.add_argument("--workers", type=int, choices=[1, 2], default=1)
    parser.add_argument("--bare-messages", type=int, default=100_000)
    parser.add_argument("--balance", choices=["today", "year", "none"], default="today",
                        help="the period of the balance asked for every second (none: no balance requests)")
    parser.add_argument("--co2e-per-meter", action="store_true",
                        help="ingest also publishes the per-meter CO2e messages (SCADA's; off: per site only)")
    # role arguments
    parser.add_argument("--url")
    parser.add_argument("--agent")
    parser.add_argument("--first", type=int)
    parser.add_argument("--count", type=int)
    parser.add_argument("--size", type=int)
    args = parser.parse_args()
    if args.role == "edge":
        print(json.dumps(role_edge(args.url, args.agent, args.first, args.count, args.duration_s)))
        return
    if args.role == "bare-pub":
        print(json.dumps(role_bare_pub(args.url, args.agent, args.count, args.size)))
        return
    sizes = [int(s) for s in args.meters.split(",")]
    runs = []
    with tempfile.TemporaryDirectory(prefix="cw-bench-plant-") as tmp:
        broker = SysBroker(Path(tmp) / "mosquitto")
        influx = InfluxDB(Path(tmp) / "influxdb") if args.store == "influx" else None
        broker.start()
        try:
            if influx is not None:
                influx.start()
            size = len(encode_reading(meter_id(0), 0, "agent0", (
                EdgeSample(datetime.now(UTC), "active_energy_import", 1000.0, "kWh", 0.03, 1.0),
                EdgeSample(datetime.now(UTC), "active_power", 120.0, "kW"))))
            bare = bare_broker_per_s(broker.url, args.bare_messages, size)
            print(f"bare Mosquitto: {bare:.0f} messages/s received + sent (QoS 1, {size} bytes, 2 publishers)",
                  flush=True)
            for n in sizes:
                run = run_plant(n, args.duration_s, args.store, args.workers, broker, influx, args.co2e_per_meter,
                                args.balance)
                runs.append(run)
                print(json.dumps(run), flush=True)
        finally:
            broker.stop()
            if influx is not None:
                influx.stop()
    result: dict[str, Any] = {"bare_broker_per_s": round(bare, 1), "store": args.store, "workers": args.workers,
                              "duration_s": args.duration_s, "co2e_per_meter": args.co2e_per_meter,
                              "balance": args.balance}
    for run in runs:
        for k, v in run.items():
            if k != "meters" and not isinstance(v, dict):
                result[f"n{run['meters']}_{k}"] = v
    last = runs[-1]
    result["ratio"] = round(last["broker_msgs_per_s"] / bare, 4) if last["broker_msgs_per_s"] else None
    print(json.dumps(result))


if __name__ == "__main__":
    main()
