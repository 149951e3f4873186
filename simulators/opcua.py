# asyncua types its ids as NewTypes (Int16, String, UInt32) and re-exports names implicitly:
# mypy: disable-error-code="arg-type,attr-defined"
"""OPC UA server (asyncua) for the simulated gas and steam meters: flow, totaliser, pressure, temperature.

Address space (namespace URI `urn:carbonwatch:simulators`, index looked up by URI):
  Objects/Meters/<meter id>/{Flow, Totaliser, Pressure, Temperature}   NodeId ns=<idx>;s=<meter id>.<Name>
Each variable is a Double with an EngineeringUnits property (browse name in namespace 0, EUInformation
with UN/CEFACT codes) and carries the meter's status code; values and SourceTimestamps follow the
simulated clock and are published every PUBLISH_S real seconds, so subscriptions see them change. For the
read-limited faults (transient_zero, garbage_high) one publish cycle is one read: a client sees the glitch if
it samples within it (a subscription with a publishing interval longer than PUBLISH_S may not).
Security: None and Basic256Sha256 (Sign, SignAndEncrypt) with a self-signed certificate made at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from asyncua import Server, ua
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.ua.uaerrors import UaError
from cryptography.x509.oid import ExtendedKeyUsageOID

from calc.devicemap import DeviceMap, DevicePoint
from calc.devices import device_map
from simulators.clock import SimClock
from simulators.config import OpcUaGateway
from simulators.errors import StartError
from simulators.faults import FaultKind
from simulators.maps import DeviceValues, values_of
from simulators.meter import MeterSim

log = logging.getLogger(__name__)

NAMESPACE = "urn:carbonwatch:simulators"
UNECE = "http://www.opcfoundation.org/UA/units/un/cefact"
PUBLISH_S = 0.2


@dataclass(frozen=True)
class Unit:
    code: str      # UN/CEFACT common code
    symbol: str    # display name
    pint: str      # the same unit for pint (calc.units)

    @property
    def unit_id(self) -> int:
        value = 0
        for ch in self.code:
            value = (value << 8) | ord(ch)
        return value


def variables(device: DeviceMap) -> dict[str, tuple[DevicePoint, Unit]]:
    """Variable name -> (declared point, its EngineeringUnits) of an OPC UA map."""
    out: dict[str, tuple[DevicePoint, Unit]] = {}
    for p in device.points:
        assert p.node is not None and p.ua_unit is not None, f"{device.name}.{p.quantity}: node and ua_unit"
        out[p.node] = (p, Unit(p.ua_unit[0], p.ua_unit[1], p.unit))
    return out


def eu_information(unit: Unit) -> ua.EUInformation:
    return ua.EUInformation(NamespaceUri=UNECE, UnitId=unit.unit_id, DisplayName=ua.LocalizedText(unit.symbol),
                            Description=ua.LocalizedText(unit.pint))


class _Users:
    """Accepts only the configured user name and password (when a gateway sets them)."""

    def __init__(self, username: str, password: str) -> None:
        self._username, self._password = username, password

    def get_user(self, iserver: Any, username: str | None = None, password: str | None = None,
                 certificate: Any = None) -> User | None:
        if username == self._username and password == self._password:
            return User(role=UserRole.User)
        return None


class OpcUaGatewayServer:
    """One asyncua server with the meters of one `opcua` gateway."""

    def __init__(self, gateway: OpcUaGateway, meters: list[MeterSim], clock: SimClock, seed: int) -> None:
        self.gateway = gateway
        self.meters = meters
        self.clock = clock
        self.seed = seed
        self.cert_dir = gateway.cert_dir or Path(tempfile.gettempdir()) / "carbonwatch-sim" / f"opcua-{gateway.id}"
        self.cert_file = self.cert_dir / "server-cert.der"
        self.key_file = self.cert_dir / "server-key.pem"
        self._server: Server | None = None
        self._nodes: dict[str, dict[str, ua.NodeId]] = {}
        self._task: asyncio.Task[None] | None = None
        self.namespace_index = 0

    @property
    def endpoint(self) -> str:
        return self.gateway.endpoint

    async def _make_server(self) -> Server:
        gw = self.gateway
        users = _Users(gw.username, gw.password) if gw.username and gw.password is not None else None
        server = Server(user_manager=users)
        await server.init()
        server.set_endpoint(gw.endpoint)
        server.set_server_name(f"carbonwatch simulated meters ({gw.id})")
        app_uri = f"urn:carbonwatch:simulators:{gw.id}"
        await server.set_application_uri(app_uri)
        policies = []
        if "None" in gw.security:
            policies.append(ua.SecurityPolicyType.NoSecurity)
        if "Basic256Sha256" in gw.security:
            policies += [ua.SecurityPolicyType.Basic256Sha256_Sign, ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt]
            self.cert_dir.mkdir(parents=True, exist_ok=True)
            await setup_self_signed_certificate(self.key_file, self.cert_file, app_uri, gw.host,
                                                [ExtendedKeyUsageOID.SERVER_AUTH],
                                                {"commonName": f"carbonwatch simulator {gw.id}",
                                                 "organizationName": "carbonwatch"})
            await server.load_certificate(str(self.cert_file))
            await server.load_private_key(str(self.key_file))
        server.set_security_policy(policies)
        server.set_identity_tokens([ua.UserNameIdentityToken] if users else
                                   [ua.AnonymousIdentityToken, ua.UserNameIdentityToken])
        return server

    async def _build_address_space(self, server: Server) -> None:
        idx = await server.register_namespace(NAMESPACE)
        self.namespace_index = idx
        folder = await server.nodes.objects.add_folder(ua.NodeId("Meters", idx), ua.QualifiedName("Meters", idx))
        for meter in self.meters:
            device = device_map(meter.meter.map)
            ns = await server.register_namespace(device.namespace)  # NAMESPACE's index when the map's is that
            obj = await folder.add_object(ua.NodeId(meter.id, ns), ua.QualifiedName(meter.id, ns))
            nodes: dict[str, ua.NodeId] = {}
            for name, (_, unit) in variables(device).items():
                var = await obj.add_variable(ua.NodeId(f"{meter.id}.{name}", ns), ua.QualifiedName(name, ns),
                                             0.0, varianttype=ua.VariantType.Double)
                # EngineeringUnits must be a namespace-0 browse name, or standard clients do not find it
                await var.add_property(ua.NodeId(f"{meter.id}.{name}.EngineeringUnits", ns),
                                       ua.QualifiedName("EngineeringUnits", 0), eu_information(unit),
                                       datatype=ua.NodeId(ua.ObjectIds.EUInformation))
                nodes[name] = var.nodeid
            self._nodes[meter.id] = nodes

    def values_of(self, meter: MeterSim, consume: bool = False) -> dict[str, float]:
        """The variables' values; `consume`: this is a publish cycle, which read-limited faults count as a read."""
        counts, rate = meter.read_counter() if consume else meter.shown()
        spec = meter.meter.sim
        device = device_map(meter.meter.map)
        shown = values_of(device, DeviceValues(counter=counts, rate=rate, step=meter.steps, seed=self.seed,
                                               key=meter.id, pressure_bar=spec.pressure_bar,
                                               temperature_c=meter.temperature_c,
                                               export_counter=meter.exported))
        return {name: float(shown[p.label]) for name, (p, _) in variables(device).items()}

    async def publish(self) -> None:
        """Write every meter's current values, status and source time into the address space."""
        server = self._server
        if server is None:
            return
        elapsed = self.clock.elapsed_s()
        now = self.clock.now()
        for meter in self.meters:
            meter.advance(elapsed)
            faults = meter.faults
            status = ua.StatusCodes.Good
            if FaultKind.OFFLINE in faults:
                status = ua.StatusCodes.BadNoCommunication
            elif (bad := faults.get(FaultKind.BAD_STATUS)) is not None:
                status = getattr(ua.StatusCodes, bad.status)
            jump = faults.get(FaultKind.CLOCK_JUMP)
            source_time = now + timedelta(seconds=jump.seconds) if jump else now
            for name, value in self.values_of(meter, consume=True).items():
                dv = ua.DataValue(Value=ua.Variant(value, ua.VariantType.Double), StatusCode=ua.StatusCode(status),
                                  SourceTimestamp=source_time)
                await server.write_attribute_value(self._nodes[meter.id][name], dv)

    async def _publish_loop(self) -> None:
        while True:
            try:
                await self.publish()
            except (UaError, OSError):
                log.exception("publishing OPC UA values of gateway %s failed", self.gateway.id)
            await asyncio.sleep(PUBLISH_S)

    async def start(self) -> None:
        gw = self.gateway
        with socket.socket() as probe:  # a taken port is a clear error, not a half-started server
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((gw.host, gw.port))
            except OSError as exc:
                raise StartError(f"OPC UA gateway {gw.id} cannot listen on {gw.host}:{gw.port}: "
                                   f"{exc.strerror}") from exc
        server = await self._make_server()
        await self._build_address_space(server)
        await server.start()
        self._server = server
        await self.publish()
        self._task = asyncio.create_task(self._publish_loop(), name=f"opcua-publish-{gw.id}")
        log.info("OPC UA gateway %s on %s with %d meters", gw.id, gw.endpoint, len(self.meters))

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        server, self._server = self._server, None
        if server is not None:
            await server.stop()
