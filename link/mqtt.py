"""The one paho-mqtt 2.x client factory every part uses (edge publisher, ingest, the API's link, SCADA's live feed,
Sparkplug): the broker URL, login, TLS rule and persistent session from [mqtt], and the MQTT 5 → 3.1.1 choice.

TLS rule (one for every part): TLS is on when the URL says `mqtts://` (or `ssl://`) OR when a CA file or a client
certificate is configured (`ca_file`, `cert_file`); the broker's certificate is then always checked against the
CA (the system's when no `ca_file`), and `tls_insecure = true` skips only the host-name check. The port still
comes from the URL (default 8883 for mqtts://, 1883 for mqtt://).

The factory builds and configures the client; it does not run it: the edge drives paho from its asyncio loop,
the others run paho's own network thread (`loop_start`). Decisions are pure functions (`client_spec`,
`connect_args`, `ProtocolChoice`) so they are unit-tested without a broker; `make_client` applies them.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from calc.broker import BrokerSettings

Version = MQTTProtocolVersion  # the MQTT version a client speaks
V5 = Version.MQTTv5
V311 = Version.MQTTv311
#: CONNACK codes that say "not this protocol version": MQTT 5 reason code 132, MQTT 3.1.1 return code 1
UNSUPPORTED_PROTOCOL = (132, 1)
#: with protocol "auto": a connection that gets no CONNACK to MQTT 5 in this time tries 3.1.1 (some 3.1.1-only
#: brokers, amqtt, neither answer nor close on an MQTT 5 CONNECT)
V5_HANDSHAKE_TIMEOUT_S = 3.0
#: with protocol "auto": this many connections closed before any CONNACK to MQTT 5 mean the broker cannot parse it
V5_EARLY_CLOSES = 2

ProtocolSetting = Literal["auto", "5", "3.1.1"]


def uses_tls(settings: BrokerSettings) -> bool:
    """The TLS rule: `mqtts://` (or `ssl://`), or a CA file or client certificate configured."""
    return settings.tls or settings.ca_file is not None or settings.cert_file is not None


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """What `tls_set` gets: the CA (None: the system's), the client certificate and key, and whether the host name
    check is skipped (the chain is checked against the CA either way)."""

    ca_file: str | None
    cert_file: str | None
    key_file: str | None
    insecure: bool


@dataclass(frozen=True, slots=True)
class ClientSpec:
    """Everything `make_client` applies to a new paho client (pure data, compared in tests)."""

    client_id: str
    protocol: Version
    clean_session: bool | None  # MQTT 3.1.1 only; MQTT 5 says it at connect (clean_start, session expiry)
    login: tuple[str, str | None] | None
    tls: TlsFiles | None
    manual_ack: bool
    max_inflight: int | None
    reconnect_delay_s: tuple[int, int] | None  # paho's own reconnects (loop_start); None: the caller reconnects


def client_spec(settings: BrokerSettings, client_id: str, protocol: Version = V311, *, persistent: bool = False,
                manual_ack: bool = False, max_inflight: int | None = None,
                reconnect_delay_s: tuple[int, int] | None = (1, 10)) -> ClientSpec:
    """The client a part asks for: `persistent` keeps the session (and QoS 1 messages) while the client is away."""
    tls = TlsFiles(settings.ca_file, settings.cert_file, settings.key_file, settings.tls_insecure) \
        if uses_tls(settings) else None
    clean_session = None if protocol == V5 else not persistent
    return ClientSpec(client_id, protocol, clean_session, settings.login, tls, manual_ack, max_inflight,
                      reconnect_delay_s)


def build(spec: ClientSpec) -> mqtt.Client:
    """A paho client configured by `spec`; queued messages are unbounded (0) so paho never drops one itself."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=spec.client_id, protocol=spec.protocol,
                         clean_session=spec.clean_session, manual_ack=spec.manual_ack)
    if spec.login is not None:
        client.username_pw_set(*spec.login)
    if spec.tls is not None:
        client.tls_set(ca_certs=spec.tls.ca_file, certfile=spec.tls.cert_file, keyfile=spec.tls.key_file,
                       cert_reqs=ssl.CERT_REQUIRED)
        client.tls_insecure_set(spec.tls.insecure)
    if spec.reconnect_delay_s is not None:
        client.reconnect_delay_set(*spec.reconnect_delay_s)
    if spec.max_inflight is not None:
        client.max_inflight_messages_set(spec.max_inflight)
    client.max_queued_messages_set(0)
    return client


def make_client(settings: BrokerSettings, client_id: str, protocol: Version = V311, *, persistent: bool = False,
                manual_ack: bool = False, max_inflight: int | None = None,
                reconnect_delay_s: tuple[int, int] | None = (1, 10)) -> mqtt.Client:
    """`build(client_spec(...))`: the one way a part gets its paho client."""
    return build(client_spec(settings, client_id, protocol, persistent=persistent, manual_ack=manual_ack,
                             max_inflight=max_inflight, reconnect_delay_s=reconnect_delay_s))


def connect_args(settings: BrokerSettings, keepalive_s: int, protocol: Version = V311,
                 session_expiry_s: int | None = None) -> dict[str, Any]:
    """Keyword arguments for `client.connect` / `connect_async`; with MQTT 5 and `session_expiry_s`, the session
    is resumed (clean_start false) and kept that long after a disconnect."""
    args: dict[str, Any] = {"host": settings.host, "port": settings.port, "keepalive": keepalive_s}
    if protocol == V5 and session_expiry_s is not None:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = session_expiry_s
        args.update(clean_start=False, properties=props)
    return args


def is_unsupported_protocol(reason: ReasonCode) -> bool:
    """The broker's CONNACK refuses the protocol version (not the login or anything else)."""
    return reason.is_failure and (reason.value in UNSUPPORTED_PROTOCOL or "protocol" in str(reason).lower())


class ProtocolChoice:
    """Which MQTT version to speak per [mqtt] protocol: "auto" starts with 5 and falls back to 3.1.1 for good once
    the broker shows it does not take 5; "5" and "3.1.1" never change. Pure: the caller reports what it saw."""

    def __init__(self, setting: ProtocolSetting = "auto") -> None:
        self.setting = setting
        self.protocol = V311 if setting == "3.1.1" else V5
        self._early_closes = 0

    @property
    def name(self) -> str:
        return "5" if self.protocol == V5 else "3.1.1"

    def refused(self, reason: ReasonCode) -> bool:
        """A refused CONNACK: True when it says the broker does not take MQTT 5 (a reason to fall back)."""
        return self.protocol == V5 and is_unsupported_protocol(reason)

    def closed_before_connack(self) -> bool:
        """A connection closed before any CONNACK: True once that happened V5_EARLY_CLOSES times on MQTT 5."""
        if self.protocol != V5:
            return False
        self._early_closes += 1
        return self._early_closes >= V5_EARLY_CLOSES

    def waited_for_connack(self, waited_s: float) -> bool:
        """No CONNACK yet after `waited_s`: True when MQTT 5 has had its V5_HANDSHAKE_TIMEOUT_S."""
        return self.protocol == V5 and waited_s >= V5_HANDSHAKE_TIMEOUT_S

    def connected(self) -> None:
        self._early_closes = 0

    def fall_back(self) -> bool:
        """Switch to MQTT 3.1.1 when the setting allows it ("auto"); True when it switched."""
        if self.protocol != V5 or self.setting != "auto":
            return False
        self.protocol = V311
        self._early_closes = 0
        return True
