"""Benchmark of calc's vectorized path (FactorTable.co2e_kg) against a bare numpy gather-multiply.

Run: .venv/bin/python bench/calc.py [--samples N] [--repeat R]
The last line printed is one JSON object: samples_per_s (vectorized path on live batches: each batch within
one factor-validity segment, as ingest sees it), baseline_per_s (`factors[idx] * values` on the same arrays,
same run), ratio, and mixed_years_samples_per_s / mixed_years_ratio (a backfill batch spread over six
years, where every sample needs its own segment: the slow case).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# This file is bench/calc.py: run as a script, its folder would shadow the `calc` package.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import numpy as np

from calc.factors import default_factor_set
from calc.plant import parse_plant
from calc.plant_factors import plant_factors
from calc.table import FactorTable

CARRIERS: list[tuple[str, dict[str, str]]] = [
    ("electricity", {}), ("electricity", {}), ("electricity", {}), ("electricity", {}),
    ("natural_gas", {"pressure": "2 barg", "temperature": "15 degC"}), ("raw_coal", {}), ("diesel", {}),
    ("heat", {}), ("steam", {"pressure": "0.8 MPa"}), ("hot_water", {"temperature": "80 degC"}),
]


def plant_data(meters: int) -> dict[str, Any]:
    rows = []
    for i in range(meters):
        carrier, cond = CARRIERS[i % len(CARRIERS)]
        row: dict[str, Any] = {"id": f"m{i}", "area": f"a{i % 7}", "carrier": carrier}
        if cond:
            row["conditions"] = cond
        if carrier == "electricity" and i % 3 == 0:
            row["region"] = "CN-grid-east"
        rows.append(row)
    return {"site": {"id": "bench", "region": "CN", "start": "2020-01-01T00:00:00Z"}, "meters": rows}


def rates(fns: dict[str, Callable[[], object]], n: int, repeat: int) -> dict[str, float]:
    """Samples per second of each function, measured in turns so machine noise hits all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: n / statistics.median(ts) for name, ts in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=2_000_000)
    ap.add_argument("--meters", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=9)
    args = ap.parse_args()
    raw = plant_data(args.meters)
    plant = parse_plant(raw)
    t0 = time.perf_counter()
    table = FactorTable.build(plant_factors(default_factor_set(), plant, raw), plant)
    build_ms = (time.perf_counter() - t0) * 1000
    assert not table.problems, table.problems
    rng = np.random.default_rng(3)
    n = args.samples
    meter_idx = rng.integers(0, args.meters, n).astype(np.intp)
    values = rng.random(n) * 10.0
    start = np.datetime64("2021-01-01T00:00:00", "ms").astype(np.int64)
    end = np.datetime64("2027-01-01T00:00:00", "ms").astype(np.int64)
    spread = rng.integers(start, end, n).astype("datetime64[ms]")
    live = np.datetime64("2026-11-29T02:00:00", "ms") + rng.integers(0, 3_600_000, n).astype("timedelta64[ms]")
    factors = table.coef[:, -1].copy()  # one factor per meter: the baseline's table
    r = rates({"baseline": lambda: factors[meter_idx] * values,
               "live": lambda: table.co2e_kg(meter_idx, values, live),
               "mixed": lambda: table.co2e_kg(meter_idx, values, spread)}, n, args.repeat)
    baseline, live_rate, spread_rate = r["baseline"], r["live"], r["mixed"]
    kg, rows = table.co2e_kg(meter_idx, values, spread)
    assert not np.isnan(kg).any() and (rows >= 0).all()
    print(f"table: {args.meters} meters x {table.lut.shape[1]} segments, {len(table.rows)} rows, "
          f"built in {build_ms:.0f} ms")
    print(f"baseline gather-multiply: {baseline / 1e6:.1f} M/s; vectorized (years mixed): "
          f"{spread_rate / 1e6:.1f} M/s; vectorized (live batch): {live_rate / 1e6:.1f} M/s")
    print(json.dumps({"samples": n, "meters": args.meters, "samples_per_s": round(live_rate),
                      "baseline_per_s": round(baseline), "ratio": round(live_rate / baseline, 3),
                      "mixed_years_samples_per_s": round(spread_rate),
                      "mixed_years_ratio": round(spread_rate / baseline, 3), "build_ms": round(build_ms, 1)}))


if __name__ == "__main__":
    main()
