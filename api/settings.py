"""API settings: where the plant file, store and API database are, who may call, the broker, and where to listen."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from api.errors import ApiError
from calc.broker import BrokerSettings
from calc.coal import CoalError
from calc.plant import Plant, parse_plant
from calc.plant_coal import coal_settings
from plantfile import read_plant_file, validate_section, with_mqtt_url


class SettingsError(ApiError, ValueError):
    """A plant file whose [api] or [mqtt] section does not validate (names the file, key path and why); raised at
    start-up, before any request (were one to meet it, the server itself is wrong: 500)."""

    status_code = 500


class Webhook(BaseModel):
    """A receiver of alert notifications; each POST is signed with HMAC-SHA256 of the body using `secret`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field(pattern=r"^https?://", examples=["https://ops.example.com/hooks/carbonwatch"])
    secret: str = Field(min_length=16, description="shared secret for the X-Carbonwatch-Signature header")
    max_attempts: int = Field(default=5, ge=1, le=20)
    timeout_s: float = Field(default=5.0, gt=0, le=60)
    backoff_s: float = Field(default=1.0, gt=0, le=300, description="first retry delay; doubles, with jitter")


class ApiSection(BaseModel):
    """The [api] section of the plant file."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    keys_file: str = Field(default="var/api-keys.toml", description="hashed API keys with roles and sites")
    db_path: str = Field(default="var/api.sqlite", description="rules, alerts, allowances, offsets, audit log")
    stale_after_s: float = Field(default=60.0, gt=0, description="a meter silent this long is shown as stale")
    cors_origins: tuple[str, ...] = ()
    live: bool = Field(default=True, description="subscribe to the reading topics to evaluate rules live")
    client_id: str | None = Field(default=None, max_length=128,
                                  description="MQTT client id; when set, the broker keeps a persistent session "
                                  "(readings sent while the API is down are evaluated on restart). Unset: a "
                                  "unique id and a clean session, so several API processes never evict each other")
    webhooks: tuple[Webhook, ...] = ()
    max_body_bytes: int = Field(default=256 * 1024, ge=1024, le=16 * 1024 * 1024)
    tick_s: float = Field(default=5.0, gt=0, le=3600, description="how often time-based rules (offline) are checked")
    rate_refresh_s: float = Field(default=30.0, gt=0, le=3600,
                                  description="how often the live CO2e rate's kg per unit of energy is re-read "
                                  "from the store's totals (the flow itself is live)")
    sites: tuple[str, ...] = Field(default=(), description="plant files of the organisation's other sites this "
                                   "API also serves (a relative path against this file's folder, as a secret "
                                   "file); each keeps its own [store] and ingest, this file's [api] (keys, API "
                                   "database) and [mqtt] serve them all (docs/scaling.md)")


class MqttSection(BrokerSettings):
    """What the API reads of [mqtt] (owned by the wiring): the broker URL and how to log in."""


class Settings(BaseModel):
    """Everything the app needs, resolved from the plant file."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    plant: Plant
    plant_data: dict[str, Any]
    base_dir: Path
    api: ApiSection
    mqtt: MqttSection = MqttSection()

    def resolve(self, name: str) -> Path:
        path = Path(name)
        return path if path.is_absolute() else self.base_dir / path

    @property
    def keys_path(self) -> Path:
        return self.resolve(self.api.keys_file)

    @property
    def db_path(self) -> Path:
        return self.resolve(self.api.db_path)

    @property
    def client_id(self) -> str:
        if self.api.client_id:
            return self.api.client_id
        import uuid

        return f"carbonwatch-api-{self.plant.site.id}-{uuid.uuid4().hex[:8]}"

    @property
    def persistent_session(self) -> bool:
        return self.api.client_id is not None


def _section(model: type[BaseModel], data: dict[str, Any], key: str, source: str) -> Any:
    return validate_section(data, key, model, source, SettingsError)


def load_settings(plant_file: Path, base_dir: Path | None = None, mqtt_url: str | None = None) -> Settings:
    """The settings of the API's own site (the plant file given on the command line)."""
    data = read_plant_file(plant_file, SettingsError).data  # secrets as plantfile reads them
    plant = parse_plant(data, str(plant_file))
    api = _section(ApiSection, data, "api", str(plant_file))
    mqtt = _section(MqttSection, data, "mqtt", str(plant_file))
    mqtt = with_mqtt_url(mqtt, mqtt_url, SettingsError)
    try:   # refused at start-up like ingest's plant file errors, not met first by a balance request
        coal_settings(data)
    except CoalError as exc:
        raise SettingsError(f"{plant_file}: {exc}") from exc
    return Settings(plant=plant, plant_data=data, base_dir=base_dir or Path.cwd(), api=api, mqtt=mqtt)


def load_sites(primary: Settings, plant_file: Path) -> list[Settings]:
    """The settings of the other sites `primary` (read from `plant_file`) serves ([api] sites, against that file's
    folder): each its own plant and [store], with the primary's [api] and [mqtt] (one API database, one key file,
    one broker); their own [api] is not read. A site id served twice is refused at start-up."""
    found = [primary]
    for name in primary.api.sites:
        path = Path(name) if Path(name).is_absolute() else plant_file.parent / name
        data = read_plant_file(path, SettingsError).data
        plant = parse_plant(data, str(path))
        if plant.site.id in {s.plant.site.id for s in found}:
            raise SettingsError(f"{path}: site.id: site {plant.site.id!r} is served twice ([api] sites)")
        found.append(Settings(plant=plant, plant_data=data, base_dir=primary.base_dir, api=primary.api,
                              mqtt=primary.mqtt))
    return found[1:]
