"""Modbus RTU: over a socat pty pair (a stand-in RS-485 line) and over TCP (a transparent serial converter),
against the simulators' meters on the line; several meters on one bus are read one request at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy.services import free_port
from edge.config import ModbusRtuGateway, ModbusRtuTcpGateway, parse_config
from edge.drivers.modbus.driver import ModbusDriver
from simulators.config import parse_config as sim_parse_config
from simulators.plant import SimulatedPlant
from tests.edge.helpers import eventually
from tests.socat import Socat

pytestmark = pytest.mark.integration


@pytest.fixture
def pty_pair(tmp_path: Path) -> Iterator[tuple[str, str]]:
    with Socat(tmp_path) as line:
        assert line.client is not None
        yield line.server, line.client


def plant(sim_device: str, edge_gateway: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    meters = [
        {"id": "pm-rtu", "area": "a", "carrier": "electricity", "gateway": "bus1", "unit_id": 1,
         "map": "schneider_pm5000", "sim": {"profile": "continuous", "base_kw": 100.0, "peak_kw": 200.0}},
        {"id": "sdm-rtu", "area": "a", "carrier": "electricity", "gateway": "bus1", "unit_id": 7,
         "map": "eastron_sdm630", "sim": {"profile": "continuous", "base_kw": 10.0, "peak_kw": 20.0}},
        {"id": "gas-rtu", "area": "a", "carrier": "natural_gas", "gateway": "bus1", "unit_id": 9,
         "map": "adam6051_counter", "pulse_m3": 0.1,
         "sim": {"profile": "continuous", "base_m3_h": 20.0, "peak_m3_h": 30.0}},
    ]
    base = {"site": {"id": "rtu", "region": "CN", "timezone": "UTC", "start": "2026-01-01T00:00:00Z"},
            "meters": meters, "simulator": {"seed": 3, "acceleration": 60.0, "start": "2026-03-02T05:50:00Z",
                                            "control_url": f"http://127.0.0.1:{free_port()}"}}
    sim = base | {"gateways": [{"id": "bus1", "kind": "modbus_rtu", "device": sim_device, "baudrate": 115200}]}
    edge = base | {"gateways": [edge_gateway]}
    return sim, edge


async def read_all_and_compare(sim_data: dict[str, Any], edge_data: dict[str, Any]) -> ModbusDriver:
    async with SimulatedPlant(sim_parse_config(sim_data), paused=True, serve_control=False) as sim:
        config = parse_config(edge_data, "<test>")
        gateway = config.gateway("bus1")
        assert isinstance(gateway, ModbusRtuGateway | ModbusRtuTcpGateway)
        async with ModbusDriver(gateway) as driver:
            # all three at once: the driver must put them on the line one request at a time
            results = await asyncio.gather(*(driver.read(m) for m in config.meters))
            truth = sim.truth()["meters"]
    values = {m.id: {v.point.quantity: v for v in r} for m, r in zip(config.meters, results, strict=True)}
    assert all(v.raw is not None for r in values.values() for v in r.values()), values
    assert values["pm-rtu"]["active_energy_import"].raw == truth["pm-rtu"]["counters"]["active_energy_import"]["value"]
    assert values["pm-rtu"]["active_power"].raw == pytest.approx(truth["pm-rtu"]["power"]["value"], rel=1e-6)
    assert values["sdm-rtu"]["active_energy_import"].raw == pytest.approx(
        truth["sdm-rtu"]["counters"]["active_energy_import"]["value"], rel=1e-6, abs=1e-3)
    assert values["gas-rtu"]["volume"].raw == truth["gas-rtu"]["counters"]["pulse_count"]["counts"]
    return driver


async def test_rtu_over_a_pty_pair(pty_pair: tuple[str, str]) -> None:
    sim_end, edge_end = pty_pair
    sim_data, edge_data = plant(sim_end, {"id": "bus1", "kind": "modbus_rtu", "device": edge_end,
                                          "baudrate": 115200, "parity": "N", "stopbits": 1, "timeout_s": 1.0})
    driver = await read_all_and_compare(sim_data, edge_data)
    assert driver.errors == 0


async def test_rtu_over_tcp_through_a_serial_converter(tmp_path: Path) -> None:
    port = free_port()
    # One TCP client on the line, as a serial converter serves: with `fork`, socat made a child per connection and
    # every child read the same pty, so the child of a probe connection, still finishing, took the meters' answers
    # meant for the driver's (and threw them away); and children outlive the socat that the test stops. So no
    # fork (socat serves the driver's one connection, then ends), and socat's own word that it listens instead of
    # a probe connection.
    with Socat(tmp_path, f"tcp-listen:{port},bind=127.0.0.1,reuseaddr") as line:
        await eventually(lambda: f"listening on AF=2 127.0.0.1:{port}" in line.log.read_text(errors="replace"),
                         10, "socat listening")
        sim_data, edge_data = plant(line.server, {"id": "bus1", "kind": "modbus_rtu_tcp", "host": "127.0.0.1",
                                                  "port": port, "timeout_s": 1.0})
        driver = await read_all_and_compare(sim_data, edge_data)
    assert driver.errors == 0


async def test_dead_unit_on_a_serial_line_is_bad_with_a_timeout_reason(pty_pair: tuple[str, str]) -> None:
    sim_end, edge_end = pty_pair
    sim_data, edge_data = plant(sim_end, {"id": "bus1", "kind": "modbus_rtu", "device": edge_end,
                                          "baudrate": 115200, "timeout_s": 0.3, "retries": 1})
    edge_data["meters"] = [*edge_data["meters"], {"id": "ghost", "area": "a", "gateway": "bus1", "unit_id": 42,
                                                   "map": "schneider_pm5000", "carrier": "electricity"}]
    async with SimulatedPlant(sim_parse_config(sim_data), paused=True, serve_control=False):
        config = parse_config(edge_data, "<test>")
        gateway = config.gateway("bus1")
        assert isinstance(gateway, ModbusRtuGateway)
        async with ModbusDriver(gateway) as driver:
            ghost = await driver.read(config.meters[-1])
            alive = await driver.read(config.meters[0])
    assert all(v.raw is None and v.quality == "bad" and "timeout" in (v.reason or "") for v in ghost), ghost
    assert all(v.raw is not None for v in alive), "the line works for the others after a silent unit"
