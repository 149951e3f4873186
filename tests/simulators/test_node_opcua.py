"""node-opcua (an independent OPC UA stack, from npm) browses, reads and subscribes to the simulator.

Needs `npm ci --prefix tests/simulators/node` (node-opcua 2.182.2, the newest that runs on Node 20).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from simulators.opcua import NAMESPACE
from simulators.plant import SimulatedPlant
from tests.simulators.conftest import opcua_gateway, opcua_meter, plant_config, run_tool

pytestmark = pytest.mark.integration

NODE_DIR = Path(__file__).resolve().parent / "node"
SCRIPT = NODE_DIR / "check_opcua.js"


def result(stdout: str) -> dict[str, Any]:
    """The script's JSON result: its last line (node-opcua logs to stdout as well)."""
    last = [line for line in stdout.splitlines() if line.startswith("{")][-1]
    parsed: dict[str, Any] = json.loads(last)
    return parsed


def node() -> str:
    exe = shutil.which("node")
    assert exe, "node is not installed"
    assert (NODE_DIR / "node_modules" / "node-opcua").is_dir(), \
        f"node-opcua is not installed: run `npm ci --prefix {NODE_DIR}`"
    return exe


async def test_node_opcua_browses_reads_and_subscribes(tmp_path: Path) -> None:
    config = plant_config([opcua_meter("boiler-gas", "gas"), opcua_meter("steam-main", "steam", area="painting")],
                          gateways=[opcua_gateway()], acceleration=600.0)
    async with SimulatedPlant(config) as plant:
        gw = plant.config.gateways[0]
        endpoint = f"opc.tcp://127.0.0.1:{gw.port}/carbonwatch/sim"  # type: ignore[union-attr]
        seen = result(await run_tool(node(), str(SCRIPT), endpoint, NAMESPACE, "--pki", str(tmp_path / "pki"),
                                     "--notifications", "3", timeout_s=90))
        truth = plant.truth()
    assert set(seen["meters"]) == {"boiler-gas", "steam-main"}
    gas, steam = seen["meters"]["boiler-gas"], seen["meters"]["steam-main"]
    assert set(gas) == {"Flow", "Totaliser", "Pressure", "Temperature"}
    assert gas["Flow"]["eu"] == {"unitId": 5067080, "displayName": "m³/h",
                                 "namespaceUri": "http://www.opcfoundation.org/UA/units/un/cefact"}
    assert gas["Totaliser"]["eu"]["unitId"] == 5067857
    assert steam["Totaliser"]["eu"]["displayName"] == "kg"
    assert steam["Temperature"]["eu"]["displayName"] == "°C"
    assert all(v["status"] == "Good" for m in (gas, steam) for v in m.values())
    # values it read lie between the start and the end of its session, as the simulator counted them
    assert 0 <= gas["Totaliser"]["value"] <= truth["meters"]["boiler-gas"]["counters"]["volume"]["value"]
    notes = seen["notifications"]["boiler-gas"]
    assert len(notes) >= 3
    values = [n["value"] for n in notes]
    assert values == sorted(values) and values[-1] > values[0]


async def test_node_opcua_basic256sha256_sign_and_encrypt_with_user(tmp_path: Path) -> None:
    config = plant_config([opcua_meter("gas-1", "gas")],
                          gateways=[opcua_gateway(cert_dir=str(tmp_path / "server"), security=["Basic256Sha256"],
                                                  username="operator", password="s3cret")],
                          acceleration=600.0)
    async with SimulatedPlant(config) as plant:
        gw = plant.config.gateways[0]
        endpoint = f"opc.tcp://127.0.0.1:{gw.port}/carbonwatch/sim"  # type: ignore[union-attr]
        seen = result(await run_tool(node(), str(SCRIPT), endpoint, NAMESPACE, "--pki", str(tmp_path / "pki"),
                                     "--secure", "1", "--user", "operator", "--password", "s3cret",
                                     "--notifications", "2", timeout_s=90))
    assert seen["security"] == "Basic256Sha256/SignAndEncrypt"
    assert seen["meters"]["gas-1"]["Pressure"]["value"] > 0
    assert len(seen["notifications"]["gas-1"]) >= 2
