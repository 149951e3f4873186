"""API settings: where the plant file and store are, who may call, and where to listen."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from calc.plant import Plant, parse_plant


class ApiSection(BaseModel):
    """The [api] section of the plant file."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    keys_file: str = Field(default="var/api-keys.toml", description="hashed API keys with roles and sites")
    stale_after_s: float = Field(default=60.0, gt=0, description="a meter silent this long is shown as stale")
    cors_origins: tuple[str, ...] = ()


class Settings(BaseModel):
    """Everything the app needs, resolved from the plant file."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    plant: Plant
    plant_data: dict[str, Any]
    base_dir: Path
    api: ApiSection

    @property
    def keys_path(self) -> Path:
        path = Path(self.api.keys_file)
        return path if path.is_absolute() else self.base_dir / path


def load_settings(plant_file: Path, base_dir: Path | None = None) -> Settings:
    data = tomllib.loads(plant_file.read_text(encoding="utf-8"))
    plant = parse_plant(data, str(plant_file))
    api = ApiSection.model_validate(data.get("api", {}))
    return Settings(plant=plant, plant_data=data, base_dir=base_dir or Path.cwd(), api=api)
