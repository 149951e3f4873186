"""The plant model every service shares: the site, its areas and lines, and each meter's carrier.

A plant file (TOML) also holds sections owned by other packages (gateways and register maps for the
edge, load profiles for the simulators, broker and store settings for the wiring); each package
validates its own section, and this model reads only the hierarchy.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from calc.carriers import Carrier as Carrier  # the table of carriers; imported from here too
from calc.errors import CalcError
from calc.schema import MeterId

Name = str


class PlantError(CalcError):
    """A plant file that does not validate; the message names the file, the key path and why."""


class Site(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    name: str = ""
    region: str = Field(description="grid region code for electricity factors, e.g. CN or CN-grid-east")
    timezone: str = "UTC"
    start: AwareDatetime = Field(description="readings timestamped before this are rejected")


class Meter(BaseModel):
    """A meter's place in the hierarchy and what it measures (device details belong to the edge)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: MeterId
    area: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    line: str | None = None
    carrier: Carrier
    region: str | None = Field(default=None, description="overrides the site's region")
    max_power_kw: float | None = Field(default=None, gt=0, allow_inf_nan=False)


class Plant(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    site: Site
    meters: tuple[Meter, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_ids(self) -> Plant:
        seen: set[str] = set()
        for meter in self.meters:
            if meter.id in seen:
                raise ValueError(f"meter id {meter.id!r} appears twice")
            seen.add(meter.id)
        return self

    def meter(self, meter_id: str) -> Meter:
        for meter in self.meters:
            if meter.id == meter_id:
                return meter
        raise KeyError(meter_id)

    @property
    def meters_by_id(self) -> dict[str, Meter]:
        return {m.id: m for m in self.meters}

    def region_of(self, meter: Meter) -> str:
        return meter.region or self.site.region

    def started_by(self, ts: datetime) -> bool:
        return ts >= self.site.start


def describe_errors(source: str, exc: ValidationError) -> str:
    """One line per problem: `FILE: key.path: why` (key paths as written in the file)."""
    lines = []
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"{source}: {path}: {err['msg']}")
    return "\n".join(lines)


def parse_plant(data: dict[str, Any], source: str = "<plant>", error: type[Exception] = PlantError) -> Plant:
    """The plant model of a parsed plant file; `error` (a part's own ConfigError) names `FILE: key.path: why`."""
    try:
        return Plant.model_validate(data)
    except ValidationError as exc:
        raise error(describe_errors(source, exc)) from exc
