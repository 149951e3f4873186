"""Benchmark: readings per second that ingest stores (SQLite, InfluxDB) next to bare storing consumers.

One fixed set of batched reading messages is queued once in a real Mosquitto for five persistent sessions;
then each consumer drains its own session in a process of its own, measured the same way (connect to last
reading received or stored): a bare paho subscriber that only receives; a bare storing consumer that decodes
the same JSON and writes the same rows, nothing else (SQLite `executemany`, and InfluxDB line protocol), one
transaction or request per 500 messages; ingest into SQLite; ingest into InfluxDB. The last line printed is one
JSON object: `ratio` = SQLite ingest rate / bare SQLite storing rate, `influx_ratio` = InfluxDB ingest rate /
bare line-protocol writer rate, `receive_ratio` = SQLite ingest rate / bare subscriber rate, `*_per_s` rates,
CPU seconds and peak memory of each consumer process.

    .venv/bin/python bench/ingest.py [--messages 4000] [--samples 50] [--meters 20]
"""

from __future__ import annotations

import argparse
import json
import resource
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# Run as a script, this folder would come first on sys.path and its modules (bench/calc.py, this very
# ingest.py) would shadow the packages of the same name: put the repository root there instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import httpx  # noqa: E402
import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from calc import topics  # noqa: E402
from deploy.services import InfluxDB, Mosquitto  # noqa: E402

T0 = datetime(2026, 3, 1, tzinfo=UTC)
SITE = "bench"


def plant_toml(meters: int, mqtt_url: str, store: str, client_id: str, workdir: Path) -> str:
    lines = ['[site]\nid = "bench"\nregion = "CN"\nstart = 2026-01-01T00:00:00Z\n']
    for m in range(meters):
        lines.append(f'[[meters]]\nid = "m{m:03d}"\narea = "a{m % 4}"\ncarrier = "electricity"\n')
    lines.append(f'[mqtt]\nurl = "{mqtt_url}"\nprotocol = "5"\n')
    lines.append(store)
    lines.append(f'[ingest]\nclient_id = "{client_id}"\n'
                 f'buffer_path = "{workdir / (client_id + "-buffer.sqlite")}"\n'
                 f'metrics_path = "{workdir / (client_id + "-metrics.json")}"\n')
    return "\n".join(lines)


def messages(n: int, samples: int, meters: int) -> list[tuple[str, bytes]]:
    """n messages of `samples` one-second counter readings, round robin over the meters."""
    out = []
    per_meter_seq = [0] * meters
    for i in range(n):
        m = i % meters
        seq = per_meter_seq[m]
        per_meter_seq[m] += 1
        base = T0 + timedelta(seconds=seq * samples)
        body = []
        for k in range(samples):
            ts = (base + timedelta(seconds=k)).isoformat().replace("+00:00", "Z")
            body.append(f'{{"ts":"{ts}","quantity":"active_energy_import","value":{1000 + seq * samples + k}.5,'
                        f'"unit":"kWh","delta":0.0125,"interval_s":1.0,"quality":"good"}}')
        payload = f'{{"v":1,"meter":"m{m:03d}","seq":{seq},"samples":[{",".join(body)}]}}'.encode()
        out.append((topics.reading(SITE, f"a{m % 4}", f"m{m:03d}"), payload))
    return out


def usage() -> dict[str, float]:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {"cpu_s": ru.ru_utime + ru.ru_stime, "peak_mb": ru.ru_maxrss / 1024.0}


# ---- consumer roles (each runs in its own process) ----------------------------------------------------------

def drain(url: str, client_id: str, on_message: Callable[..., None], done: threading.Event, prep: bool,
          then: Callable[[], None] | None = None) -> tuple[float, float, float]:
    """A consumer's persistent session on the readings, drained (unless `prep`, which only makes the session) till
    `done`; (elapsed s from connect, CPU s, peak MB) of this process, measured the same way for every consumer."""
    host, port = url.removeprefix("mqtt://").split(":")
    subscribed = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False,
                         protocol=mqtt.MQTTv311)
    client.on_message = on_message
    client.on_subscribe = lambda *a: subscribed.set()
    before = usage()
    t0 = time.perf_counter()
    client.connect(host, int(port))
    client.subscribe(f"{topics.ROOT}/{SITE}/+/+/reading", qos=1)
    client.loop_start()
    subscribed.wait(30)
    if not prep:
        done.wait(600)
        if then is not None:
            then()
    elapsed = time.perf_counter() - t0
    client.disconnect()
    client.loop_stop()
    after = usage()
    return elapsed, after["cpu_s"] - before["cpu_s"], after["peak_mb"]


def role_bare(url: str, client_id: str, expect: int, prep: bool) -> dict[str, Any]:
    done = threading.Event()
    count = [0]

    def on_message(client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        count[0] += 1
        if count[0] >= expect:
            done.set()

    elapsed, cpu, peak = drain(url, client_id, on_message, done, prep)
    return {"messages": count[0], "elapsed_s": elapsed, "cpu_s": cpu, "peak_mb": peak}


def role_bare_store(url: str, client_id: str, expect: int, prep: bool, target: str, synchronous: str,
                    ) -> dict[str, Any]:
    """The bare *storing* consumer: decode the same JSON and write the same rows, nothing else (no validation, no
    conversion, no idempotency). `target` is an SQLite path (executemany, one transaction per 500 messages as
    ingest's batch) or an InfluxDB write URL (line protocol, one request per 500 messages)."""
    done = threading.Event()
    lock = threading.Lock()
    pending: list[bytes] = []
    count = [0]
    stored = [0]
    errors: list[str] = []
    influx = target.startswith("http")
    http = httpx.Client(timeout=60) if influx else None
    db = None if influx else sqlite3.connect(target, check_same_thread=False)
    if db is not None:
        db.execute(f"PRAGMA synchronous={synchronous.upper()}")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE IF NOT EXISTS points (meter TEXT, ts TEXT, quantity TEXT, value REAL, unit TEXT, "
                   "delta REAL, interval_s REAL, quality TEXT)")

    def flush() -> None:
        with lock:
            payloads = pending[:]
            pending.clear()
        if not payloads:
            return
        docs = [json.loads(p) for p in payloads]
        if db is not None:
            rows: list[Any] = [(d["meter"], s["ts"], s["quantity"], s["value"], s["unit"], s.get("delta"),
                                s.get("interval_s"), s.get("quality", "good")) for d in docs for s in d["samples"]]
            with db:
                db.executemany("INSERT INTO points VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        else:
            assert http is not None
            lines = [f"points,meter={d['meter']},quantity={s['quantity']} value={s['value']},"
                     f"delta={s.get('delta') or 0.0} {int(datetime.fromisoformat(s['ts']).timestamp() * 1e6)}"
                     for d in docs for s in d["samples"]]
            http.post(target, content="\n".join(lines).encode()).raise_for_status()
            rows = lines
        stored[0] += len(rows)

    def on_message(client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with lock:
            pending.append(bytes(msg.payload))
            count[0] += 1
            full = len(pending) >= 500 or count[0] >= expect
        try:
            if full:
                flush()
        except Exception as exc:  # a bench that fails says why instead of waiting out its deadline
            errors.append(repr(exc))
            done.set()
        if count[0] >= expect:
            done.set()

    elapsed, cpu, peak = drain(url, client_id, on_message, done, prep, then=flush)
    if db is not None:
        db.close()
    if errors:
        raise SystemExit(f"bare storing consumer failed: {errors[0]}")
    return {"messages": count[0], "stored": stored[0], "elapsed_s": elapsed, "cpu_s": cpu, "peak_mb": peak}


def role_ingest(config: Path, expect: int, prep: bool) -> dict[str, Any]:
    from ingest.config import load_config
    from ingest.service import IngestWorker

    worker = IngestWorker(load_config(config))
    stop, ready = threading.Event(), threading.Event()
    before = usage()
    t0 = time.perf_counter()
    thread = threading.Thread(target=worker.run, args=(stop, ready), name="ingest")
    thread.start()
    ready.wait(30)
    m = worker.metrics
    while not prep and m.stored + m.duplicates < expect and thread.is_alive():
        time.sleep(0.002)
    elapsed = time.perf_counter() - t0
    stop.set()
    thread.join(30)
    after = usage()
    return {"messages": m.received_messages, "stored": m.stored, "duplicates": m.duplicates,
            "elapsed_s": elapsed, "cpu_s": after["cpu_s"] - before["cpu_s"], "peak_mb": after["peak_mb"]}


# ---- orchestration ------------------------------------------------------------------------------------------

def run_role(args: list[str]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, timeout=900, check=False)
    if out.returncode != 0:
        raise SystemExit(f"role {args[:2]} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def publish(url: str, items: list[tuple[str, bytes]]) -> float:
    host, port = url.removeprefix("mqtt://").split(":")
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    client.max_inflight_messages_set(2000)
    client.max_queued_messages_set(0)
    client.connect(host, int(port))
    client.loop_start()
    t0 = time.perf_counter()
    infos = [client.publish(t, p, qos=1) for t, p in items]
    for info in infos:
        info.wait_for_publish(120)
    elapsed = time.perf_counter() - t0
    client.disconnect()
    client.loop_stop()
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--samples", type=int, default=50, help="readings per message")
    parser.add_argument("--meters", type=int, default=20)
    parser.add_argument("--synchronous", choices=["full", "normal"], default="full",
                        help="SQLite [store] synchronous: full (fsync before ack, the default) or normal")
    parser.add_argument("--role", choices=["bare", "bare-store", "ingest"], help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--expect", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--prep", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "bare":
        print(json.dumps(role_bare(args.url, "bench-bare", args.expect, args.prep)))
        return 0
    if args.role == "bare-store":
        name = "bench-bare-influx" if args.target.startswith("http") else "bench-bare-sqlite"
        print(json.dumps(role_bare_store(args.url, name, args.expect, args.prep, args.target, args.synchronous)))
        return 0
    if args.role == "ingest":
        print(json.dumps(role_ingest(args.config, args.expect, args.prep)))
        return 0

    n, s = args.messages, args.samples
    readings = n * s
    work = Path(tempfile.mkdtemp(prefix="cw-bench-ingest-"))
    items = messages(n, s, args.meters)
    with Mosquitto(work / "mosquitto") as broker, InfluxDB(work / "influxdb") as influx:
        configs = {
            "sqlite": plant_toml(args.meters, broker.url,
                                 f'[store]\nkind = "sqlite"\npath = "{work / "bench.sqlite"}"\n'
                                 f'synchronous = "{args.synchronous}"\n', "bench-sqlite", work),
            "influx": plant_toml(args.meters, broker.url,
                                 f'[store]\nkind = "influxdb"\nurl = "{influx.url}"\ndatabase = "bench"\n',
                                 "bench-influx", work),
        }
        paths = {}
        for name, text in configs.items():
            paths[name] = work / f"{name}.toml"
            paths[name].write_text(text)
        # one persistent session per consumer, then the messages are queued once for all of them
        run_role(["--role", "bare", "--url", broker.url, "--prep"])
        influx_write = f"{influx.url}/write?db=barebench&precision=u"
        httpx.post(f"{influx.url}/query", params={"q": "CREATE DATABASE barebench"}).raise_for_status()
        bare_targets = {"sqlite": str(work / "bare.sqlite"), "influx": influx_write}
        for target in bare_targets.values():
            run_role(["--role", "bare-store", "--url", broker.url, "--target", target, "--prep",
                      "--synchronous", args.synchronous])
        for name in configs:
            run_role(["--role", "ingest", "--config", str(paths[name]), "--prep"])
        publish_s = publish(broker.url, items)
        print(f"published {n} messages ({readings} readings, {sum(len(p) for _, p in items) / n:.0f} B each) "
              f"in {publish_s:.2f} s", file=sys.stderr)
        bare = run_role(["--role", "bare", "--url", broker.url, "--expect", str(n)])
        print(f"bare subscriber: {bare}", file=sys.stderr)
        bare_store = {name: run_role(["--role", "bare-store", "--url", broker.url, "--target", target,
                                      "--expect", str(n), "--synchronous", args.synchronous])
                      for name, target in bare_targets.items()}
        print(f"bare storing:    {bare_store}", file=sys.stderr)
        sqlite = run_role(["--role", "ingest", "--config", str(paths["sqlite"]), "--expect", str(readings)])
        print(f"ingest sqlite:   {sqlite}", file=sys.stderr)
        influx_r = run_role(["--role", "ingest", "--config", str(paths["influx"]), "--expect", str(readings)])
        print(f"ingest influxdb: {influx_r}", file=sys.stderr)
    bare_rate = bare["messages"] * s / bare["elapsed_s"]
    sqlite_rate = sqlite["stored"] / sqlite["elapsed_s"]
    influx_rate = influx_r["stored"] / influx_r["elapsed_s"]
    store_rate = {name: r["stored"] / r["elapsed_s"] for name, r in bare_store.items()}
    result = {
        "ratio": round(sqlite_rate / store_rate["sqlite"], 3),
        "influx_ratio": round(influx_rate / store_rate["influx"], 3),
        "receive_ratio": round(sqlite_rate / bare_rate, 3),
        "bare_store_sqlite_readings_per_s": round(store_rate["sqlite"]),
        "bare_store_influx_readings_per_s": round(store_rate["influx"]),
        "bare_readings_per_s": round(bare_rate),
        "sqlite_readings_per_s": round(sqlite_rate),
        "influx_readings_per_s": round(influx_rate),
        "bare_messages_per_s": round(bare["messages"] / bare["elapsed_s"]),
        "sqlite_stored": sqlite["stored"], "influx_stored": influx_r["stored"], "readings": readings,
        "samples_per_message": s, "sqlite_synchronous": args.synchronous,
        # CPU per reading is steadier than rates on a shared machine: compare runs with it
        "bare_cpu_us_per_reading": round(bare["cpu_s"] / readings * 1e6, 2),
        "sqlite_cpu_us_per_reading": round(sqlite["cpu_s"] / max(sqlite["stored"], 1) * 1e6, 2),
        "bare_cpu_s": round(bare["cpu_s"], 2), "sqlite_cpu_s": round(sqlite["cpu_s"], 2),
        "influx_cpu_s": round(influx_r["cpu_s"], 2),
        "bare_peak_mb": round(bare["peak_mb"], 1), "sqlite_peak_mb": round(sqlite["peak_mb"], 1),
        "influx_peak_mb": round(influx_r["peak_mb"], 1),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
