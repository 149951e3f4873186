"""OPC UA driver (asyncua): subscriptions with monitored items, polling as the fallback, reconnect and
re-subscribe after a server restart (asyncua does not do that by itself), status codes carried into quality.

A supervisor task owns the connection: connect, resolve namespace URIs, subscribe to every node of the
meters behind this server, then wait for the connection to be lost; on loss it backs off (capped,
jittered) and starts again. `read(meter)` answers from the latest notifications and reads directly what
has not been notified (or everything, in poll mode).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.node import Node
from asyncua.crypto import security_policies
from asyncua.ua.uaerrors import UaError

from calc.schema import Quality
from calc.units import UnitError, conversion_factor
from edge.config import MeterDevice, OpcUaGateway
from edge.drivers import PointValue, bad_values
from link.backoff import backoff_delay

log = logging.getLogger(__name__)

POLICIES: dict[str, Any] = {
    "Basic256Sha256": security_policies.SecurityPolicyBasic256Sha256,
    "Aes128Sha256RsaOaep": security_policies.SecurityPolicyAes128Sha256RsaOaep,
    "Aes256Sha256RsaPss": security_policies.SecurityPolicyAes256Sha256RsaPss,
}
MODES = {"Sign": ua.MessageSecurityMode.Sign, "SignAndEncrypt": ua.MessageSecurityMode.SignAndEncrypt}
ERRORS = (OSError, TimeoutError, UaError, ConnectionError, asyncio.IncompleteReadError)

# EngineeringUnits (EUInformation.UnitId, UN/CEFACT common codes) -> pint, for checking configured units
UNECE_UNITS = {"MQH": "m**3/h", "MTQ": "m**3", "KGM": "kg", "E93": "kg/h", "TNE": "t", "BAR": "bar",
               "CEL": "degC", "KWH": "kWh", "WHR": "Wh", "KWT": "kW", "WTT": "W", "VLT": "V", "AMP": "A",
               "HTZ": "Hz", "GJ": "GJ", "MWH": "MWh", "LTR": "l", "KPA": "kPa", "PAL": "Pa"}


def unece_unit(unit_id: int) -> str | None:
    """The pint unit of a UN/CEFACT code packed into EUInformation.UnitId, if it is one we know."""
    code = "".join(chr((unit_id >> shift) & 0xFF) for shift in (16, 8, 0)).lstrip("\x00")
    return UNECE_UNITS.get(code)


def unit_problem(server_unit: str | None, configured: str) -> str | None:
    """Why the server's EngineeringUnits disagree with the configured unit, or None."""
    if server_unit is None:
        return None
    try:
        factor = conversion_factor(server_unit, configured)
    except UnitError:
        return f"unit: server says {server_unit}, config says {configured}"
    if abs(factor - 1.0) > 1e-12:
        return f"unit: server says {server_unit}, config says {configured} (x{factor:g})"
    return None


def quality_of(status: ua.StatusCode | None) -> tuple[Quality, str | None]:
    """OPC UA status code -> sample quality and, unless good, the status name as the reason."""
    if status is None or status.is_good():
        return Quality.GOOD, None
    name = status.name
    return (Quality.UNCERTAIN if status.is_uncertain() else Quality.BAD), f"opc ua status {name}"


def _aware(ts: datetime | None) -> datetime | None:
    if ts is None:
        return None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


class _Handler:
    """Keeps the latest DataValue of every monitored node."""

    def __init__(self, cache: dict[str, ua.DataValue], ids: dict[ua.NodeId, str]) -> None:
        self.cache = cache
        self.ids = ids
        self.notifications = 0

    def datachange_notification(self, node: Node, val: Any, data: Any) -> None:
        key = self.ids.get(node.nodeid)
        if key is not None:
            self.cache[key] = data.monitored_item.Value
            self.notifications += 1

    def status_change_notification(self, status: Any) -> None:
        log.warning("subscription status changed: %s", status)


class OpcUaDriver:
    """Reads the meters of one OPC UA server."""

    def __init__(self, gateway: OpcUaGateway, meters: Sequence[MeterDevice], rng: random.Random | None = None
                 ) -> None:
        self.gateway = gateway
        self.meters = list(meters)
        self._rng = rng or random.Random()
        self._client: Client | None = None
        self._nodes: dict[str, ua.NodeId] = {}  # configured node string -> resolved NodeId
        self._cache: dict[str, ua.DataValue] = {}
        self._connected = asyncio.Event()
        self._lost = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self.last_error: str | None = None
        self.connects = 0  # how many sessions were made (a reconnect adds one)
        self.handler: _Handler | None = None
        self._stopping = False
        # (meter, quantity) -> why its unit disagrees with the server's EngineeringUnits
        self._unit_problems: dict[tuple[str, str], str] = {}

    async def __aenter__(self) -> Self:
        self._supervisor = asyncio.create_task(self._supervise(), name=f"opcua-{self.gateway.id}")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self._stopping = True  # asyncua's wait_for calls may swallow a cancel: the loop checks this too
        self._lost.set()
        task, self._supervisor = self._supervisor, None
        if task is not None:
            task.cancel()
            done, _ = await asyncio.wait([task], timeout=3.0)
            if task in done and not task.cancelled() and task.exception() is not None:
                log.warning("OPC UA supervisor of %s ended with %r", self.gateway.id, task.exception())
        await self._close()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self, timeout_s: float) -> None:
        await asyncio.wait_for(self._connected.wait(), timeout_s)

    # -- connection ---------------------------------------------------------------------------------------
    async def _supervise(self) -> None:
        failures = 0
        while not self._stopping:
            try:
                await self._session()
                failures = 0
            except ERRORS as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"[:200]
                log.warning("OPC UA %s (%s): %s", self.gateway.id, self.gateway.url, self.last_error)
                failures += 1
            finally:
                self._connected.clear()
                self._cache.clear()
                await self._close()
            if not self._stopping:
                await asyncio.sleep(backoff_delay(failures, max(self.gateway.backoff_s, 0.2),
                                                  max(self.gateway.backoff_max_s, 0.5), self._rng))

    async def _session(self) -> None:
        gw = self.gateway
        client = Client(gw.url, timeout=gw.timeout_s, watchdog_intervall=min(1.0, gw.timeout_s))
        self._client = client
        if gw.username is not None:
            client.set_user(gw.username)
            client.set_password(gw.password or "")
        if gw.security_policy != "None":
            assert gw.certificate is not None and gw.private_key is not None
            await client.set_security(POLICIES[gw.security_policy], str(gw.certificate), str(gw.private_key),
                                      server_certificate=str(gw.server_certificate) if gw.server_certificate
                                      else None, mode=MODES[gw.security_mode])
        self._lost.clear()

        async def lost(exc: Exception) -> None:
            self.last_error = f"connection lost: {exc}"[:200]
            self._lost.set()

        client.connection_lost_callback = lost
        await asyncio.wait_for(client.connect(), gw.timeout_s * 2)
        self.connects += 1
        self._nodes = await self._resolve(client)
        self._unit_problems = await self._check_units(client)
        if gw.mode == "subscribe":
            ids = {nodeid: key for key, nodeid in self._nodes.items()}
            self.handler = _Handler(self._cache, ids)
            sub = await client.create_subscription(gw.publishing_interval_s * 1000, self.handler)
            await sub.subscribe_data_change([client.get_node(n) for n in self._nodes.values()], queuesize=1)
        self._connected.set()
        self.last_error = None
        log.info("OPC UA %s: connected to %s, %d nodes (%s)", gw.id, gw.url, len(self._nodes), gw.mode)
        await self._lost.wait()

    async def _resolve(self, client: Client) -> dict[str, ua.NodeId]:
        """Node strings of every point; `nsu=URI;...` gets the server's index for that URI."""
        indexes: dict[str, int] = {}
        out: dict[str, ua.NodeId] = {}
        for meter in self.meters:
            for point in meter.all_points:
                assert point.node is not None
                text = point.node
                if text.startswith("nsu="):
                    uri, _, rest = text[4:].partition(";")
                    if uri not in indexes:
                        indexes[uri] = await client.get_namespace_index(uri)
                    text = f"ns={indexes[uri]};{rest}"
                out[point.node] = ua.NodeId.from_string(text)
        return out

    async def _check_units(self, client: Client) -> dict[tuple[str, str], str]:
        """Compare each point's unit with the node's EngineeringUnits, where the server publishes them."""
        problems: dict[tuple[str, str], str] = {}
        for meter in self.meters:
            for point in meter.all_points:
                assert point.node is not None
                try:
                    prop = await client.get_node(self._nodes[point.node]).get_child("0:EngineeringUnits")
                    eu = await prop.read_value()
                except ERRORS:
                    continue  # no EngineeringUnits property: nothing to check against
                problem = unit_problem(unece_unit(int(getattr(eu, "UnitId", 0) or 0)), point.unit)
                if problem is not None:
                    log.warning("OPC UA %s, meter %s, %s: %s", self.gateway.id, meter.id, point.quantity, problem)
                    problems[(meter.id, point.quantity)] = problem
        return problems

    async def _close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(*ERRORS, asyncio.CancelledError):
                await asyncio.wait_for(client.disconnect(), 2.0)

    # -- reading ------------------------------------------------------------------------------------------
    async def read(self, meter: MeterDevice) -> list[PointValue]:
        client = self._client
        if client is None or not self.connected:
            return bad_values(meter, f"no connection to {self.gateway.url}"
                              + (f" ({self.last_error})" if self.last_error else ""))
        points = meter.all_points
        values: dict[str, ua.DataValue] = {}
        missing = []
        for point in points:
            assert point.node is not None
            cached = self._cache.get(point.node) if self.gateway.mode == "subscribe" else None
            if cached is None:
                missing.append(point.node)
            else:
                values[point.node] = cached
        if missing:
            try:
                read = await asyncio.wait_for(
                    client.read_attributes([client.get_node(self._nodes[n]) for n in missing]),
                    self.gateway.timeout_s)
            except ERRORS as exc:
                return bad_values(meter, f"timeout: {exc}" if isinstance(exc, TimeoutError) else
                                  f"opc ua read failed: {exc}"[:200])
            values.update(zip(missing, read, strict=True))
        out = []
        for point in points:
            assert point.node is not None
            dv = values[point.node]
            quality, reason = quality_of(dv.StatusCode)
            raw = dv.Value.Value if dv.Value is not None else None
            if not isinstance(raw, int | float) or isinstance(raw, bool):
                quality, reason, raw = Quality.BAD, reason or f"not a number: {raw!r}", None
            elif quality == Quality.BAD:
                raw = None
            elif (meter.id, point.quantity) in self._unit_problems:
                quality = Quality.UNCERTAIN
                reason = "; ".join(r for r in (reason, self._unit_problems[(meter.id, point.quantity)]) if r)
            out.append(PointValue(point, raw, quality, reason, _aware(dv.SourceTimestamp)
                                  if self.gateway.timestamps == "source" else None))
        return out

