"""Benchmark: how fast the simulated Modbus meters answer, against a plain pymodbus device in the same run.

Reads a PM5000 (energy INT64 + power FLOAT32, one request each) from the simulator, whose values are
rendered live on every request, and the same registers from a static pymodbus SimDevice (the baseline).
Also measures the integration speed of one meter (simulated steps per real second), which bounds the
usable time acceleration. Last line: one JSON object; `ratio` = simulator / baseline request rate.
usage: python bench/simulators_modbus.py [--requests N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

# run as a script, bench/ comes first on sys.path and its calc*.py files would shadow the calc package
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from deploy.services import free_port
from simulators.config import parse_config
from simulators.plant import SimulatedPlant


def config(port: int) -> dict[str, object]:
    return {
        "site": {"id": "bench", "timezone": "UTC"},
        "gateways": [{"id": "gw1", "kind": "modbus_tcp", "host": "127.0.0.1", "port": port}],
        "meters": [{"id": "m1", "area": "a", "carrier": "electricity", "gateway": "gw1", "unit_id": 1,
                    "map": "schneider_pm5000", "sim": {"profile": "shift", "base_kw": 50.0, "peak_kw": 400.0}}],
        "simulator": {"seed": 1, "acceleration": 60.0, "control_url": f"http://127.0.0.1:{free_port()}"},
    }


async def hammer(port: int, requests: int) -> tuple[float, list[float]]:
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=5)
    await client.connect()
    latencies = []
    t0 = time.perf_counter()
    for i in range(requests):
        t = time.perf_counter()
        if i % 2:
            r = await client.read_holding_registers(3203, count=4, device_id=1)
        else:
            r = await client.read_holding_registers(3059, count=2, device_id=1)
        latencies.append(time.perf_counter() - t)
        assert not r.isError(), r
    elapsed = time.perf_counter() - t0
    client.close()
    return requests / elapsed, latencies


async def baseline(requests: int) -> tuple[float, list[float]]:
    port = free_port()
    device = SimDevice(id=1, simdata=[SimData(3053, count=8, datatype=DataType.REGISTERS),
                                      SimData(3203, count=8, datatype=DataType.REGISTERS)])
    server = ModbusTcpServer([device], address=("127.0.0.1", port))
    await server.serve_forever(background=True)
    try:
        return await hammer(port, requests)
    finally:
        await server.shutdown()  # type: ignore[no-untyped-call]


async def simulated(requests: int) -> tuple[float, list[float]]:
    port = free_port()
    async with SimulatedPlant(parse_config(config(port), "<bench>")):
        return await hammer(port, requests)


def integration_steps_per_s() -> float:
    plant = SimulatedPlant(parse_config(config(free_port()), "<bench>"), serve_control=False,
                           monotonic=lambda: 0.0)
    meter = plant.meters["m1"]
    t0 = time.perf_counter()
    meter.advance(200_000)  # 200 000 one-second steps
    return meter.steps / (time.perf_counter() - t0)


async def main(requests: int) -> dict[str, float]:
    rates: dict[str, list[float]] = {"baseline": [], "sim": []}
    lat: dict[str, list[float]] = {"baseline": [], "sim": []}
    for _ in range(3):  # alternate, so that machine noise hits both alike
        for name, run in (("baseline", baseline), ("sim", simulated)):
            rate, latencies = await run(requests)
            rates[name].append(rate)
            lat[name] += latencies
    sim_rate, base_rate = statistics.median(rates["sim"]), statistics.median(rates["baseline"])
    return {
        "sim_requests_per_s": round(sim_rate, 1),
        "baseline_requests_per_s": round(base_rate, 1),
        "sim_p50_ms": round(statistics.median(lat["sim"]) * 1000, 3),
        "baseline_p50_ms": round(statistics.median(lat["baseline"]) * 1000, 3),
        "integration_steps_per_s": round(integration_steps_per_s(), 0),
        "ratio": round(sim_rate / base_rate, 3),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.requests))))
