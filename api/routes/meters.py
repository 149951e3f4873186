"""GET /v1/meters: each meter of the plant with its last sample time, quality and status."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.deps import SettingsDep, StoreDep, Viewer, check_site

router = APIRouter(prefix="/v1", tags=["meters"])

Status = Literal["ok", "stale", "never_seen"]


class MeterOut(BaseModel):
    meter: str
    site: str
    area: str
    line: str | None
    carrier: str
    last_sample_ts: datetime | None
    last_quality: str | None
    samples: int
    status: Status


class MetersOut(BaseModel):
    site: str
    meters: list[MeterOut]


@router.get("/meters")
def list_meters(settings: SettingsDep, store: StoreDep, key: Viewer,
                site: Annotated[str | None, Query(description="site id (default: this server's site)")] = None,
                ) -> MetersOut:
    site = site or settings.plant.site.id
    check_site(key, settings, site)
    seen = {s.meter: s for s in store.meter_summaries(site)}
    now = datetime.now(UTC)
    out = []
    for meter in settings.plant.meters:
        summary = seen.get(meter.id)
        last = summary.last_ts if summary else None
        status: Status = "never_seen"
        if last is not None:
            status = "ok" if (now - last).total_seconds() <= settings.api.stale_after_s else "stale"
        out.append(MeterOut(meter=meter.id, site=site, area=meter.area, line=meter.line, carrier=meter.carrier,
                            last_sample_ts=last, last_quality=summary.last_quality if summary else None,
                            samples=summary.samples if summary else 0, status=status))
    return MetersOut(site=site, meters=out)
