# asyncua types its ids as NewTypes (Int16, String, UInt32) and re-exports names implicitly:
# mypy: disable-error-code="arg-type,attr-defined"
"""OPC UA server (asyncua): Objects/CarbonWatch/{site}/{area}/{meter}, each node with the CO2e figures as Double
variables carrying EngineeringUnits, source timestamps and status codes, plus AlertState and ActiveAlerts.

Security by default: Basic256Sha256 Sign and SignAndEncrypt only, user name and password required; policy None
and anonymous log-in exist only when configured. The address space is documented in docs/scada.md.
"""

from __future__ import annotations

import hmac
import logging
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from asyncua import Server, ua
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.crypto.permission_rules import User, UserRole
from cryptography.x509.oid import ExtendedKeyUsageOID

from calc.schema import Quality
from scada.config import OpcUaSettings
from scada.errors import ServeError
from scada.figures import FIGURES, UNITS, Boundary, BoundaryKind, Figure, Snapshot, changed

log = logging.getLogger("carbonwatch.scada.opcua")

UNECE = "http://www.opcfoundation.org/UA/units/un/cefact"
# unit -> (UN/CEFACT common code, or None when it has none: UnitId -1 as Part 8 says; display name; description)
EU_CODES: dict[str, tuple[str | None, str, str]] = {
    "kg": ("KGM", "kg", "kg CO2e"), "kg/h": ("E93", "kg/h", "kg/h CO2e"),
    "kgce": ("KGM", "kgce", "kg of standard coal equivalent (GB/T 2589)"),
    "kg/unit": (None, "kg/unit", "kg CO2e per unit of product (the unit of the plant's production counter)"),
    "kgce/unit": (None, "kgce/unit", "kg of standard coal equivalent per unit of product"),
}
POLICIES = {
    "None": ua.SecurityPolicyType.NoSecurity,
    "Basic256Sha256_Sign": ua.SecurityPolicyType.Basic256Sha256_Sign,
    "Basic256Sha256_SignAndEncrypt": ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
}
STATUS = {Quality.GOOD: ua.StatusCodes.Good, Quality.UNCERTAIN: ua.StatusCodes.UncertainLastUsableValue,
          Quality.BAD: ua.StatusCodes.BadNoData}


def unit_id(code: str | None) -> int:
    """The UN/CEFACT common code packed into an integer, as OPC UA Part 8 defines EUInformation.UnitId (-1: none)."""
    if code is None:
        return -1
    value = 0
    for ch in code:
        value = (value << 8) | ord(ch)
    return value


def eu_information(unit: str) -> ua.EUInformation:
    code, symbol, description = EU_CODES[unit]
    return ua.EUInformation(NamespaceUri=UNECE, UnitId=unit_id(code), DisplayName=ua.LocalizedText(symbol),
                            Description=ua.LocalizedText(description))


def node_path(site: str, b: Boundary) -> str:
    """String NodeId of a boundary's object: site, site/area, site/area/meter."""
    if b.kind is BoundaryKind.SITE:
        return site
    if b.kind is BoundaryKind.AREA:
        return f"{site}/{b.id}"
    return f"{site}/{b.area}/{b.id}"


class _Users:
    """Accepts the configured users (constant-time comparison), and anonymous sessions only when allowed."""

    def __init__(self, settings: OpcUaSettings) -> None:
        self._users = {u.username: u.password for u in settings.users}
        self._anonymous = settings.allow_anonymous

    def get_user(self, iserver: Any, username: str | None = None, password: str | None = None,
                 certificate: Any = None) -> User | None:
        if username is None:
            return User(role=UserRole.User) if self._anonymous and certificate is None else None
        expected = self._users.get(username)
        if expected is None or password is None:
            return None
        if hmac.compare_digest(expected.encode(), password.encode()):
            return User(role=UserRole.User)
        return None


class OpcUaSink:
    """Serves the figures of one site; `update(snapshot)` writes what changed (subscribers get notified)."""

    def __init__(self, settings: OpcUaSettings, site: str, cert_dir: Path, port: int | None = None) -> None:
        self.settings = settings
        self.site = site
        self.cert_dir = cert_dir
        self.port = port or settings.port
        self.server: Server | None = None
        self.namespace_index = 0
        self.nodes: dict[tuple[str, str], ua.NodeId] = {}   # (boundary key, variable name) -> node id
        self.last: Snapshot | None = None

    @property
    def endpoint(self) -> str:
        return self.settings.endpoint(self.port)

    async def _make_server(self) -> Server:
        s = self.settings
        server = Server(user_manager=_Users(s))
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name(f"carbonwatch SCADA ({self.site})")
        app_uri = f"urn:carbonwatch:scada:{self.site}"
        await server.set_application_uri(app_uri)
        if any(p != "None" for p in s.security):
            self.cert_dir.mkdir(parents=True, exist_ok=True)
            key_file, cert_file = self.cert_dir / "server-key.pem", self.cert_dir / "server-cert.der"
            await setup_self_signed_certificate(key_file, cert_file, app_uri, s.host,
                                                [ExtendedKeyUsageOID.SERVER_AUTH],
                                                {"commonName": f"carbonwatch scada {self.site}",
                                                 "organizationName": "carbonwatch"})
            key_file.chmod(0o600)
            await server.load_certificate(str(cert_file))
            await server.load_private_key(str(key_file))
        server.set_security_policy([POLICIES[p] for p in s.security])
        tokens: list[type] = [ua.UserNameIdentityToken] if s.users else []
        if s.allow_anonymous:
            tokens.append(ua.AnonymousIdentityToken)
        server.set_identity_tokens(tokens)
        return server

    async def _build(self, server: Server, snapshot: Snapshot) -> None:
        idx = await server.register_namespace(self.settings.namespace)
        self.namespace_index = idx
        root = await server.nodes.objects.add_folder(ua.NodeId("CarbonWatch", idx),
                                                     ua.QualifiedName("CarbonWatch", idx))
        parents: dict[str, Any] = {}
        for b in boundaries_of(snapshot):
            path = node_path(self.site, b)
            parent = root if b.kind is BoundaryKind.SITE else parents[
                f"site:{self.site}" if b.kind is BoundaryKind.AREA else f"area:{b.area}"]
            obj = await parent.add_object(ua.NodeId(path, idx), ua.QualifiedName(b.id, idx))
            parents[b.key] = obj
            for name in FIGURES:
                var = await obj.add_variable(ua.NodeId(f"{path}.{name}", idx), ua.QualifiedName(name, idx),
                                             ua.Variant(float("nan"), ua.VariantType.Double))
                # EngineeringUnits must be a namespace-0 browse name, or standard clients do not find it
                await var.add_property(ua.NodeId(f"{path}.{name}.EngineeringUnits", idx),
                                       ua.QualifiedName("EngineeringUnits", 0),
                                       eu_information(UNITS[name]), datatype=ua.NodeId(ua.ObjectIds.EUInformation))
                self.nodes[(b.key, name)] = var.nodeid
            for name, vtype in (("AlertState", ua.VariantType.Int32), ("ActiveAlerts", ua.VariantType.UInt32)):
                var = await obj.add_variable(ua.NodeId(f"{path}.{name}", idx), ua.QualifiedName(name, idx),
                                             ua.Variant(0, vtype))
                self.nodes[(b.key, name)] = var.nodeid

    async def start(self, snapshot: Snapshot) -> None:
        s = self.settings
        with socket.socket() as probe:  # a taken port is a clear error, not a half-started server
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((s.host, self.port))
            except OSError as exc:
                raise ServeError(f"OPC UA server cannot listen on {s.host}:{self.port}: {exc.strerror}") from exc
        server = await self._make_server()
        await self._build(server, snapshot)
        await server.start()
        self.server = server
        await self.update(snapshot)
        log.info("OPC UA server on %s (%s)", self.endpoint, ", ".join(s.security))

    async def update(self, snapshot: Snapshot) -> None:
        server = self.server
        if server is None:
            return
        now = datetime.now(UTC)
        for key, name in changed(self.last, snapshot):
            figs = snapshot.items[key]
            if name == "AlertState":
                ts = figs.alerts_ts or snapshot.at
                for var, value, vtype in (("AlertState", int(figs.alert_state), ua.VariantType.Int32),
                                          ("ActiveAlerts", figs.active_alerts, ua.VariantType.UInt32)):
                    await server.write_attribute_value(self.nodes[(key, var)], ua.DataValue(
                        Value=ua.Variant(value, vtype), StatusCode=ua.StatusCode(ua.StatusCodes.Good),
                        SourceTimestamp=ts, ServerTimestamp=now))
                continue
            await server.write_attribute_value(self.nodes[(key, name)], data_value(figs.figures[name], now))
        self.last = snapshot

    async def stop(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            await server.stop()


def data_value(fig: Figure, now: datetime) -> ua.DataValue:
    value = fig.value if fig.value is not None else float("nan")
    return ua.DataValue(Value=ua.Variant(value, ua.VariantType.Double),
                        StatusCode=ua.StatusCode(STATUS[fig.quality]), SourceTimestamp=fig.ts or now,
                        ServerTimestamp=now)


def boundaries_of(snapshot: Snapshot) -> list[Boundary]:
    return [f.boundary for f in snapshot.items.values()]
