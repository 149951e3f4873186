"""OPC UA against the simulators' asyncua server: subscribed values match the truth, status codes become
quality, the subscription survives a server restart, and Basic256Sha256 with user and password works.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from cryptography.x509.oid import ExtendedKeyUsageOID

from calc.schema import Quality
from deploy.services import free_port
from edge.config import OpcUaGateway, parse_config
from edge.drivers import PointValue
from edge.drivers.opcua.driver import OpcUaDriver
from simulators.config import parse_config as sim_parse_config
from simulators.faults import FaultKind, FaultSpec
from simulators.plant import SimulatedPlant
from tests.edge.helpers import eventually

pytestmark = pytest.mark.integration


def plant(port: int, tmp_path: Path, edge_gateway: dict[str, Any] | None = None, **sim_gateway: Any
          ) -> tuple[dict[str, Any], dict[str, Any]]:
    meters = [
        {"id": "boiler-gas", "area": "utilities", "carrier": "natural_gas", "gateway": "opc1", "map": "opcua_gas",
         "interval_s": 0.5, "sim": {"profile": "continuous", "base_m3_h": 40.0, "peak_m3_h": 300.0}},
        {"id": "steam-main", "area": "painting", "carrier": "steam", "gateway": "opc1", "map": "opcua_steam",
         "interval_s": 0.5, "sim": {"profile": "continuous", "base_kg_h": 800.0, "peak_kg_h": 2500.0}},
    ]
    site = {"id": "ua", "region": "CN", "timezone": "UTC", "start": "2026-01-01T00:00:00Z"}
    sim_gw = {"id": "opc1", "kind": "opcua", "host": "127.0.0.1", "port": port,
              "cert_dir": str(tmp_path / "server-certs")} | sim_gateway
    edge_gw = {"id": "opc1", "kind": "opcua", "host": "127.0.0.1", "port": port, "timeout_s": 2.0,
               "publishing_interval_s": 0.1, "timestamps": "agent", "backoff_s": 0.2, "backoff_max_s": 0.5
               } | (edge_gateway or {})
    sim = {"site": site, "gateways": [sim_gw], "meters": meters,
           "simulator": {"seed": 11, "acceleration": 600.0, "start": "2026-03-02T05:50:00Z",
                         "control_url": f"http://127.0.0.1:{free_port()}"}}
    return sim, {"site": site, "gateways": [edge_gw], "meters": meters}


@pytest.fixture
async def served(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[
        tuple[SimulatedPlant, OpcUaDriver]]:
    edge_gw, sim_gw = getattr(request, "param", ({}, {}))
    if callable(edge_gw):
        edge_gw = await edge_gw(tmp_path)
    sim_data, edge_data = plant(free_port(), tmp_path, edge_gw, **sim_gw)
    config = parse_config(edge_data, "<test>")
    gateway = config.gateway("opc1")
    assert isinstance(gateway, OpcUaGateway)
    async with SimulatedPlant(sim_parse_config(sim_data), serve_control=False) as sim, \
            OpcUaDriver(gateway, config.meters) as driver:
        await driver.wait_connected(20)
        yield sim, driver


def by_quantity(values: list[PointValue]) -> dict[str, PointValue]:
    return {v.point.quantity: v for v in values}


async def settled_read(sim: SimulatedPlant, driver: OpcUaDriver) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Pause the plant, let the server publish once more and the subscription deliver, then read both sides."""
    truth = sim.pause()["meters"]
    await sim.gateways["opc1"].publish()  # type: ignore[attr-defined]
    want = {m: truth[m]["counters"]["volume" if m == "boiler-gas" else "mass"]["value"] for m in truth}

    async def values() -> dict[str, dict[str, Any]]:
        return {m.id: by_quantity(await driver.read(m)) for m in driver.meters}

    got: dict[str, dict[str, Any]] = {}

    async def arrived() -> bool:
        got.update(await values())
        return (got["boiler-gas"]["volume"].raw == pytest.approx(want["boiler-gas"], abs=1e-9)
                and got["steam-main"]["mass"].raw == pytest.approx(want["steam-main"], abs=1e-9))

    deadline = asyncio.get_running_loop().time() + 10
    while not await arrived():
        assert asyncio.get_running_loop().time() < deadline, f"subscription never delivered {want}: {got}"
        await asyncio.sleep(0.05)
    return truth, got


async def test_subscribed_values_match_the_truth(served: tuple[SimulatedPlant, OpcUaDriver]) -> None:
    sim, driver = served
    truth, got = await settled_read(sim, driver)
    assert driver.handler is not None and driver.handler.notifications > 0, "values came by subscription"
    gas, steam = got["boiler-gas"], got["steam-main"]
    assert gas["volume_flow"].raw == pytest.approx(truth["boiler-gas"]["rate"]["value"], rel=1e-9)
    assert steam["mass_flow"].raw == pytest.approx(truth["steam-main"]["rate"]["value"], rel=1e-9)
    assert all(v.quality == Quality.GOOD for v in [*gas.values(), *steam.values()])
    assert (gas["volume"].point.unit, steam["mass"].point.unit) == ("m**3", "kg")


async def test_status_codes_become_quality(served: tuple[SimulatedPlant, OpcUaDriver]) -> None:
    sim, driver = served
    sim.set_fault("boiler-gas", FaultSpec(fault=FaultKind.BAD_STATUS, status="UncertainLastUsableValue"))
    sim.set_fault("steam-main", FaultSpec(fault=FaultKind.OFFLINE))

    async def statuses() -> tuple[PointValue, PointValue]:
        gas = by_quantity(await driver.read(driver.meters[0]))["volume"]
        steam = by_quantity(await driver.read(driver.meters[1]))["mass"]
        return gas, steam

    seen: list[tuple[PointValue, PointValue]] = []

    async def changed() -> bool:
        seen.append(await statuses())
        gas, steam = seen[-1]
        return gas.quality == Quality.UNCERTAIN and steam.quality == Quality.BAD

    await eventually_async(changed, "status codes in the samples")
    gas, steam = seen[-1]
    assert gas.reason == "opc ua status UncertainLastUsableValue" and gas.raw is not None
    assert steam.reason == "opc ua status BadNoCommunication" and steam.raw is None


async def eventually_async(probe: Any, what: str, timeout_s: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await probe():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_subscription_survives_a_server_restart(served: tuple[SimulatedPlant, OpcUaDriver]) -> None:
    sim, driver = served
    assert driver.connects == 1
    await settled_read(sim, driver)
    server = sim.gateways["opc1"]
    await server.stop()
    await eventually(lambda: not driver.connected, 15, "the driver noticing the server is gone")
    down = await driver.read(driver.meters[0])
    assert all(v.quality == Quality.BAD and "no connection" in (v.reason or "") for v in down)
    sim.resume()
    await server.start()
    await driver.wait_connected(30)
    assert driver.connects == 2
    assert driver.handler is not None
    before = driver.handler.notifications
    # values flow again through the new subscription, and they keep up with the plant
    await eventually(lambda: driver.handler is not None and driver.handler.notifications > before + 4, 15,
                     "notifications after the restart")
    _, got = await settled_read(sim, driver)
    assert got["boiler-gas"]["volume"].quality == Quality.GOOD


async def _secure(tmp_path: Path) -> dict[str, Any]:
    cert, key = tmp_path / "client-cert.der", tmp_path / "client-key.pem"
    await setup_self_signed_certificate(key, cert, "urn:carbonwatch:edge:test", "127.0.0.1",
                                        [ExtendedKeyUsageOID.CLIENT_AUTH], {"commonName": "carbonwatch edge test"})
    return {"security_policy": "Basic256Sha256", "security_mode": "SignAndEncrypt", "certificate": str(cert),
            "private_key": str(key), "username": "meter-reader", "password": "s3cret", "path": "/carbonwatch/sim"}


@pytest.mark.parametrize("served", [(_secure, {"username": "meter-reader", "password": "s3cret",
                                                "security": ["Basic256Sha256"]})], indirect=True)
async def test_basic256sha256_sign_and_encrypt_with_user_and_password(
        served: tuple[SimulatedPlant, OpcUaDriver]) -> None:
    sim, driver = served
    assert driver.gateway.security_policy == "Basic256Sha256"
    _, got = await settled_read(sim, driver)
    assert got["boiler-gas"]["volume"].quality == Quality.GOOD


async def test_a_unit_that_disagrees_with_engineering_units_is_uncertain(tmp_path: Path) -> None:
    sim_data, edge_data = plant(free_port(), tmp_path)
    litres = {"id": "gas-litres", "area": "utilities", "carrier": "natural_gas", "gateway": "opc1",
              "points": [{"quantity": "volume", "unit": "l", "kind": "counter",
                          "node": "nsu=urn:carbonwatch:simulators;s=boiler-gas.Totaliser"}]}
    edge_data["meters"] = [*edge_data["meters"], litres]
    config = parse_config(edge_data, "<test>")
    gateway = config.gateway("opc1")
    assert isinstance(gateway, OpcUaGateway)
    async with SimulatedPlant(sim_parse_config(sim_data), serve_control=False), \
            OpcUaDriver(gateway, config.meters) as driver:
        await driver.wait_connected(20)
        (wrong,) = await driver.read(config.meters[-1])
        right = by_quantity(await driver.read(config.meters[0]))["volume"]
    assert wrong.quality == Quality.UNCERTAIN
    assert wrong.reason == "unit: server says m**3, config says l (x1000)"
    assert right.quality == Quality.GOOD and right.reason is None


@pytest.mark.parametrize("served", [({"mode": "poll"}, {})], indirect=True)
async def test_poll_mode_reads_the_same_values(served: tuple[SimulatedPlant, OpcUaDriver]) -> None:
    sim, driver = served
    truth, got = await settled_read(sim, driver)
    assert driver.handler is None, "no subscription in poll mode"
    assert got["boiler-gas"]["volume_flow"].raw == pytest.approx(truth["boiler-gas"]["rate"]["value"], rel=1e-9)
    assert all(v.quality == Quality.GOOD for v in got["steam-main"].values())
