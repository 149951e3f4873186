"""The OPC UA server seen by an asyncua client: address space, units, status codes, subscriptions, security."""

from __future__ import annotations

import asyncio
import math
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from asyncua import Client, ua
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from cryptography.x509.oid import ExtendedKeyUsageOID

from simulators.opcua import NAMESPACE
from simulators.plant import SimulatedPlant
from tests.simulators.conftest import eventually, opcua_gateway, opcua_meter, plant_config

pytestmark = pytest.mark.integration


def endpoint(plant: SimulatedPlant) -> str:
    gw = plant.config.gateways[0]
    return f"opc.tcp://127.0.0.1:{gw.port}/carbonwatch/sim"  # type: ignore[union-attr]


async def meter_vars(client: Client, meter_id: str) -> dict[str, Any]:
    idx = await client.get_namespace_index(NAMESPACE)
    meter = await client.nodes.objects.get_child([f"{idx}:Meters", f"{idx}:{meter_id}"])
    return {(await v.read_browse_name()).Name: v for v in await meter.get_variables()}


async def test_browse_read_units_and_values_match_truth(tmp_path: Path) -> None:
    config = plant_config([opcua_meter("boiler-gas", "gas"), opcua_meter("steam-main", "steam", area="painting")],
                          gateways=[opcua_gateway(cert_dir=str(tmp_path / "certs"))], acceleration=600.0)
    async with SimulatedPlant(config) as plant, Client(endpoint(plant), timeout=10) as client:
        gas = await meter_vars(client, "boiler-gas")
        assert set(gas) == {"Flow", "Totaliser", "Pressure", "Temperature"}
        eu = await (await gas["Flow"].get_child(["0:EngineeringUnits"])).read_value()
        assert eu.UnitId == 5067080 and eu.DisplayName.Text == "m³/h"
        eu = await (await gas["Totaliser"].get_child(["0:EngineeringUnits"])).read_value()
        assert eu.UnitId == 5067857
        steam = await meter_vars(client, "steam-main")
        eu = await (await steam["Totaliser"].get_child(["0:EngineeringUnits"])).read_value()
        assert eu.DisplayName.Text == "kg"

        async def totalised() -> float | None:
            value = float(await gas["Totaliser"].read_value())
            return value if value > 0 else None

        await eventually(totalised, what="gas totalised")
        truth = plant.pause()
        await plant.gateways["opc1"].publish()  # type: ignore[attr-defined]
        dv = await gas["Totaliser"].read_data_value()
        assert dv.StatusCode.is_good()
        counter = truth["meters"]["boiler-gas"]["counters"]["volume"]
        assert counter["unit"] == "m**3"
        assert dv.Value.Value == pytest.approx(counter["value"], abs=1e-9)
        assert await gas["Flow"].read_value() == pytest.approx(truth["meters"]["boiler-gas"]["rate"]["value"])
        mass = truth["meters"]["steam-main"]["counters"]["mass"]
        assert await steam["Totaliser"].read_value() == pytest.approx(mass["value"], abs=1e-9)
        assert 7.5 < await steam["Pressure"].read_value() < 8.5
        assert 175 < await steam["Temperature"].read_value() < 185


class Collector:
    def __init__(self) -> None:
        self.values: list[tuple[float, ua.DataValue]] = []

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        self.values.append((val, data.monitored_item.Value))


async def test_subscription_sees_values_move_and_faults_as_status() -> None:
    config = plant_config([opcua_meter("gas-1", "gas", base_m3_h=500.0, peak_m3_h=600.0)],
                          gateways=[opcua_gateway()], acceleration=600.0)
    async with SimulatedPlant(config) as plant, httpx.AsyncClient(base_url=plant.control_url, timeout=5) as http:  # noqa: SIM117
        async with Client(endpoint(plant), timeout=10) as client:
            totaliser = (await meter_vars(client, "gas-1"))["Totaliser"]
            handler = Collector()
            sub = await client.create_subscription(50, handler)
            await sub.subscribe_data_change(totaliser)

            async def rising() -> bool | None:
                vals = [v for v, _ in handler.values]
                return True if len(vals) >= 3 and vals[-1] > vals[0] else None

            await eventually(rising, what="totaliser notifications")
            r = await http.post("/faults", json={"meter": "gas-1", "fault": "bad_status",
                                                 "status": "BadSensorFailure"})
            assert r.status_code == 200

            async def bad() -> bool | None:
                return True if any(dv.StatusCode.value == ua.StatusCodes.BadSensorFailure
                                   for _, dv in handler.values) else None

            await eventually(bad, what="BadSensorFailure notification")
            await http.delete("/faults", params={"meter": "gas-1"})
            await http.post("/faults", json={"meter": "gas-1", "fault": "offline"})
            dv = await eventually(lambda: _status(totaliser, ua.StatusCodes.BadNoCommunication),
                                  what="BadNoCommunication")
            assert dv.StatusCode.value == ua.StatusCodes.BadNoCommunication
            await http.delete("/faults", params={"meter": "gas-1"})
            await http.post("/faults", json={"meter": "gas-1", "fault": "clock_jump", "seconds": -7200})
            plant.pause()
            sim_now = plant.clock.now()
            dv = await eventually(lambda: _jumped(totaliser, sim_now), what="source time two hours back")
            assert dv.StatusCode.is_good()
            await sub.delete()


async def _status(node: Any, code: int) -> ua.DataValue | None:
    dv = await node.read_data_value(raise_on_bad_status=False)
    return dv if dv.StatusCode.value == code else None


async def _jumped(node: Any, sim_now: Any) -> ua.DataValue | None:
    dv = await node.read_data_value(raise_on_bad_status=False)
    ts = dv.SourceTimestamp
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=sim_now.tzinfo)
    return dv if abs((sim_now - timedelta(hours=2)) - ts) < timedelta(seconds=1) else None


async def test_stuck_and_counter_reset_on_a_totaliser() -> None:
    config = plant_config([opcua_meter("steam-1", "steam")], gateways=[opcua_gateway()], acceleration=600.0)
    async with SimulatedPlant(config) as plant:
        server = plant.gateways["opc1"]
        async with Client(endpoint(plant), timeout=10) as client:
            totaliser = (await meter_vars(client, "steam-1"))["Totaliser"]
            await eventually(lambda: _above(totaliser, 10.0), what="steam totalised")
            from simulators.faults import FaultSpec

            plant.set_fault("steam-1", FaultSpec(fault="stuck"))
            await server.publish()  # type: ignore[attr-defined]
            stuck = await totaliser.read_value()
            produced0 = plant.truth()["meters"]["steam-1"]["counters"]["mass"]["produced"]
            await eventually(lambda: _produced_past(plant, produced0 + 50), what="steam produced while stuck")
            await server.publish()  # type: ignore[attr-defined]
            assert await totaliser.read_value() == stuck
            plant.clear_fault("steam-1")
            plant.pause()  # first: at 600x a step between the reset and the read would move the counter on
            plant.set_fault("steam-1", FaultSpec(fault="counter_reset"))
            await server.publish()  # type: ignore[attr-defined]
            assert await totaliser.read_value() == 0.0
            assert plant.truth()["meters"]["steam-1"]["counters"]["mass"]["produced"] > produced0 + 50


async def _above(node: Any, value: float) -> bool | None:
    return True if await node.read_value() > value else None


async def _produced_past(plant: SimulatedPlant, value: float) -> bool | None:
    await asyncio.sleep(0)
    return True if plant.truth()["meters"]["steam-1"]["counters"]["mass"]["produced"] > value else None


async def test_basic256sha256_sign_and_encrypt_with_user_and_password(tmp_path: Path) -> None:
    config = plant_config([opcua_meter("gas-1", "gas")],
                          gateways=[opcua_gateway(cert_dir=str(tmp_path / "server"), username="operator",
                                                  password="s3cret", security=["Basic256Sha256"])])
    key, cert = tmp_path / "client-key.pem", tmp_path / "client-cert.der"
    await setup_self_signed_certificate(key, cert, "urn:carbonwatch:test-client", "127.0.0.1",
                                        [ExtendedKeyUsageOID.CLIENT_AUTH], {"commonName": "test client"})
    async with SimulatedPlant(config) as plant:
        client = Client(endpoint(plant), timeout=10)
        client.application_uri = "urn:carbonwatch:test-client"
        await client.set_security_string(f"Basic256Sha256,SignAndEncrypt,{cert},{key}")
        client.set_user("operator")
        client.set_password("s3cret")
        async with client:
            value = await (await meter_vars(client, "gas-1"))["Pressure"].read_value()
            assert not math.isnan(value) and value > 0
        # no anonymous access, no wrong password, no unencrypted endpoint
        wrong = Client(endpoint(plant), timeout=5)
        wrong.application_uri = "urn:carbonwatch:test-client"
        await wrong.set_security_string(f"Basic256Sha256,SignAndEncrypt,{cert},{key}")
        wrong.set_user("operator")
        wrong.set_password("guess")
        with pytest.raises(Exception):  # noqa: B017 - asyncua raises BadUserAccessDenied or similar
            async with wrong:
                pass
        plain = Client(endpoint(plant), timeout=5)
        with pytest.raises(Exception):  # noqa: B017 - no None endpoint: asyncua refuses to open the session
            async with plain:
                await (await meter_vars(plain, "gas-1"))["Pressure"].read_value()
