"""Ingest's derived CO2e stream as the API reads it (ingest/co2e.py writes it): one message per meter and stored
batch on carbonwatch/v1/{site}/{area}/{meter}/co2e, or one per site and stored batch on carbonwatch/v1/{site}/co2e
holding every meter's part (what the API subscribes to: a few messages a second at any plant size)."""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from api.errors import ApiError
from calc import topics

CO2E_FILTER = f"{topics.ROOT}/+/co2e"   # ingest's per-site CO2e messages (calc.topics.site_co2e)
MAX_METERS = 100_000                     # meter parts in one site message (a stored batch holds fewer)


class EnergyPart(BaseModel):
    """One entry of a co2e message's by_factor: the energy counted with one factor."""

    model_config = ConfigDict(extra="ignore")
    energy: float = Field(allow_inf_nan=False)
    energy_unit: str


class MeterPart(BaseModel):
    """One meter's new CO2e in one stored batch (ingest/README.md, "Derived CO2e stream")."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    meter: str
    first: AwareDatetime = Field(alias="from")
    last: AwareDatetime = Field(alias="to")
    points: int = Field(ge=0)
    co2e_kg: float = Field(allow_inf_nan=False)
    by_factor: list[EnergyPart] = Field(default_factory=list, max_length=1000)


class Co2eMessage(MeterPart):
    """The per-meter message: one part with its site."""

    v: int = Field(ge=1, le=1)
    site: str


class SiteCo2eMessage(BaseModel):
    """The per-site message: every meter's part of one stored batch."""

    model_config = ConfigDict(extra="ignore")
    v: int = Field(ge=1, le=1)
    site: str
    meters: list[MeterPart] = Field(max_length=MAX_METERS)


class Co2eError(ApiError, ValueError):
    """A co2e message that cannot be read (counted and logged by the engine, never raised out of it)."""


def parse(topic: str, payload: bytes) -> tuple[str, list[MeterPart]]:
    """(site, meter parts) of a per-meter or per-site co2e message; Co2eError when malformed."""
    try:
        if topic.count("/") == 3:   # carbonwatch/v1/{site}/co2e
            site = topic.split("/")[2]
            whole = SiteCo2eMessage.model_validate_json(payload)
            if whole.site != site:
                raise Co2eError(f"payload site {whole.site} differs from topic {topic!r}")
            return site, whole.meters
        path = topics.parse_meter_topic(topic, "co2e")
        message = Co2eMessage.model_validate_json(payload)
    except (topics.TopicError, ValidationError) as exc:
        raise Co2eError(str(exc)) from exc
    if (message.site, message.meter) != (path.site, path.meter):
        raise Co2eError(f"payload site/meter {message.site}/{message.meter} differ from topic {topic!r}")
    return path.site, [message]
