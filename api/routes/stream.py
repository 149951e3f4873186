"""GET /v1/stream: Server-Sent Events pushing, at most once a second, the site's and each area's aggregates
(`aggregate`) and the site balance and rate (`balance`); alert transitions (`alert`) as they happen; and `meter`
updates only when asked for: every update of the meters named (`meter=`), or every meter's latest state once a
second (`meters=all`). Fed by the same MQTT subscription as the rules."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from api.deps import HubDep, SettingsDep, SiteQuery, Viewer, site_of
from api.errors import NotFound
from api.live.stream import ALL_METERS, QUEUE_SIZE

MAX_WATCHED = 100   # meters one subscriber may follow update by update

router = APIRouter(prefix="/v1", tags=["stream"])


@router.get("/stream", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "event: aggregate|balance|alert|meter|lagged, data: JSON"},
                       404: {"description": "an unknown meter"}})
async def stream(settings: SettingsDep, hub: HubDep, key: Viewer, site: SiteQuery = None,
                 meter: Annotated[list[str], Query(description="every update of this meter (repeatable)",
                                                   max_length=MAX_WATCHED)] = [],  # noqa: B006
                 meters: Annotated[Literal["all"] | None,
                                   Query(description="all: every meter's latest state once a second")] = None,
                 ) -> StreamingResponse:
    site_of(key, settings, site)
    unknown = sorted(set(meter) - set(settings.plant.meters_by_id))
    if unknown:
        raise NotFound(f"no meter {unknown[0]!r}")
    wanted = [*meter, ALL_METERS] if meters == "all" else list(meter)
    size = QUEUE_SIZE + (2 * len(settings.plant.meters) if meters == "all" else 0)
    return StreamingResponse(hub.events(meters=wanted, queue_size=size), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
