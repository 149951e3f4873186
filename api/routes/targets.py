"""Targets and milestones (ISO 50001 6.6): base year and figure, absolute, % reduction or intensity target,
milestones by year, owner and boundary; versioned (a change is a new version, a retirement keeps every version).
Viewers read them with their trajectory and this year's progress; admins set them; every change is audited."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query
from pydantic import BaseModel, Field

from api.deps import Admin, DbDep, NowDep, SettingsDep, SiteQuery, StoreDep, Viewer, site_of
from api.errors import ApiError, Invalid
from api.settings import Settings
from api.targets import DocBook, ProgressOut, target_book, target_progress
from calc.errors import CalcError
from calc.targets import trajectory
from records.targets import NAME, StoredDoc, TargetDoc

router = APIRouter(prefix="/v1", tags=["targets"])

TargetId = Annotated[str, Path(pattern=NAME, max_length=64)]
EXAMPLE = {"id": "site-2030", "title": "Halve the site's emissions by 2030", "owner": "plant manager",
           "kind": "reduction_pct", "base_year": 2020, "base_value": 1000000.0,
           "milestones": [{"year": 2025, "value": 20}, {"year": 2030, "value": 50}]}


def get_target_book(db: DbDep) -> DocBook:
    return target_book(db)


TargetBookDep = Annotated[DocBook, Depends(get_target_book)]


class TargetIn(TargetDoc):
    id: str = Field(pattern=NAME, max_length=64, description="stable id")


class TargetOut(BaseModel):
    id: str
    version: int
    active: bool
    created_at: str
    created_by: str
    spec: TargetDoc
    progress: ProgressOut | None = Field(default=None, description="this year's (or the asked year's) progress")
    progress_refused: str | None = Field(default=None, description="why there is no progress figure")


class TargetDetail(TargetOut):
    trajectory: list[tuple[int, float]] = Field(description="(year, allowed figure): base year to last milestone")
    versions: list[TargetOut]


def _out(d: StoredDoc) -> TargetOut:
    return TargetOut(id=d.id, version=d.version, active=d.active, created_at=d.created_at,
                     created_by=d.created_by, spec=TargetDoc.model_validate_json(d.spec))


def with_progress(out: TargetOut, settings: Settings, store: StoreDep, site: str, now: NowDep,
                  year: int | None = None) -> TargetOut:
    if not out.active:
        return out
    try:
        return out.model_copy(update={"progress": target_progress(settings, store, site, out.spec, now, year)})
    except (ApiError, CalcError) as exc:
        return out.model_copy(update={"progress_refused": str(exc)})


def check_boundary(settings: Settings, doc: TargetDoc) -> None:
    plant = settings.plant
    if doc.scope == "meter" and doc.target not in {m.id for m in plant.meters}:
        raise Invalid(("body", "target"), f"no meter {doc.target!r} in this plant")
    if doc.scope == "area" and doc.target not in {m.area for m in plant.meters}:
        raise Invalid(("body", "target"), f"no area {doc.target!r} in this plant")
    if doc.production_variable is not None and doc.production_variable not in {v.id for v in plant.variables}:
        raise Invalid(("body", "production_variable"), f"no variable {doc.production_variable!r} in this plant")


@router.get("/targets")
def list_targets(settings: SettingsDep, store: StoreDep, book: TargetBookDep, now: NowDep, key: Viewer,
                 site: SiteQuery = None,
                 include_retired: Annotated[bool, Query(description="list retired targets too")] = False,
                 ) -> list[TargetOut]:
    """The newest version of each target with this year's progress against its trajectory."""
    site = site_of(key, settings, site)
    return [with_progress(_out(d), settings, store, site, now) for d in book.current(site, include_retired)]


@router.get("/targets/{target_id}", responses={404: {"description": "no such target on this site"}})
def show_target(target_id: TargetId, settings: SettingsDep, store: StoreDep, book: TargetBookDep, now: NowDep,
                key: Viewer, site: SiteQuery = None,
                year: Annotated[int | None, Query(ge=1990, le=2100, description="default: this year")] = None,
                ) -> TargetDetail:
    """The newest version, its trajectory, the year's progress and every earlier version."""
    site = site_of(key, settings, site)
    versions = book.versions(site, target_id)
    out = with_progress(_out(versions[-1]), settings, store, site, now, year)
    return TargetDetail(**out.model_dump(), trajectory=trajectory(out.spec.trajectory_spec()),
                        versions=[_out(v) for v in versions])


@router.post("/targets", status_code=201, responses={409: {"description": "the id is taken"}})
def create_target(body: Annotated[TargetIn, Body(openapi_examples={"reduction": {"value": EXAMPLE}})],
                  settings: SettingsDep, book: TargetBookDep, key: Admin, site: SiteQuery = None) -> TargetOut:
    """Set a target (version 1)."""
    site = site_of(key, settings, site)
    doc = TargetDoc.model_validate(body.model_dump(exclude={"id"}))
    check_boundary(settings, doc)
    return _out(book.save(site, body.id, doc, key.name, create=True))


@router.put("/targets/{target_id}", responses={404: {"description": "no such target"}})
def update_target(target_id: TargetId, body: Annotated[TargetDoc, Body()], settings: SettingsDep,
                  book: TargetBookDep, key: Admin, site: SiteQuery = None) -> TargetOut:
    """Change a target (a new version; earlier versions stay readable)."""
    site = site_of(key, settings, site)
    book.versions(site, target_id)
    check_boundary(settings, body)
    return _out(book.save(site, target_id, body, key.name, create=False))


@router.delete("/targets/{target_id}", responses={404: {"description": "no such target, or retired"}})
def retire_target(target_id: TargetId, settings: SettingsDep, book: TargetBookDep, key: Admin,
                  site: SiteQuery = None) -> TargetOut:
    """Retire a target (a new, inactive version; nothing is erased)."""
    site = site_of(key, settings, site)
    last = book.versions(site, target_id)[-1]
    return _out(book.retire(site, target_id, TargetDoc.model_validate_json(last.spec), key.name))
