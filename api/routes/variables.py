"""Manual production and driver entries per shift or day (`[[variables]]`): add, list, void, send again, and a
CSV import; each entry reaches the store through the broker and ingest like any reading (calc.entries)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from fastapi.responses import JSONResponse

from api.deps import DbDep, Engineer, EntryId, NowDep, SettingsDep, SiteQuery, StoreDep, Viewer, site_of
from api.entry_import import ImportOut, ImportRefused, import_csv
from api.entry_sender import Send
from api.ledger import Void
from api.variable_entries import EntryDesk, EntryIn, EntryOut, out
from calc.schema import METER_MAX, METER_PATTERN

router = APIRouter(prefix="/v1", tags=["production"])

VariableId = Annotated[str, Path(pattern=METER_PATTERN, max_length=METER_MAX, description="a [[variables]] id")]


def get_sender(request: Request) -> Send:
    send: Send = request.app.state.entry_sender
    return send


SenderDep = Annotated[Send, Depends(get_sender)]


def _desk(settings: SettingsDep, db: DbDep, store: StoreDep, send: SenderDep, now: NowDep) -> EntryDesk:
    return EntryDesk(settings, db, store, send, now)


DeskDep = Annotated[EntryDesk, Depends(_desk)]


@router.get("/variables/{variable}/entries", responses={404: {"description": "no such variable"}})
def list_entries(variable: VariableId, desk: DeskDep, settings: SettingsDep, key: Viewer, site: SiteQuery = None,
                 limit: Annotated[int, Query(ge=1, le=500)] = 100,
                 offset: Annotated[int, Query(ge=0, le=10**9)] = 0) -> list[EntryOut]:
    """The variable's manual entries, newest first, voided ones marked."""
    site = site_of(key, settings, site)
    desk.variable(variable)
    return [out(d) for d in desk.entries.page(site, variable, limit, offset)]


@router.post("/variables/{variable}/entries", status_code=201,
             responses={404: {"description": "no such variable"},
                        409: {"description": "overlaps another entry or a live counter's readings"},
                        422: {"description": "an interval not on quarter hours, in the future, before the plant's "
                              "start, or a unit that does not convert"}})
def add_entry(variable: VariableId, body: Annotated[EntryIn, Body()], desk: DeskDep, settings: SettingsDep,
              key: Engineer, site: SiteQuery = None) -> EntryOut:
    """Enter what a line produced (or a driver's mean) over a shift or day; stored, audited and sent to the
    broker, from which ingest counts it (`sent` says whether the broker has it)."""
    site = site_of(key, settings, site)
    return out(desk.get(site, variable, desk.add(site, variable, body, key.name)))


@router.post("/variables/{variable}/entries/{entry_id}/void",
             responses={404: {"description": "no such entry"}, 409: {"description": "already void"}})
def void_entry(variable: VariableId, entry_id: EntryId, body: Annotated[Void, Body()], desk: DeskDep,
               settings: SettingsDep, key: Engineer, site: SiteQuery = None) -> EntryOut:
    """Void an entry (with the reason): ingest takes its amount out again; the time may then be entered anew."""
    site = site_of(key, settings, site)
    desk.void(site, variable, entry_id, body.reason, key.name)
    return out(desk.get(site, variable, entry_id))


@router.post("/variables/{variable}/entries/{entry_id}/send", responses={404: {"description": "no such entry"}})
def send_entry(variable: VariableId, entry_id: EntryId, desk: DeskDep, settings: SettingsDep, key: Engineer,
               site: SiteQuery = None) -> EntryOut:
    """Send the entry's message again (after a failed send): the same message, so it is counted once."""
    site = site_of(key, settings, site)
    desk.get(site, variable, entry_id)
    desk.deliver(site, entry_id, key.name)
    return out(desk.get(site, variable, entry_id))


@router.post("/variable-entries/import", response_model=ImportOut,
             openapi_extra={"requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}}},
             responses={422: {"model": ImportRefused,
                              "description": "bad rows (line and reason each); nothing stored"}})
async def import_entries(request: Request, desk: DeskDep, settings: SettingsDep, key: Engineer,
                         site: SiteQuery = None, take_good_rows: bool = False) -> JSONResponse:
    """A CSV file of entries (`variable,start,end,value,unit[,note]`): every row checked first; a file with a bad
    row stores nothing unless `take_good_rows`."""
    site = site_of(key, settings, site)
    raw = await request.body()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return JSONResponse({"detail": f"the file is not UTF-8: {exc}", "stored": [], "errors": []}, 422)
    stored, result = await asyncio.to_thread(import_csv, desk, site, text, take_good_rows, key.name)
    if not stored:
        return JSONResponse({"detail": f"{len(result.errors)} bad row(s); nothing stored",
                             **result.model_dump()}, 422)
    return JSONResponse(result.model_dump(), 200)
