"""Helpers for the simulator tests: plant configs on free ports and a real pymodbus client."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from deploy.services import free_port
from simulators.config import SimConfig, parse_config
from tests.socat import Socat

T = TypeVar("T")

START = "2026-03-02T05:50:00Z"  # a Monday, 13:50 in Asia/Shanghai (mid-shift)


def pm5000_meter(meter_id: str, unit_id: int, gateway: str = "gw1", **sim: Any) -> dict[str, Any]:
    spec = {"profile": "continuous", "base_kw": 100.0, "peak_kw": 200.0} | sim
    return {"id": meter_id, "area": "pressing", "carrier": "electricity", "gateway": gateway, "unit_id": unit_id,
            "map": "schneider_pm5000", "interval_s": 1.0, "sim": spec}


def plant_dict(meters: list[dict[str, Any]], gateways: list[dict[str, Any]] | None = None, *,
               acceleration: float = 60.0, seed: int = 7, **simulator: Any) -> dict[str, Any]:
    if gateways is None:
        gateways = [{"id": "gw1", "kind": "modbus_tcp", "host": "127.0.0.1", "port": free_port()}]
    return {
        "site": {"id": "test", "region": "CN", "timezone": "Asia/Shanghai", "start": "2026-01-01T00:00:00Z"},
        "gateways": gateways,
        "meters": meters,
        "simulator": {"seed": seed, "acceleration": acceleration, "start": START,
                      "control_url": f"http://127.0.0.1:{free_port()}"} | simulator,
    }


def plant_config(meters: list[dict[str, Any]], **kwargs: Any) -> SimConfig:
    return parse_config(plant_dict(meters, **kwargs), "<test>")


async def eventually(probe: Callable[[], Awaitable[T | None]], timeout_s: float = 10.0, what: str = "condition"
                     ) -> T:
    """Poll `probe` until it returns something not None, or fail after the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = await probe()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout_s} s")
        await asyncio.sleep(0.02)


def meter(meter_id: str, unit_id: int, map_name: str, gateway: str = "gw1", **extra: Any) -> dict[str, Any]:
    """A Modbus meter of any map with a plausible profile."""
    sim: dict[str, Any] = {"profile": "continuous"}
    if map_name == "adam6051_counter":
        sim |= {"base_m3_h": 20.0, "peak_m3_h": 60.0}
        extra.setdefault("pulse_m3", 0.01)
        carrier = "natural_gas"
    else:
        sim |= {"base_kw": 100.0, "peak_kw": 200.0}
        carrier = "electricity"
    sim |= extra.pop("sim", {})
    return {"id": meter_id, "area": "utilities", "carrier": carrier, "gateway": gateway, "unit_id": unit_id,
            "map": map_name, "sim": sim} | extra


@pytest.fixture
def pty_pair(tmp_path: Path) -> Iterator[Socat]:
    """A pty pair standing in for an RS-485 line: the simulator opens `server`, clients `client`."""
    with Socat(tmp_path) as pair:
        yield pair


async def run_tool(*argv: str, timeout_s: float = 30.0) -> str:
    """Run an external client without blocking the event loop that serves the simulated plant."""
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, f"{argv[0]} exited {proc.returncode}: {err.decode()} {out.decode()}"
    return out.decode()


def opcua_gateway(gateway_id: str = "opc1", **extra: Any) -> dict[str, Any]:
    return {"id": gateway_id, "kind": "opcua", "host": "127.0.0.1", "port": free_port()} | extra


def opcua_meter(meter_id: str, kind: str, gateway: str = "opc1", area: str = "utilities", **sim: Any
                ) -> dict[str, Any]:
    if kind == "gas":
        spec = {"profile": "shift", "base_m3_h": 40.0, "peak_m3_h": 300.0, "pressure_bar": 4.0,
                "temperature_c": 15.0}
        return {"id": meter_id, "area": area, "carrier": "natural_gas", "gateway": gateway, "map": "opcua_gas",
                "sim": spec | sim}
    spec = {"profile": "continuous", "base_kg_h": 800.0, "peak_kg_h": 2500.0, "pressure_bar": 8.0,
            "temperature_c": 180.0}
    return {"id": meter_id, "area": area, "carrier": "steam", "gateway": gateway, "map": "opcua_steam",
            "sim": spec | sim}
