"""Helpers for the simulator tests: plant configs on free ports and a real pymodbus client."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from deploy.services import free_port
from simulators.config import SimConfig, parse_config

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
