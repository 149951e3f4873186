"""Nonconformities and corrective actions (ISO 50001 10.2): raised from one or more alerts or by hand, with
description, cause, correction, corrective action, owner, due date and an effectiveness check (a rule stayed
clear for N days, checked from the alert log); closed once effective. Versioned; viewers read, engineers raise,
change and close them; every change is audited. An overdue action raises an alert (api.records_watch)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query
from pydantic import BaseModel, Field

from api.deps import DbDep, Engineer, NowDep, SettingsDep, SiteQuery, Viewer, site_of
from api.errors import Conflict, Invalid
from api.nonconformities import EffectivenessOut, NonconformityBook
from records.nonconformities import NonconformityDoc
from records.targets import NAME, StoredDoc

router = APIRouter(prefix="/v1", tags=["nonconformities"])

NcId = Annotated[str, Path(pattern=NAME, max_length=64)]
EXAMPLE = {"id": "nc-2026-007", "title": "Compressed air leaks, hall 2", "description": "Base load at night 40 % "
           "above the baseline (alert 12)", "alert_ids": [12], "owner": "maintenance", "due_on": "2026-04-30"}


def get_nc_book(db: DbDep) -> NonconformityBook:
    return NonconformityBook(db)


NcBookDep = Annotated[NonconformityBook, Depends(get_nc_book)]


class NonconformityIn(NonconformityDoc):
    id: str = Field(pattern=NAME, max_length=64, description="stable id")


class CloseIn(BaseModel):
    note: str = Field(min_length=1, max_length=2000, description="why it is closed")


class NonconformityOut(BaseModel):
    id: str
    version: int
    active: bool
    created_at: str
    created_by: str
    spec: NonconformityDoc
    effectiveness: EffectivenessOut | None = Field(default=None, description="the check now (null without one, "
                                                   "or before the corrective action)")


class NonconformityDetail(NonconformityOut):
    versions: list[NonconformityOut]


def _out(book: NonconformityBook, d: StoredDoc, now: NowDep) -> NonconformityOut:
    doc = NonconformityDoc.model_validate_json(d.spec)
    return NonconformityOut(id=d.id, version=d.version, active=d.active, created_at=d.created_at,
                            created_by=d.created_by, spec=doc, effectiveness=book.effectiveness(d.site, doc, now))


def _writable(book: NonconformityBook, site: str, doc: NonconformityDoc) -> None:
    if doc.state == "closed":
        raise Invalid(("body", "state"), "close with POST /v1/nonconformities/{id}/close (it checks effectiveness)")
    book.check_alerts(site, doc)


@router.get("/nonconformities")
def list_nonconformities(settings: SettingsDep, book: NcBookDep, now: NowDep, key: Viewer, site: SiteQuery = None,
                         include_closed: Annotated[bool, Query(description="list closed ones too")] = False,
                         ) -> list[NonconformityOut]:
    """The newest version of each nonconformity (open ones unless `include_closed`) with its effectiveness."""
    site = site_of(key, settings, site)
    found = [_out(book, d, now) for d in book.current(site)]
    return [n for n in found if include_closed or n.spec.state != "closed"]


@router.get("/nonconformities/{nc_id}", responses={404: {"description": "no such nonconformity on this site"}})
def show_nonconformity(nc_id: NcId, settings: SettingsDep, book: NcBookDep, now: NowDep, key: Viewer,
                       site: SiteQuery = None) -> NonconformityDetail:
    site = site_of(key, settings, site)
    versions = book.versions(site, nc_id)
    return NonconformityDetail(**_out(book, versions[-1], now).model_dump(),
                               versions=[_out(book, v, now) for v in versions])


@router.post("/nonconformities", status_code=201, responses={409: {"description": "the id is taken"}})
def raise_nonconformity(body: Annotated[NonconformityIn, Body(openapi_examples={"air": {"value": EXAMPLE}})],
                        settings: SettingsDep, book: NcBookDep, now: NowDep, key: Engineer,
                        site: SiteQuery = None) -> NonconformityOut:
    """Raise a nonconformity, from alerts (`alert_ids`) or by hand."""
    site = site_of(key, settings, site)
    doc = NonconformityDoc.model_validate(body.model_dump(exclude={"id"}))
    _writable(book, site, doc)
    return _out(book, book.save(site, body.id, doc, key.name, create=True), now)


@router.put("/nonconformities/{nc_id}", responses={404: {"description": "no such nonconformity"},
                                                   409: {"description": "it is closed"}})
def update_nonconformity(nc_id: NcId, body: Annotated[NonconformityDoc, Body()], settings: SettingsDep,
                         book: NcBookDep, now: NowDep, key: Engineer, site: SiteQuery = None) -> NonconformityOut:
    """Record the cause, correction, corrective action (state `action_taken` with `action_taken_at`) and the
    effectiveness check: a new version."""
    site = site_of(key, settings, site)
    last = book.versions(site, nc_id)[-1]
    if NonconformityDoc.model_validate_json(last.spec).state == "closed":
        raise Conflict(f"nonconformity {nc_id!r} is closed; raise a new one")
    _writable(book, site, body)
    return _out(book, book.save(site, nc_id, body, key.name, create=False), now)


@router.post("/nonconformities/{nc_id}/close", responses={404: {"description": "no such nonconformity"},
                                                          409: {"description": "not after its corrective action, or "
                                                                "its effectiveness check is not effective"}})
def close_nonconformity(nc_id: NcId, body: Annotated[CloseIn, Body()], settings: SettingsDep, book: NcBookDep,
                        now: NowDep, key: Engineer, site: SiteQuery = None) -> NonconformityOut:
    """Close after the corrective action, once its effectiveness check says effective (a new, closed version)."""
    site = site_of(key, settings, site)
    return _out(book, book.close(site, nc_id, body.note, key.name, now), now)
