"""The [scada] section of the plant file (pydantic): which servers run (OPC UA, Sparkplug B, Modbus TCP), where they
listen (loopback by default), who may log in, and what the service reads of [mqtt], [store] and [api].
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from calc.broker import BrokerSettings, KeepAliveS
from calc.plant import Plant, parse_plant
from plantfile import read_plant_file, resolve_path, validate_section, with_mqtt_url
from scada.errors import ConfigError as ConfigError  # raised by load_config; imported from here too

LOOPBACK = "127.0.0.1"
Policy = Literal["None", "Basic256Sha256_Sign", "Basic256Sha256_SignAndEncrypt"]
_ID = r"^[A-Za-z0-9_.\-]+$"


class MqttSettings(BrokerSettings):
    """What SCADA reads of [mqtt]: the broker URL and how to log in (the section is owned by the wiring)."""

    keepalive_s: KeepAliveS = 30


class OpcUaUser(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    username: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=8, max_length=256)


class OpcUaSettings(BaseModel):
    """[scada.opcua]: the OPC UA server. Policy None and anonymous log-in are off unless listed/enabled."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = False
    host: str = LOOPBACK
    port: int = Field(default=4840, ge=0, le=65535)
    path: str = Field(default="/carbonwatch", pattern=r"^/[A-Za-z0-9_.\-/]*$")
    namespace: str = "urn:carbonwatch:scada"
    security: tuple[Policy, ...] = Field(default=("Basic256Sha256_SignAndEncrypt", "Basic256Sha256_Sign"),
                                         min_length=1)
    allow_anonymous: bool = False
    users: tuple[OpcUaUser, ...] = ()
    cert_dir: str = Field(default="var/scada-opcua", description="server certificate and key (made when missing)")

    @model_validator(mode="after")
    def _login_possible(self) -> OpcUaSettings:
        if self.enabled and not self.allow_anonymous and not self.users:
            raise ValueError("no way to log in: add users = [{ username = ..., password = ... }] "
                             "or set allow_anonymous = true")
        return self

    def endpoint(self, port: int | None = None) -> str:
        return f"opc.tcp://{self.host}:{port or self.port}{self.path}"


class SparkplugSettings(BaseModel):
    """[scada.sparkplug]: carbonwatch as a Sparkplug B edge node on the [mqtt] broker."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = False
    group_id: str = Field(default="carbonwatch", pattern=_ID)
    edge_node_id: str | None = Field(default=None, pattern=_ID, description="default: the site id")
    client_id: str | None = Field(default=None, max_length=128)
    state_file: str = Field(default="var/scada-sparkplug.json", description="keeps bdSeq across restarts")


class ModbusSettings(BaseModel):
    """[scada.modbus]: the Modbus TCP server with the register map of docs/scada.md."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = False
    host: str = LOOPBACK
    port: int = Field(default=5502, ge=0, le=65535)
    unit_id: int = Field(default=1, ge=1, le=247)


class ScadaSection(BaseModel):
    """The [scada] section of the plant file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    refresh_s: float = Field(default=5.0, gt=0, le=3600,
                             description="recompute from the store and the API database at least this often")
    min_interval_s: float = Field(default=0.2, ge=0, le=60,
                                  description="at most one recompute per this interval when messages stream in")
    stale_after_s: float = Field(default=60.0, gt=0, description="a figure not updated this long is Uncertain")
    api_db: str | None = Field(default=None, description="the API database (allowances, offsets, alerts); "
                               "default: [api] db_path, else var/api.sqlite")
    client_id: str | None = Field(default=None, max_length=128, description="MQTT client id of the live feed")
    opcua: OpcUaSettings = OpcUaSettings()
    sparkplug: SparkplugSettings = SparkplugSettings()
    modbus: ModbusSettings = ModbusSettings()


class ScadaConfig(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    source: str
    base_dir: Path
    data: dict[str, Any]
    plant: Plant
    mqtt: MqttSettings
    scada: ScadaSection

    def resolve(self, name: str) -> Path:
        return resolve_path(self.base_dir, name)

    @property
    def api_db_path(self) -> Path:
        api = self.data.get("api", {})
        default = api.get("db_path", "var/api.sqlite") if isinstance(api, dict) else "var/api.sqlite"
        return self.resolve(self.scada.api_db or str(default))

    @property
    def site(self) -> str:
        return self.plant.site.id


def _section(model: type[BaseModel], data: dict[str, Any], key: str, source: str) -> Any:
    return validate_section(data, key, model, source, ConfigError)


def config_from_data(data: dict[str, Any], base_dir: Path, source: str = "<plant>",
                     mqtt_url: str | None = None) -> ScadaConfig:
    plant = parse_plant(data, source, ConfigError)
    mqtt = with_mqtt_url(_section(MqttSettings, data, "mqtt", source), mqtt_url, ConfigError)
    scada: ScadaSection = _section(ScadaSection, data, "scada", source)
    return ScadaConfig(source=source, base_dir=base_dir, data=data, plant=plant, mqtt=mqtt, scada=scada)


def load_config(path: Path, mqtt_url: str | None = None, base_dir: Path | None = None) -> ScadaConfig:
    """Read and validate a plant file; relative paths are taken against `base_dir` (default: the working
    directory, as ingest and the API do, so all three find the same store and database)."""
    plant_file = read_plant_file(path, ConfigError)
    return config_from_data(plant_file.data, base_dir or Path.cwd(), plant_file.source, mqtt_url)
