"""Manual activity data (clause 4.3.3): fuel deliveries, utility bills, refrigerant top-ups, process emissions and
heat statements, added (one, or a CSV file) or voided by an engineer, read by a viewer; a bill for live meters is a
reconciliation, shown against what they measured."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from api.activity import ActivityDesk, ActivityIn, ImportOut, Void, evidence_dir
from api.activity_counts import Reconciliation, reconcile
from api.deps import DbDep, Engineer, EntryId, SettingsDep, SiteQuery, StoreDep, Viewer, invalid, site_of
from api.errors import Conflict, NotFound
from records.activity import ActivityLog

router = APIRouter(prefix="/v1", tags=["activity"])


class ActivityOut(BaseModel):
    id: int
    site: str
    kind: str
    area: str
    entry: dict[str, Any] = Field(description="the entry as given (calc.activity.Entry), with the method used")
    result: dict[str, Any] = Field(description="energy, kg CO2e (location and market) and the factors behind it")
    start: datetime = Field(description="UTC start of the local days it covers")
    end: datetime = Field(description="UTC end (exclusive)")
    counted: bool = Field(description="false for a reconciliation (a bill for live meters): never added")
    reconciliation: Reconciliation | None = None
    evidence: str
    evidence_sha256: str | None
    evidence_name: str | None
    note: str | None
    created_at: str
    created_by: str
    voided: bool
    voided_at: str | None
    voided_by: str | None
    void_reason: str | None


def _out(doc: dict[str, Any], store: StoreDep, db: DbDep) -> ActivityOut:
    return ActivityOut(**{**doc, "entry": json.loads(doc["entry"]), "result": json.loads(doc["result"]),
                          "start": doc["span_start"], "end": doc["span_end"], "counted": bool(doc["counted"]),
                          "reconciliation": reconcile(db, store, doc["site"], doc)})


@router.get("/activity")
def list_activity(settings: SettingsDep, db: DbDep, store: StoreDep, key: Viewer, site: SiteQuery = None,
                  limit: Annotated[int, Query(ge=1, le=500)] = 100,
                  offset: Annotated[int, Query(ge=0, le=10**9)] = 0) -> list[ActivityOut]:
    """The site's entries, voided ones too (marked), oldest first."""
    site = site_of(key, settings, site)
    return [_out(d, store, db) for d in ActivityLog(db).entries(site, limit, offset)]


@router.get("/activity/{entry_id}", responses={404: {"description": "no such entry on this site"}})
def show_activity(entry_id: EntryId, settings: SettingsDep, db: DbDep, store: StoreDep, key: Viewer,
                  site: SiteQuery = None) -> ActivityOut:
    site = site_of(key, settings, site)
    return _out(ActivityDesk(db, settings).get(site, entry_id), store, db)


@router.get("/activity/{entry_id}/evidence", response_class=Response,
            responses={200: {"content": {"application/octet-stream": {}}},
                       404: {"description": "no such entry, or its evidence is a reference, not a file"},
                       409: {"description": "the kept file no longer matches its SHA-256"}})
def activity_evidence(entry_id: EntryId, settings: SettingsDep, db: DbDep, key: Viewer,
                      site: SiteQuery = None) -> Response:
    """The evidence file of an entry, checked against its SHA-256 before it is sent."""
    site = site_of(key, settings, site)
    doc = ActivityDesk(db, settings).get(site, entry_id)
    digest = doc["evidence_sha256"]
    path = evidence_dir(settings) / digest if digest else None
    if path is None or not path.is_file():
        raise NotFound(f"activity entry {entry_id} has no evidence file (evidence: {doc['evidence']})")
    content = path.read_bytes()
    if hashlib.sha256(content).hexdigest() != digest:
        raise Conflict(f"the evidence file of activity entry {entry_id} no longer matches its SHA-256 {digest}")
    name = quote(doc["evidence_name"] or digest)
    headers = {"Content-Disposition": f"attachment; filename*=UTF-8''{name}", "X-Evidence-SHA256": digest}
    return Response(content, media_type="application/octet-stream", headers=headers)


@router.post("/activity", status_code=201, responses={422: {"description": "invalid entry"}})
def add_activity(body: Annotated[ActivityIn, Body()], settings: SettingsDep, db: DbDep, store: StoreDep,
                 key: Engineer, site: SiteQuery = None) -> ActivityOut:
    """Add one entry with its evidence (a reference, a file as base64, or both)."""
    site = site_of(key, settings, site)
    desk = ActivityDesk(db, settings)
    return _out(desk.get(site, desk.add(site, body, key.name)), store, db)


@router.post("/activity/import", responses={422: {"description": "bad rows: nothing stored (see errors)"},
                                            200: {"description": "stored"}})
async def import_activity(request: Request, settings: SettingsDep, db: DbDep, key: Engineer, site: SiteQuery = None,
                          take_good_rows: Annotated[bool, Query(description="store the good rows of a file "
                                                                 "that has bad ones")] = False,
                          name: Annotated[str, Query(max_length=200, description="file name (kept with the "
                                                     "evidence)")] = "import.csv",
                          ) -> ImportOut:
    """A CSV file of entries (body: text/csv; header kind,start,end,quantity,unit,carrier,...). Each bad row is
    reported with its line and reason; a file with any bad row stores nothing unless take_good_rows."""
    site = site_of(key, settings, site)
    content = await request.body()
    out = ActivityDesk(db, settings).import_csv(site, content, name, take_good_rows, key.name)
    if out.errors and not out.stored:
        raise invalid(("body",), "; ".join(f"line {e.line}: {e.reason}" for e in out.errors[:50]))
    return out


@router.post("/activity/{entry_id}/void", responses={404: {"description": "no such entry"},
                                                    409: {"description": "already void"}})
def void_activity(entry_id: EntryId, body: Annotated[Void, Body()], settings: SettingsDep, db: DbDep,
                  store: StoreDep, key: Engineer, site: SiteQuery = None) -> ActivityOut:
    """Void an entry (with the reason): it stops counting and stays readable, marked."""
    site = site_of(key, settings, site)
    desk = ActivityDesk(db, settings)
    desk.void(site, entry_id, body.reason, key.name)
    return _out(desk.get(site, entry_id), store, db)
