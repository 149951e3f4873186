"""Benchmark of actual vs expected: GET /v1/performance over a year at hourly resolution (8 760 periods: energy,
drivers, expected, deviation, EnPI, CUSUM) against the plain GET /v1/balance of the same period: requests/s,
p50 and p99 of each and the cost ratio.

Real parts: the API as `carbonwatch api` in its own process (live evaluation off: no broker is needed for these
reads), a SQLite store filled through ingest's converter with a year of a meter whose energy follows a known model
(a + b·production + c·HDD + noise, as the simulators' EnergyModel), its production counter and an outdoor
temperature, plus plain meters; the baseline fitted through the API on the first 90 days. The last line printed
is one JSON object.

    .venv/bin/python bench/performance.py [--meters 3] [--step-s 900] [--requests 60]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

# Run as a script, bench/ comes first on sys.path and this very file would shadow the api package.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import httpx
import numpy as np

from api.auth import write_key
from calc import topics
from calc.plant import parse_plant
from calc.schema import ReadingMessage, Sample, encode
from deploy.services import free_port, wait_for_port
from ingest.convert import Converter
from ingest.store.sqlite import SqliteStore
from simulators.profiles import hdd_per_h

TZ = "Asia/Shanghai"
A_KW, B_KWH_PER_PIECE, C_KWH_PER_KD, HDD_BASE_C = 50.0, 0.8, 120.0, 18.0


def plant_toml(workdir: Path, meters: int, api_port: int) -> str:
    body = "".join(f'\n[[meters]]\nid = "m{i}"\narea = "press"\nline = "l1"\ncarrier = "electricity"\n'
                   f"max_power_kw = 5000.0\n" for i in range(meters))
    variables = ('\n[[variables]]\nid = "out-1"\narea = "press"\nline = "l1"\nkind = "production"\n'
                 'quantity = "production"\nunit = "count"\n'
                 '\n[[variables]]\nid = "temp"\narea = "utilities"\nkind = "driver"\n'
                 'quantity = "outdoor_temperature"\nunit = "degC"\nmeasure = "gauge"\n'
                 f"degree_day_base_c = {HDD_BASE_C}\n")
    return "\n".join([
        f'[site]\nid = "bench"\nregion = "CN"\ntimezone = "{TZ}"\nstart = 2020-01-01T00:00:00Z', body, variables,
        f'[store]\nkind = "sqlite"\npath = "{workdir / "store.sqlite"}"\n',
        f'[api]\nport = {api_port}\nlive = false\nkeys_file = "{workdir / "keys.toml"}"\n'
        f'db_path = "{workdir / "api.sqlite"}"\n'])


def fill(workdir: Path, data: dict[str, Any], step_s: int, start: datetime, end: datetime) -> int:
    """Samples every step_s over [start, end), one day per message per meter and variable, through the converter:
    m0 follows the model, the other meters draw a flat load."""
    plant = parse_plant(data)
    conv = Converter(plant, clock=lambda: end.timestamp() + 3600)
    store = SqliteStore(workdir / "store.sqlite", synchronous="OFF")
    rng = np.random.default_rng(16)
    hours = step_s / 3600
    counters = {m.id: 0.0 for m in plant.meters} | {"out-1": 0.0}
    areas = {m.id: m.area for m in plant.meters} | {v.id: v.area for v in plant.variables}
    written, day, seq = 0, start, 0
    while day < end:
        day_level, day_temp = rng.uniform(0.6, 1.2), 5.0 + 4.0 * rng.standard_normal()
        per: dict[str, list[Sample]] = {k: [] for k in areas}
        for k in range(86400 // step_s):
            ts = day + timedelta(seconds=k * step_s)
            local = ts.astimezone(ZoneInfo(TZ))
            on = 6 <= local.hour < 22 and local.weekday() < 5
            pieces = float(round((200.0 * day_level if on else 10.0) * hours * rng.uniform(0.9, 1.1)))
            temp = day_temp + 4.0 * math.cos(2 * math.pi * (local.hour - 15) / 24)
            kwh = max(0.0, (A_KW + C_KWH_PER_KD * hdd_per_h(temp, HDD_BASE_C)) * hours + B_KWH_PER_PIECE * pieces
                      + 10.0 * math.sqrt(hours) * rng.standard_normal())
            for meter in counters:
                delta = pieces if meter == "out-1" else kwh if meter == "m0" else 20.0 * hours
                counters[meter] += delta
                quantity, unit = ("production", "count") if meter == "out-1" else ("active_energy_import", "kWh")
                per[meter].append(Sample(ts=ts, quantity=quantity, value=counters[meter], unit=unit, delta=delta,
                                         interval_s=float(step_s)))
            per["temp"].append(Sample(ts=ts, quantity="outdoor_temperature", value=temp, unit="degC",
                                      interval_s=float(step_s)))
        items = [(topics.reading("bench", areas[m], m), encode(ReadingMessage(meter=m, seq=seq, samples=tuple(s))),
                  None) for m, s in per.items()]
        outs, batch = conv.convert_to_batch(items)
        dead = [d.reason for o in outs for d in o.dead]
        if dead:
            raise RuntimeError(f"bench data refused: {dead[0]}")
        written += store.write(batch).stored
        seq += 1
        day += timedelta(days=1)
    store.close()
    return written


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def timed(client: httpx.Client, path: str, params: dict[str, str], n: int) -> tuple[float, list[float], int]:
    """(requests/s, each request's ms, response bytes) of n sequential requests after 3 warm-ups."""
    size = 0
    for _ in range(3):
        size = len(client.get(path, params=params).raise_for_status().content)
    times = []
    t0 = time.perf_counter()
    for _ in range(n):
        t = time.perf_counter()
        client.get(path, params=params).raise_for_status()
        times.append((time.perf_counter() - t) * 1000)
    return n / (time.perf_counter() - t0), times, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meters", type=int, default=3)
    parser.add_argument("--step-s", type=int, default=900, help="seconds between stored samples")
    parser.add_argument("--requests", type=int, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cw-bench-perf-") as tmp:
        workdir = Path(tmp)
        api_port = free_port()
        plant_file = workdir / "plant.toml"
        plant_file.write_text(plant_toml(workdir, args.meters, api_port))
        data = tomllib.loads(plant_file.read_text())
        midnight = datetime.now(ZoneInfo(TZ)).replace(hour=0, minute=0, second=0, microsecond=0)
        start, end = (midnight - timedelta(days=365)).astimezone(UTC), midnight.astimezone(UTC)
        t0 = time.perf_counter()
        points = fill(workdir, data, args.step_s, start, end)
        print(f"stored {points} points ({args.meters} meters and 2 variables, one year, every {args.step_s} s) "
              f"in {time.perf_counter() - t0:.1f} s")
        admin = write_key(workdir / "keys.toml", "bench", "admin")
        proc = subprocess.Popen([sys.executable, "-m", "deploy.cli", "api", "--config", str(plant_file)],
                                cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            wait_for_port("127.0.0.1", api_port, 30, proc)  # type: ignore[arg-type]
            client = httpx.Client(base_url=f"http://127.0.0.1:{api_port}",
                                  headers={"Authorization": f"Bearer {admin}"}, timeout=60)
            fit = client.post("/v1/baselines", json={
                "id": "m0", "scope": "meter", "target": "m0", "resolution": "daily",
                "period_start": start.isoformat(), "period_end": (start + timedelta(days=90)).isoformat(),
                "drivers": [{"name": "pieces", "variable": "out-1"},
                            {"name": "hdd", "variable": "temp", "transform": "heating_degree_days"}]})
            if fit.status_code != 201:
                raise RuntimeError(f"baseline not fitted: {fit.text}")
            stats = fit.json()["model"]["stats"]
            print(f"baseline fitted: R² {stats['r2']:.4f}, CV(RMSE) {stats['cv_rmse']:.2%}")
            window = {"from": start.isoformat(), "to": end.isoformat()}
            perf_params = {**window, "baseline": "m0", "resolution": "hourly"}
            body = client.get("/v1/performance", params=perf_params).json()
            periods = len(body["series"]["start"])
            print(f"performance: {len(body['series']['start'])} hourly periods, EnPI {body['totals']['enpi']:.4f}")
            balance_per_s, balance_ms, balance_bytes = timed(client, "/v1/balance", window, args.requests)
            perf_per_s, perf_ms, perf_bytes = timed(client, "/v1/performance", perf_params, args.requests)
            client.close()
        finally:
            proc.terminate()
            proc.wait(10)
    for name, per_s, ms in (("/v1/balance", balance_per_s, balance_ms), ("/v1/performance", perf_per_s, perf_ms)):
        print(f"{name} over a year: {per_s:.1f}/s, p50 {percentile(ms, 0.5):.1f} ms, p99 {percentile(ms, 0.99):.1f} ms")
    result = {
        "performance_per_s": round(perf_per_s, 2),
        "performance_p50_ms": round(percentile(perf_ms, 0.5), 1),
        "performance_p99_ms": round(percentile(perf_ms, 0.99), 1),
        "performance_bytes": perf_bytes,
        "balance_per_s": round(balance_per_s, 2),
        "balance_p50_ms": round(percentile(balance_ms, 0.5), 1),
        "balance_p99_ms": round(percentile(balance_ms, 0.99), 1),
        "balance_bytes": balance_bytes,
        "cost_ratio": round(percentile(perf_ms, 0.5) / percentile(balance_ms, 0.5), 2),
        "periods": periods,
        "stored_points": points,
        "meters": args.meters,
        "step_s": args.step_s,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
