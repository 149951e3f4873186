"""Liveness: /healthz answers without a key so that supervisors can probe it."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from api.deps import SettingsDep

router = APIRouter(tags=["health"])


class Health(BaseModel):
    ok: bool
    site: str


@router.get("/healthz")
def healthz(settings: SettingsDep) -> Health:
    return Health(ok=True, site=settings.plant.site.id)
