"""GET /v1/stream: Server-Sent Events pushing live meter updates (`meter`), the site balance and rate
(`balance`) and alert transitions (`alert`), fed by the same MQTT subscription as the rules."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from api.deps import HubDep, SettingsDep, SiteQuery, Viewer, site_of

router = APIRouter(prefix="/v1", tags=["stream"])


@router.get("/stream", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "event: meter|balance|alert|lagged, data: JSON"}})
async def stream(settings: SettingsDep, hub: HubDep, key: Viewer, site: SiteQuery = None) -> StreamingResponse:
    site_of(key, settings, site)
    return StreamingResponse(hub.events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
