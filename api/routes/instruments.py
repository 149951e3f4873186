"""Contractual instruments for market-based scope 2: green electricity certificates (serial ranges) and PPAs;
added or voided (admin, audited), never edited; a serial or contract counted once across all sites."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query

from api.deps import Admin, DbDep, EntryId, SettingsDep, SiteQuery, Viewer, invalid, site_of
from api.instruments import InstrumentDesk, InstrumentIn, InstrumentOut
from api.ledger import Void

router = APIRouter(prefix="/v1", tags=["instruments"])


@router.get("/instruments")
def list_instruments(settings: SettingsDep, db: DbDep, key: Viewer, site: SiteQuery = None,
                     limit: Annotated[int, Query(ge=1, le=500)] = 100,
                     offset: Annotated[int, Query(ge=0, le=10**9)] = 0) -> list[InstrumentOut]:
    """The site's instruments, voided ones included (marked)."""
    return InstrumentDesk(db).entries(site_of(key, settings, site), limit, offset)


@router.get("/instruments/{entry_id}", responses={404: {"description": "no such instrument on this site"}})
def show_instrument(entry_id: EntryId, settings: SettingsDep, db: DbDep, key: Viewer, site: SiteQuery = None,
                    ) -> InstrumentOut:
    return InstrumentDesk(db).get(site_of(key, settings, site), entry_id)


@router.post("/instruments", status_code=201,
             responses={409: {"description": "a serial of the range or the PPA contract is already counted"},
                        422: {"description": "invalid entry"}})
def add_instrument(body: Annotated[InstrumentIn, Body()], settings: SettingsDep, db: DbDep, key: Admin,
                   site: SiteQuery = None) -> InstrumentOut:
    """Add certificates (kind gec, serial range, 1 MWh each) or a PPA (contract id, volume) to the site."""
    site = site_of(key, settings, site)
    if body.scope == "area" and body.target not in {m.area for m in settings.plant.meters}:
        raise invalid(("body", "target"), f"no area {body.target!r} in this plant")
    if body.scope == "meter" and body.target not in settings.plant.meters_by_id:
        raise invalid(("body", "target"), f"no meter {body.target!r} in this plant")
    ledger = InstrumentDesk(db)
    new_id = ledger.add(site, body, key.name)
    return ledger.get(site, new_id)


@router.post("/instruments/{entry_id}/void", responses={404: {"description": "no such instrument"},
                                                       409: {"description": "already void"}})
def void_instrument(entry_id: EntryId, body: Annotated[Void, Body()], settings: SettingsDep, db: DbDep, key: Admin,
                    site: SiteQuery = None) -> InstrumentOut:
    """Void an instrument (with the reason): it stops counting, and its serials or contract may be entered again."""
    site = site_of(key, settings, site)
    ledger = InstrumentDesk(db)
    ledger.void(site, entry_id, body.reason, key.name)
    return ledger.get(site, entry_id)
