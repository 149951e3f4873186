"""The edge agent's config sections ([[gateways]], meters' device keys, [mqtt], [edge]) and loading them.

Validated at start-up; an error names the file, the key path and why. Sections owned by other parts
([simulator], meters' `sim`, [store], [api]) are ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from calc.broker import BrokerSettings, KeepAliveS, MqttProtocol
from calc.entries import with_devices
from calc.plant import Site, Variable, parse_plant
from calc.units import UnitError, check_dimension, conversion_factor
from edge.errors import ConfigError
from edge.maps import PULSE_TEMPLATES, TEMPLATES
from edge.points import Point
from plantfile import read_plant_file, with_mqtt_url

Ident = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.\-]+$")]


class _Gateway(BaseModel):
    # the simulators read the same [[gateways]] tables and keep their own keys there (offline_response, ...)
    model_config = ConfigDict(frozen=True, extra="ignore")

    id: Ident
    timeout_s: float = Field(default=1.0, gt=0, le=60, description="per request")
    retries: int = Field(default=2, ge=0, le=10, description="extra attempts after a timeout, jittered backoff")
    backoff_s: float = Field(default=0.05, ge=0, le=10)
    backoff_max_s: float = Field(default=2.0, ge=0, le=300)


class _ModbusGateway(_Gateway):
    max_gap: int = Field(default=8, ge=0, le=100, description="unused registers read to merge two requests")
    max_registers: int = Field(default=125, ge=1, le=125, description="per request (protocol limit 125)")


class ModbusTcpGateway(_ModbusGateway):
    kind: Literal["modbus_tcp"]
    host: str = "127.0.0.1"
    port: int = Field(default=502, ge=1, le=65535)


class ModbusRtuTcpGateway(_ModbusGateway):
    """Modbus RTU frames over a TCP socket (a transparent serial-to-Ethernet converter)."""

    kind: Literal["modbus_rtu_tcp"]
    host: str = "127.0.0.1"
    port: int = Field(default=4001, ge=1, le=65535)


class ModbusRtuGateway(_ModbusGateway):
    """An RS-485 bus on a local serial port: one request at a time on the bus."""

    kind: Literal["modbus_rtu"]
    device: str = Field(min_length=1, description="serial port, e.g. /dev/ttyUSB0")
    baudrate: int = Field(default=9600, gt=0)
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8


class OpcUaGateway(_Gateway):
    kind: Literal["opcua"]
    endpoint: str | None = Field(default=None, pattern=r"^opc\.tcp://", description="opc.tcp://host:port/path")
    host: str = "127.0.0.1"
    port: int = Field(default=4840, ge=1, le=65535)
    path: str = Field(default="", description="endpoint path when `endpoint` is not given")
    security_policy: Literal["None", "Basic256Sha256", "Aes128Sha256RsaOaep", "Aes256Sha256RsaPss"] = "None"
    security_mode: Literal["None", "Sign", "SignAndEncrypt"] = "None"
    certificate: Path | None = Field(default=None, description="client certificate (DER or PEM)")
    private_key: Path | None = None
    server_certificate: Path | None = None
    username: str | None = None
    password: str | None = None
    mode: Literal["subscribe", "poll"] = "subscribe"
    publishing_interval_s: float = Field(default=0.5, gt=0, le=3600)
    timeout_s: float = Field(default=4.0, gt=0, le=60)
    timestamps: Literal["source", "agent"] = Field(
        default="source", description="stamp samples with the server's SourceTimestamp or the agent's poll time")
    max_clock_skew_s: float = Field(default=300.0, gt=0, description="a source time further off is flagged "
                                    "`clock` and replaced by the agent's time")

    @property
    def url(self) -> str:
        return self.endpoint or f"opc.tcp://{self.host}:{self.port}{self.path}"

    @model_validator(mode="after")
    def _security(self) -> OpcUaGateway:
        if (self.security_policy == "None") != (self.security_mode == "None"):
            raise ValueError("security_policy and security_mode must both be None or both be set")
        if self.security_policy != "None" and (self.certificate is None or self.private_key is None):
            raise ValueError("a security policy needs `certificate` and `private_key`")
        return self


Gateway = Annotated[ModbusTcpGateway | ModbusRtuTcpGateway | ModbusRtuGateway | OpcUaGateway,
                    Field(discriminator="kind")]
MODBUS_KINDS = frozenset({"modbus_tcp", "modbus_rtu_tcp", "modbus_rtu"})
GATEWAY_KINDS = MODBUS_KINDS | {"opcua"}


class MeterDevice(BaseModel):
    """A meter as the edge agent sees it: its place in the plant plus how to read it."""

    model_config = ConfigDict(frozen=True, extra="ignore")  # `sim` and plant keys belong to others

    id: Ident
    area: Ident
    line: str | None = None
    gateway: Ident
    unit_id: int = Field(default=1, ge=0, le=255)
    map: str | None = Field(default=None, description="built-in register map template")
    points: tuple[Point, ...] = ()
    interval_s: float = Field(default=10.0, ge=0.01, le=86400)
    stuck_after: int = Field(default=3, ge=1, description="polls with a still counter and power > 0")
    max_power_kw: float | None = Field(default=None, gt=0, description="most power the meter carries: an energy "
                                       "counter advancing faster (x1.5) is implausible (its reading is deferred, "
                                       "then held or bridged)")
    max_rate_per_h: float | None = Field(default=None, gt=0, allow_inf_nan=False, description="the same limit for a "
                                         "counter that is not electric energy, in its unit per hour (e.g. m3/h for "
                                         "gas); without either, a limit is learned from the meter's history")
    gap_factor: float = Field(default=3.0, gt=1, le=1000, description="an interval above this many poll intervals "
                              "is flagged `gap` (ingest spreads its energy over it)")
    pulse_m3: float | None = Field(default=None, gt=0, allow_inf_nan=False,
                                   description="pulse-counter maps: m3 per pulse (the counter's scale)")
    _points: tuple[Point, ...] = PrivateAttr(default=())

    @field_validator("map")
    @classmethod
    def _known_map(cls, name: str | None) -> str | None:
        if name is not None and name not in TEMPLATES:
            raise ValueError(f"unknown register map {name!r}; known: {', '.join(sorted(TEMPLATES))}")
        return name

    @model_validator(mode="after")
    def _has_points(self) -> MeterDevice:
        if self.map is None and not self.points:
            raise ValueError("a meter needs `map` (a built-in template) or inline `points`")
        base = TEMPLATES[self.map] if self.map else ()
        if self.map in PULSE_TEMPLATES:
            if self.pulse_m3 is None:
                raise ValueError(f"map {self.map!r} needs pulse_m3 (m3 per pulse)")
            base = tuple(p.model_copy(update={"scale": self.pulse_m3}) for p in base)
        self._points = tuple(p.model_copy(update={"node": p.node.replace("{meter}", self.id)})
                             if p.node and "{meter}" in p.node else p for p in base + self.points)
        quantities = [p.quantity for p in self.all_points]
        dupes = sorted({q for q in quantities if quantities.count(q) > 1})
        if dupes:
            raise ValueError(f"quantity appears twice: {', '.join(dupes)}")
        return self

    @property
    def all_points(self) -> tuple[Point, ...]:
        """Template points (scaled by pulse_m3 where that applies) and inline points, the same objects
        on every call (drivers key their decoding plans on them)."""
        return self._points


class MqttSettings(BrokerSettings):
    """[mqtt] as the agent reads it: the endpoint every service shares (URL, login from the keys or the URL's
    user info, TLS files, tls_insecure) and the agent's own keys."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    protocol: MqttProtocol = "auto"
    keepalive_s: KeepAliveS = 30
    reconnect_max_s: int = Field(default=30, ge=1, le=3600, description="cap of the reconnect backoff")
    client_id: str | None = None


class EdgeSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    agent: Ident = "edge-1"
    state_dir: Path = Path("var/edge")
    spool_max_messages: int = Field(default=1_000_000, ge=10, description="store-and-forward capacity")
    spool_full_policy: Literal["compact"] = Field(
        default="compact", description="a full spool merges never-published messages of a meter (time resolution "
        "lost, energy kept) and refuses a message only when nothing can be merged (its meter's baseline stays)")
    confirm: Literal["ingest", "broker"] = Field(
        default="ingest", description="what lets a message leave the spool: ingest's acknowledgement on "
        "carbonwatch/v1/{site}/edge/{agent}/ack (end to end), or the broker's PUBACK (when nothing sends acks)")
    ack_timeout_s: float = Field(default=10.0, gt=0, le=3600, description="a message that ingest has not "
                                 "acknowledged this long, while it acknowledged later ones, is published again; "
                                 "while ingest acknowledges nothing, only the oldest few are, each time after twice "
                                 "as long (up to 16x)")
    ack_window: int = Field(default=20_000, ge=1, le=1_000_000, description="messages published and awaiting "
                            "ingest's acknowledgement, at most; further messages wait in the spool")
    publish_window: int = Field(default=256, ge=1, le=65535, description="QoS 1 messages in flight")
    batch_polls: int = Field(default=1, ge=1, le=1000, description="polls of one meter per reading message")
    batch_max_s: float = Field(default=1.0, gt=0, le=3600, description="longest a poll waits for its batch")
    status_interval_s: float = Field(default=30.0, gt=0)
    clock_tolerance_s: float = Field(default=2.0, gt=0, le=3600, description="a wall-clock step larger than this "
                                     "(against the agent's monotonic-anchored time) is logged, and samples are "
                                     "flagged `clock` and keep the anchored time")
    clock_settle_s: float = Field(default=300.0, ge=0, le=86400 * 7, description="how long the wall clock must stay "
                                  "at its new offset before the agent re-anchors to it (stamps follow it from then)")
    live_share: float = Field(default=0.5, gt=0, le=1, description="share of the window kept for fresh samples "
                              "while a backlog is replayed")

    @field_validator("spool_full_policy", mode="before")
    @classmethod
    def _removed_policies(cls, value: object) -> object:
        if value == "drop_oldest":
            raise ValueError('"drop_oldest" was removed: it deleted messages whose energy was already taken into the '
                             'baseline, so that energy was lost; a full spool now merges never-published messages '
                             'instead ("compact", the default: remove the key)')
        if value == "drop_newest":
            raise ValueError('"drop_newest" was removed: a full spool now merges never-published messages first and '
                             'refuses a message (keeping the baseline, as drop_newest did) only when nothing can be '
                             'merged; that is "compact", the default: remove the key')
        return value


class EdgeConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    site: Site
    gateways: tuple[Gateway, ...] = Field(min_length=1)
    meters: tuple[MeterDevice, ...] = Field(min_length=1)
    # production counters and driver variables: devices read exactly as meters are (calc.plant.Variable)
    variables: tuple[MeterDevice, ...] = ()
    mqtt: MqttSettings = MqttSettings()
    edge: EdgeSettings = EdgeSettings()
    source: str = "<config>"

    @model_validator(mode="after")
    def _references(self) -> EdgeConfig:
        gateways: dict[str, Gateway] = {}
        for each in self.gateways:
            if each.id in gateways:
                raise ValueError(f"gateway id {each.id!r} appears twice")
            gateways[each.id] = each
        serial = [g.device for g in self.gateways if isinstance(g, ModbusRtuGateway)]
        shared = sorted({d for d in serial if serial.count(d) > 1})
        if shared:  # one bus, one gateway: else two drivers would talk on the line at once
            raise ValueError(f"serial device {shared[0]!r} is used by two gateways")
        for meter in self.devices:
            gw = gateways.get(meter.gateway)
            if gw is None:
                raise ValueError(f"meter {meter.id!r}: gateway {meter.gateway!r} is not in [[gateways]]")
            for point in meter.all_points:
                if gw.kind in MODBUS_KINDS and point.address is None:
                    raise ValueError(f"meter {meter.id!r}: point {point.quantity!r} needs `address` "
                                     f"(gateway {gw.id!r} is {gw.kind})")
                if gw.kind == "opcua" and point.node is None:
                    raise ValueError(f"meter {meter.id!r}: point {point.quantity!r} needs `node` "
                                     f"(gateway {gw.id!r} is opcua)")
        return self

    @property
    def devices(self) -> tuple[MeterDevice, ...]:
        """Everything the agent polls: the meters, then the variables."""
        return self.meters + self.variables

    def is_variable(self, device_id: str) -> bool:
        return any(v.id == device_id for v in self.variables)

    def gateway(self, gateway_id: str) -> Gateway:
        for gw in self.gateways:
            if gw.id == gateway_id:
                return gw
        raise KeyError(gateway_id)


def describe(source: str, exc: ValidationError) -> str:
    """`FILE: key.path: why` per problem, as calc.plant.describe_errors, without pydantic's noise: the
    union tag in the path (gateways.0.modbus_tcp.port -> gateways.0.port) and the follow-on "too short"
    of a list whose items already failed."""
    errors = []
    for err in exc.errors():
        loc = [p for p in err["loc"] if not (isinstance(p, str) and p in GATEWAY_KINDS and len(err["loc"]) > 2)]
        errors.append((".".join(str(p) for p in loc) or "(top level)", err["type"], err["msg"]))
    lines = []
    for path, kind, msg in errors:
        if kind == "too_short" and any(other.startswith(path + ".") for other, _, _ in errors):
            continue
        lines.append(f"{source}: {path}: {msg}")
    return "\n".join(lines)


def _variable_points(declared: tuple[Variable, ...], devices: tuple[MeterDevice, ...]) -> str | None:
    """Why a variable's device cannot carry it (no such point, a gauge for a counter, a unit that does not
    convert), as `variables.N.key: why`; None when every one can."""
    for i, (variable, device) in enumerate(zip(declared, devices, strict=True)):
        points = {p.quantity: p for p in device.all_points}
        point = points.get(variable.quantity)
        if point is None:
            return (f"variables.{i}.quantity: {variable.quantity!r} is not a point of {variable.id!r} "
                    f"(it has {', '.join(sorted(points))})")
        if point.kind != variable.measure:
            return (f"variables.{i}.measure: {variable.id!r} is a {variable.measure} but its point "
                    f"{point.quantity!r} is a {point.kind}")
        try:
            if variable.measure == "counter":
                conversion_factor(point.unit, variable.unit)
            else:
                check_dimension(point.unit, variable.unit)
        except UnitError:
            return (f"variables.{i}.unit: the device reports {point.unit!r}, which does not convert to "
                    f"{variable.unit!r}")
    return None


def parse_config(data: dict[str, Any], source: str = "<config>") -> EdgeConfig:
    """Validate a parsed plant file; ConfigError names the file, key path and why."""
    plant = parse_plant(data, source, ConfigError)
    read = with_devices(data)   # a variable without device keys is entered by hand (calc.entries)
    try:
        config = EdgeConfig.model_validate({**read, "source": source})
    except ValidationError as exc:
        raise ConfigError(describe(source, exc)) from exc
    by_device = {v["id"] for v in read.get("variables", ()) if isinstance(v, dict)}
    problem = _variable_points(tuple(v for v in plant.variables if v.id in by_device), config.variables)
    if problem is not None:
        raise ConfigError(f"{source}: {problem}")
    # max power comes from the plant model when the edge section does not repeat it
    meters = tuple(m if m.max_power_kw is not None else
                   m.model_copy(update={"max_power_kw": plant.meter(m.id).max_power_kw}) for m in config.meters)
    return config.model_copy(update={"meters": meters})


def load_config(path: Path | str, mqtt_url: str | None = None, state_dir: Path | str | None = None) -> EdgeConfig:
    """Read and validate a plant TOML file (secrets as plantfile reads them); the command-line overrides win."""
    plant_file = read_plant_file(path, ConfigError)
    data = plant_file.data
    if state_dir is not None:
        data["edge"] = {**data.get("edge", {}), "state_dir": str(state_dir)}
    config = parse_config(data, plant_file.source)
    return config.model_copy(update={"mqtt": with_mqtt_url(config.mqtt, mqtt_url, ConfigError)})

