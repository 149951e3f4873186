"""Benchmark of the API: year-to-date balance over a year of stored data (requests/s, p99) and the delay from a
reading published to the broker to its update on the live stream (p50, p99).

Real parts: a Mosquitto on a free port, the API as `carbonwatch api` in its own process, a SQLite store filled
through ingest's converter. Baselines measured in the same run: /healthz requests/s over the same HTTP path,
and raw broker delivery latency to a plain subscriber. The last line printed is one JSON object.

    .venv/bin/python bench/api.py [--meters 3] [--step-s 60] [--requests 300] [--samples 400]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# Run as a script, bench/ comes first on sys.path and this very file would shadow the api package.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from api.auth import write_key
from calc import topics
from calc.plant import parse_plant
from calc.schema import ReadingMessage, Sample, encode
from deploy.services import Mosquitto, free_port, wait_for_port
from ingest.convert import Converter
from ingest.store.sqlite import SqliteStore


def plant_toml(workdir: Path, meters: int, api_port: int, mqtt_url: str) -> str:
    body = "".join(f'\n[[meters]]\nid = "m{i}"\narea = "area{i % 3}"\ncarrier = "electricity"\n'
                   f"max_power_kw = 5000.0\ninterval_s = 60.0\n" for i in range(meters))
    return "\n".join([
        '[site]\nid = "bench"\nregion = "CN"\ntimezone = "Asia/Shanghai"\nstart = 2020-01-01T00:00:00Z', body,
        f'[mqtt]\nurl = "{mqtt_url}"\n',
        f'[store]\nkind = "sqlite"\npath = "{workdir / "store.sqlite"}"\n',
        f'[api]\nport = {api_port}\nkeys_file = "{workdir / "keys.toml"}"\ndb_path = "{workdir / "api.sqlite"}"',
        f'client_id = "bench-api-{uuid.uuid4().hex[:6]}"\n'])


def fill(workdir: Path, data: dict[str, Any], step_s: int, now: datetime) -> int:
    """A year of counter samples per meter (one every step_s), one day per message, through the converter."""
    plant = parse_plant(data)
    conv = Converter(plant, clock=lambda: now.timestamp() + 3600)
    store = SqliteStore(workdir / "store.sqlite", synchronous="OFF")
    start = (now - timedelta(days=365)).replace(hour=0, minute=0, second=0, microsecond=0)
    per_day = 86400 // step_s
    written = 0
    for meter in plant.meters:
        counter = 0.0
        day = start
        seq = 0
        while day < now:
            samples = []
            for k in range(per_day):
                ts = day + timedelta(seconds=k * step_s)
                if ts >= now:
                    break
                kwh = 1.0 + (k % 7) * 0.1
                counter += kwh
                samples.append(Sample(ts=ts, quantity="active_energy_import", value=counter, unit="kWh",
                                      delta=kwh, interval_s=float(step_s)))
            if samples:
                msg = ReadingMessage(meter=meter.id, seq=seq, samples=tuple(samples))
                out = conv.convert(topics.reading("bench", meter.area, meter.id), encode(msg))
                if out.dead:
                    raise RuntimeError(f"bench data refused: {out.dead[0].reason}")
                batch = conv.batch([out]) if hasattr(conv, "batch") else out.points
                written += store.write(batch).stored
            seq += 1
            day += timedelta(days=1)
    store.close()
    return written


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def rate(client: httpx.Client, path: str, params: dict[str, str], n: int) -> tuple[float, list[float]]:
    for _ in range(10):
        client.get(path, params=params).raise_for_status()  # warm-up
    times = []
    t0 = time.perf_counter()
    for _ in range(n):
        t = time.perf_counter()
        client.get(path, params=params).raise_for_status()
        times.append((time.perf_counter() - t) * 1000)
    return n / (time.perf_counter() - t0), times


def live_latency(api_url: str, key: str, mqtt_url: str, samples: int, meter: str, area: str,
                 ) -> tuple[list[float], list[float]]:
    """Publish `samples` readings; time each to its `meter` event on the SSE stream and to a plain subscriber."""
    host, port = mqtt_url.split("//")[1].split(":")
    sent: dict[int, float] = {}
    on_stream: dict[int, float] = {}
    on_broker: dict[int, float] = {}
    stop = threading.Event()
    ready = threading.Event()

    def read_stream() -> None:
        try:
            follow()
        except httpx.HTTPError:
            if not stop.is_set():
                raise

    def follow() -> None:
        with httpx.stream("GET", f"{api_url}/v1/stream", params={"meter": meter},   # its every update
                          headers={"Authorization": f"Bearer {key}"},
                          timeout=httpx.Timeout(10.0, read=None)) as resp:
            event = ""
            for line in resp.iter_lines():
                if line.startswith(": connected"):
                    ready.set()
                if stop.is_set():
                    return
                if line.startswith("event: "):
                    event = line[7:]
                elif event == "meter" and line.startswith("data: "):
                    doc = json.loads(line[6:])
                    if doc["meter"] == meter:
                        on_stream.setdefault(doc["seq"], time.perf_counter())

    reader = threading.Thread(target=read_stream, daemon=True)
    reader.start()
    if not ready.wait(10):
        raise RuntimeError("live stream did not open")
    plain = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-sub-{uuid.uuid4().hex[:6]}")
    subscribed = threading.Event()

    def on_message(c: Any, u: Any, m: mqtt.MQTTMessage) -> None:
        on_broker.setdefault(json.loads(m.payload)["seq"], time.perf_counter())

    plain.on_message = on_message
    plain.on_subscribe = lambda *a: subscribed.set()
    plain.connect(host, int(port))
    plain.loop_start()
    plain.subscribe(topics.reading("bench", area, meter), qos=1)
    subscribed.wait(10)
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{uuid.uuid4().hex[:6]}")
    pub.connect(host, int(port))
    pub.loop_start()
    base = 10_000_000
    for i in range(samples):
        ts = datetime.now(UTC)
        msg = ReadingMessage(meter=meter, seq=base + i, samples=(
            Sample(ts=ts, quantity="active_power", value=100.0 + i % 50, unit="kW"),))
        sent[base + i] = time.perf_counter()
        pub.publish(topics.reading("bench", area, meter), encode(msg), qos=1)
        time.sleep(0.01)  # ~100 readings/s: a live feed, not a flood
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (len(on_stream) < samples or len(on_broker) < samples):
        time.sleep(0.01)
    stop.set()
    pub.loop_stop()
    plain.loop_stop()
    missing = samples - len(on_stream)
    if missing:
        raise RuntimeError(f"{missing} of {samples} readings never reached the live stream")
    stream_ms = [(on_stream[s] - sent[s]) * 1000 for s in sent]
    broker_ms = [(on_broker[s] - sent[s]) * 1000 for s in sent if s in on_broker]
    return stream_ms, broker_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meters", type=int, default=3)
    parser.add_argument("--step-s", type=int, default=60, help="seconds between stored samples")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--samples", type=int, default=400, help="readings published for the stream latency")
    args = parser.parse_args()
    import tomllib

    with tempfile.TemporaryDirectory(prefix="cw-bench-api-") as tmp:
        workdir = Path(tmp)
        broker = Mosquitto(workdir / "mosquitto")
        broker.start()
        api_port = free_port()
        plant_file = workdir / "plant.toml"
        plant_file.write_text(plant_toml(workdir, args.meters, api_port, broker.url.replace("tcp://", "mqtt://")))
        data = tomllib.loads(plant_file.read_text())
        now = datetime.now(UTC)
        t0 = time.perf_counter()
        points = fill(workdir, data, args.step_s, now)
        fill_s = time.perf_counter() - t0
        print(f"stored {points} points ({args.meters} meters, one year, every {args.step_s} s) in {fill_s:.1f} s")
        key = write_key(workdir / "keys.toml", "bench", "viewer")
        proc = subprocess.Popen([sys.executable, "-m", "deploy.cli", "api", "--config", str(plant_file)],
                                cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            wait_for_port("127.0.0.1", api_port, 30, proc)  # type: ignore[arg-type]
            url = f"http://127.0.0.1:{api_port}"
            client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
            deadline = time.monotonic() + 20
            while not client.get("/v1/status").json()["mqtt_subscribed"]:
                if time.monotonic() > deadline:
                    raise RuntimeError("the API did not subscribe to the broker")
                time.sleep(0.05)
            body = client.get("/v1/balance", params={"period": "year"}).json()
            print(f"year-to-date balance: {body['co2e_kg']:.1f} kg CO2e from {sum(m['points'] for m in body['meters'])}"
                  f" points")
            health_per_s, _ = rate(client, "/healthz", {}, args.requests)
            balance_per_s, times = rate(client, "/v1/balance", {"period": "year"}, args.requests)
            print(f"/healthz {health_per_s:.0f}/s; /v1/balance?period=year {balance_per_s:.0f}/s, "
                  f"p50 {percentile(times, 0.5):.1f} ms, p99 {percentile(times, 0.99):.1f} ms")
            meter = parse_plant(data).meters[0]
            stream_ms, broker_ms = live_latency(url, key, broker.url.replace("tcp://", "mqtt://"), args.samples,
                                                meter.id, meter.area)
            client.close()
        finally:
            proc.terminate()
            proc.wait(10)
            broker.stop()
    result = {
        "balance_per_s": round(balance_per_s, 1),
        "balance_p50_ms": round(percentile(times, 0.5), 2),
        "balance_p99_ms": round(percentile(times, 0.99), 2),
        "healthz_per_s": round(health_per_s, 1),
        "ratio": round(balance_per_s / health_per_s, 4),
        "live_p50_ms": round(statistics.median(stream_ms), 2),
        "live_p99_ms": round(percentile(stream_ms, 0.99), 2),
        "broker_p50_ms": round(statistics.median(broker_ms), 2) if broker_ms else None,
        "broker_p99_ms": round(percentile(broker_ms, 0.99), 2) if broker_ms else None,
        "stored_points": points,
        "meters": args.meters,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
