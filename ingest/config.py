"""Ingest's sections of the plant file ([mqtt], [store], [ingest]) as pydantic models, and loading them.

A bad file fails at start-up with one line per problem: `FILE: key.path: why`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from calc.broker import BrokerSettings, KeepAliveS, MqttProtocol
from calc.plant import Plant, parse_plant
from ingest.errors import ConfigError as ConfigError  # raised by load_config; imported from here too
from plantfile import read_plant_file, resolve_path, validate_section, with_mqtt_url

DEFAULT_SQLITE_PATH = "var/carbonwatch.sqlite"
# Above the largest reading calc.schema accepts (10,000 samples, every field at its longest: 20.4 MB, see
# tests/deploy/test_broker_limits.py) and below the broker's packet cap (32 MiB): nothing the contract allows
# is refused for its size. An edge agent's 10,000 samples take about 2 MB.
DEFAULT_MAX_MESSAGE_BYTES = 24 * 1024 * 1024


class MqttSettings(BrokerSettings):
    """[mqtt]: where the broker is and how to log in (loopback and anonymous unless configured)."""

    protocol: MqttProtocol = "auto"
    keepalive_s: KeepAliveS = 30


class SqliteStoreSettings(BaseModel):
    """[store] kind = "sqlite": the embedded default.

    Retention (0 keeps forever) bounds the disk while keeping what the figures need: quarter-hour and hour
    rollups, which every period total in every time zone is made of, are never deleted. Raw points and minute
    rollups are counted back from the newest stored reading (or now, if earlier); dead letters from now.
    Why these defaults: ingest/README.md, "Retention".
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["sqlite"] = "sqlite"
    path: str = DEFAULT_SQLITE_PATH
    synchronous: Literal["full", "normal"] = Field(
        default="full", description="full: each batch is fsynced before its ack (survives power loss); normal: "
        "survives a crash of ingest (kill -9) but the last batches may be lost with the machine's power")
    retention_days: float = Field(
        default=90.0, ge=0, allow_inf_nan=False, description="raw points older than this are deleted (0: kept "
        "forever); later readings older than what was deleted are dead-lettered, never counted twice")
    minute_rollup_retention_days: float = Field(
        default=400.0, ge=0, allow_inf_nan=False, description="one-minute rollups older than this are deleted "
        "(0: kept forever); at least retention_days. Older totals are cut at quarter hours")
    deadletter_retention_days: float = Field(
        default=550.0, ge=0, allow_inf_nan=False, description="dead letters (refused readings, with their "
        "reasons) received longer ago than this are deleted (0: kept forever); held energy is never deleted")

    @model_validator(mode="after")
    def _minutes_outlive_raw_points(self) -> SqliteStoreSettings:
        raw, minute = self.retention_days or math.inf, self.minute_rollup_retention_days or math.inf
        if minute < raw:
            raise ValueError(f"minute_rollup_retention_days ({self.minute_rollup_retention_days:g}) must be at "
                             f"least retention_days ({self.retention_days:g}, 0 = forever): totals read minute "
                             f"rollups wherever raw points are gone")
        return self


class InfluxStoreSettings(BaseModel):
    """[store] kind = "influxdb": InfluxDB over its v1 HTTP API (/write, /query)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["influxdb"]
    url: str = Field(pattern=r"^https?://")
    database: str = Field(default="carbonwatch", min_length=1)
    retention_policy: str | None = None
    username: str | None = Field(default=None, description="v1 login, sent as HTTP Basic auth (never in the URL)")
    password: str | None = None
    token: str | None = Field(default=None, description="2.x/3.x: sent as `Authorization: Token ...`")
    timeout_s: float = Field(default=10.0, gt=0)
    create_database: bool = True
    gzip: bool = Field(default=False, description="gzip the bodies of writes (Content-Encoding: gzip): ~50x less "
                       "traffic, ~1 us more CPU a reading; on for an InfluxDB across a network, off on the same "
                       "machine (measured: ingest/README.md)")

    @model_validator(mode="after")
    def _one_login(self) -> InfluxStoreSettings:
        if self.token and self.username:
            raise ValueError("give `username` (and `password`) or `token`, not both: one Authorization header")
        return self


StoreSettings = Annotated[SqliteStoreSettings | InfluxStoreSettings, Field(discriminator="kind")]
_store_adapter: TypeAdapter[SqliteStoreSettings | InfluxStoreSettings] = TypeAdapter(StoreSettings)


class IngestSettings(BaseModel):
    """[ingest]: this worker's identity and limits."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    client_id: str | None = Field(default=None, min_length=1, max_length=128)
    share_group: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.\-]+$",
                                    description="subscribe as $share/GROUP/... so several workers split the load")
    max_future_s: float = Field(default=300.0, ge=0, description="samples stamped later than now + this cannot "
                                "be placed: a counted delta is held (an engineer places it), anything else is "
                                "dead-lettered")
    batch_max_messages: int = Field(default=500, ge=1)
    buffer_path: str | None = Field(default=None, description="on-disk buffer used while the store is down")
    buffer_max_mb: float = Field(default=256.0, gt=0)
    session_expiry_s: int = Field(default=7 * 24 * 3600, ge=0)
    publish_co2e: bool = True
    co2e_per_meter: bool = Field(default=True, description="also publish each meter's CO2e per stored batch on "
                                 "carbonwatch/v1/<site>/<area>/<meter>/co2e (SCADA reads it); the per-site "
                                 "message on carbonwatch/v1/<site>/co2e, which the API reads, is always sent")
    metrics_path: str | None = None
    max_message_bytes: int = Field(default=DEFAULT_MAX_MESSAGE_BYTES, ge=1024, description="a reading message "
                                   "larger than this is dead-lettered unparsed (its first 64 KiB kept, with its "
                                   "size and SHA-256); the default is above the largest message the schema "
                                   "allows and below the shipped broker's packet cap (32 MiB)")
    ack_interval_s: float = Field(default=1.0, gt=0, le=60, description="how often the edge agents' end-to-end "
                                  "acks (carbonwatch/v1/<site>/edge/<agent>/ack) are sent, batched per agent")
    gap_after_s: float = Field(default=3600.0, gt=0, allow_inf_nan=False, description="a counted delta over a "
                               "longer interval is spread over it (flag estimated), cut at every minute, whatever "
                               "its flags say (publishers that do not flag gaps; hourly interval data is not spread)")
    gap_flagged_after_s: float = Field(default=180.0, gt=0, allow_inf_nan=False, description="a counted delta the "
                                       "edge flagged gap or stuck is spread over its interval when it is longer "
                                       "than this")
    gap_max_segments: int = Field(default=7 * 24 * 60, ge=1, le=1_000_000, description="a spread interval is cut at "
                                  "every minute up to this many segments (a week), above at quarter hours (every "
                                  "time zone's days, months and years start on one), and above that many quarter "
                                  "hours at whole multiples of a quarter hour")


class IngestConfig(BaseModel):
    """Everything ingest reads from the plant file, relative paths resolved against `base_dir`."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    source: str
    base_dir: Path
    data: dict[str, Any]  # the whole parsed plant file (calc reads [factors] and [[factor_overrides]] from it)
    plant: Plant
    mqtt: MqttSettings
    store: SqliteStoreSettings | InfluxStoreSettings
    ingest: IngestSettings

    @property
    def client_id(self) -> str:
        return self.ingest.client_id or f"carbonwatch-ingest-{self.plant.site.id}"

    def resolve(self, path: str) -> Path:
        return resolve_path(self.base_dir, path)

    @property
    def buffer_path(self) -> Path:
        name = self.ingest.buffer_path or f"var/ingest-buffer-{self.client_id}.sqlite"
        return self.resolve(name)

    @property
    def metrics_path(self) -> Path:
        name = self.ingest.metrics_path or f"var/ingest-metrics-{self.client_id}.json"
        return self.resolve(name)


def _section(data: dict[str, Any], key: str, model: Any, source: str) -> Any:
    return validate_section(data, key, model, source, ConfigError, tags=("sqlite", "influxdb"))


def store_settings(data: dict[str, Any], source: str = "<plant>") -> SqliteStoreSettings | InfluxStoreSettings:
    """Validate the [store] table alone (the API uses this through `ingest.store.open_reader`)."""
    raw = data.get("store", {})
    if isinstance(raw, dict) and "kind" not in raw:
        raw = {**raw, "kind": "sqlite"}
        data = {**data, "store": raw}
    result: SqliteStoreSettings | InfluxStoreSettings = _section(data, "store", _store_adapter, source)
    return result


def config_from_data(data: dict[str, Any], base_dir: Path, source: str = "<plant>",
                     mqtt_url: str | None = None) -> IngestConfig:
    plant = parse_plant(data, source, ConfigError)
    mqtt = with_mqtt_url(_section(data, "mqtt", MqttSettings, source), mqtt_url, ConfigError)
    return IngestConfig(source=source, base_dir=base_dir, data=data, plant=plant, mqtt=mqtt,
                        store=store_settings(data, source),
                        ingest=_section(data, "ingest", IngestSettings, source))


def load_config(path: Path, mqtt_url: str | None = None, base_dir: Path | None = None) -> IngestConfig:
    """Read and validate a plant file; relative paths in it are taken against `base_dir` (default: the
    working directory, as the API does, so both find the same store); secrets as plantfile reads them."""
    plant_file = read_plant_file(path, ConfigError)
    return config_from_data(plant_file.data, base_dir or Path.cwd(), plant_file.source, mqtt_url)
