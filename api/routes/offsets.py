"""The offsets ledger (clause 8.1.4): credits (e.g. CCER, with vintage and serial), sinks and other proven means;
entries are added or voided, never edited, each with its evidence; a serial is counted once."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel

from api.deps import Admin, DbDep, EntryId, SettingsDep, SiteQuery, Viewer, site_of
from api.ledger import LedgerDesk, OffsetIn, Void

router = APIRouter(prefix="/v1", tags=["offsets"])


class OffsetOut(BaseModel):
    id: int
    site: str
    kind: str
    standard: str | None
    project: str | None
    vintage: int | None
    serial: str | None
    quantity_kg: float
    quantity: float
    quantity_unit: str
    applies_on: str
    evidence: str
    note: str | None
    created_at: str
    created_by: str
    voided: bool
    voided_at: str | None
    voided_by: str | None
    void_reason: str | None


@router.get("/offsets")
def list_offsets(settings: SettingsDep, db: DbDep, key: Viewer, site: SiteQuery = None,
                 limit: Annotated[int, Query(ge=1, le=500)] = 100,
                 offset: Annotated[int, Query(ge=0, le=10**9)] = 0) -> list[OffsetOut]:
    return [OffsetOut(**d) for d in LedgerDesk(db).list("offset", site_of(key, settings, site), limit, offset)]


@router.get("/offsets/{entry_id}", responses={404: {"description": "no such entry on this site"}})
def show_offset(entry_id: EntryId, settings: SettingsDep, db: DbDep, key: Viewer, site: SiteQuery = None,
                ) -> OffsetOut:
    return OffsetOut(**LedgerDesk(db).get("offset", site_of(key, settings, site), entry_id))


@router.post("/offsets", status_code=201, responses={409: {"description": "this serial is already counted"},
                                                     422: {"description": "invalid entry"}})
def add_offset(body: Annotated[OffsetIn, Body()], settings: SettingsDep, db: DbDep, key: Admin,
               site: SiteQuery = None) -> OffsetOut:
    site = site_of(key, settings, site)
    ledger = LedgerDesk(db)
    new_id = ledger.add_offset(site, body, key.name)
    return OffsetOut(**ledger.get("offset", site, new_id))


@router.post("/offsets/{entry_id}/void", responses={404: {"description": "no such entry"},
                                                   409: {"description": "already void"}})
def void_offset(entry_id: EntryId, body: Annotated[Void, Body()], settings: SettingsDep, db: DbDep, key: Admin,
                site: SiteQuery = None) -> OffsetOut:
    """Void an entry (with the reason); it stops counting, and its serial may be entered again."""
    site = site_of(key, settings, site)
    ledger = LedgerDesk(db)
    ledger.void("offset", site, entry_id, body.reason, key.name)
    return OffsetOut(**ledger.get("offset", site, entry_id))
