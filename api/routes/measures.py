"""Reduction measures (ISO 50001 6.6.2): what, owner, resources or cost, dates, meters or areas, expected savings
and, once implemented with a baseline, their verified savings (IPMVP option B/C: the baseline's expected energy −
the actual after the measure). Versioned; viewers read, engineers record and change them; every change audited."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query
from pydantic import BaseModel, Field

from api.baselines import BaselineBook
from api.deps import DbDep, Engineer, NowDep, SettingsDep, SiteQuery, StoreDep, Viewer, site_of
from api.errors import ApiError, Invalid
from api.measures import SavingsOut, measure_book, measure_savings
from api.settings import Settings
from api.targets import DocBook, target_book
from calc.errors import CalcError
from records.measures import MeasureDoc
from records.targets import NAME, StoredDoc

router = APIRouter(prefix="/v1", tags=["targets"])

MeasureId = Annotated[str, Path(pattern=NAME, max_length=64)]
EXAMPLE = {"id": "vsd-compressor-2", "title": "Variable-speed drive on compressor 2", "owner": "maintenance",
           "status": "implemented", "cost": 120000, "cost_currency": "CNY",
           "implemented_at": "2026-03-01T00:00:00+08:00", "meters": ["m1"], "expected_savings": 80000,
           "expected_savings_unit": "kWh/a", "baseline_id": "press-line-1-electricity", "target_id": "site-2030"}


def get_measure_book(db: DbDep) -> DocBook:
    return measure_book(db)


MeasureBookDep = Annotated[DocBook, Depends(get_measure_book)]


class MeasureIn(MeasureDoc):
    id: str = Field(pattern=NAME, max_length=64, description="stable id")


class MeasureOut(BaseModel):
    id: str
    version: int
    active: bool
    created_at: str
    created_by: str
    spec: MeasureDoc
    verified_savings: SavingsOut | None = Field(default=None, description="null until implemented with a "
                                                "baseline and a whole period has passed")
    savings_refused: str | None = Field(default=None, description="why savings could not be verified")


class MeasureDetail(MeasureOut):
    versions: list[MeasureOut]


def _out(d: StoredDoc) -> MeasureOut:
    return MeasureOut(id=d.id, version=d.version, active=d.active, created_at=d.created_at,
                      created_by=d.created_by, spec=MeasureDoc.model_validate_json(d.spec))


def _with_savings(out: MeasureOut, settings: Settings, store: StoreDep, db: DbDep, site: str,
                  now: NowDep) -> MeasureOut:
    try:
        saved = measure_savings(store, settings.plant, BaselineBook(db), site, out.spec, now)
    except (ApiError, CalcError) as exc:
        return out.model_copy(update={"savings_refused": str(exc)})
    return out.model_copy(update={"verified_savings": saved})


def _check(settings: Settings, db: DbDep, site: str, doc: MeasureDoc) -> None:
    plant = settings.plant
    unknown = sorted(set(doc.meters) - {m.id for m in plant.meters})
    if unknown:
        raise Invalid(("body", "meters"), f"no meters {unknown} in this plant")
    unknown = sorted(set(doc.areas) - {m.area for m in plant.meters})
    if unknown:
        raise Invalid(("body", "areas"), f"no areas {unknown} in this plant")
    if doc.baseline_id is not None and not BaselineBook(db).repo.versions(site, doc.baseline_id):
        raise Invalid(("body", "baseline_id"), f"no baseline {doc.baseline_id!r}")
    if doc.target_id is not None and not target_book(db).repo.versions(site, doc.target_id):
        raise Invalid(("body", "target_id"), f"no target {doc.target_id!r}")


@router.get("/measures")
def list_measures(settings: SettingsDep, store: StoreDep, db: DbDep, book: MeasureBookDep, now: NowDep,
                  key: Viewer, site: SiteQuery = None,
                  include_retired: Annotated[bool, Query(description="list retired measures too")] = False,
                  ) -> list[MeasureOut]:
    """The newest version of each measure with its verified savings."""
    site = site_of(key, settings, site)
    return [_with_savings(_out(d), settings, store, db, site, now) for d in book.current(site, include_retired)]


@router.get("/measures/{measure_id}", responses={404: {"description": "no such measure on this site"}})
def show_measure(measure_id: MeasureId, settings: SettingsDep, store: StoreDep, db: DbDep, book: MeasureBookDep,
                 now: NowDep, key: Viewer, site: SiteQuery = None) -> MeasureDetail:
    site = site_of(key, settings, site)
    versions = book.versions(site, measure_id)
    out = _with_savings(_out(versions[-1]), settings, store, db, site, now)
    return MeasureDetail(**out.model_dump(), versions=[_out(v) for v in versions])


@router.post("/measures", status_code=201, responses={409: {"description": "the id is taken"}})
def create_measure(body: Annotated[MeasureIn, Body(openapi_examples={"vsd": {"value": EXAMPLE}})],
                   settings: SettingsDep, db: DbDep, book: MeasureBookDep, key: Engineer,
                   site: SiteQuery = None) -> MeasureOut:
    site = site_of(key, settings, site)
    doc = MeasureDoc.model_validate(body.model_dump(exclude={"id"}))
    _check(settings, db, site, doc)
    return _out(book.save(site, body.id, doc, key.name, create=True))


@router.put("/measures/{measure_id}", responses={404: {"description": "no such measure"}})
def update_measure(measure_id: MeasureId, body: Annotated[MeasureDoc, Body()], settings: SettingsDep, db: DbDep,
                   book: MeasureBookDep, key: Engineer, site: SiteQuery = None) -> MeasureOut:
    """Change a measure, e.g. mark it implemented (a new version; earlier versions stay readable)."""
    site = site_of(key, settings, site)
    book.versions(site, measure_id)
    _check(settings, db, site, body)
    return _out(book.save(site, measure_id, body, key.name, create=False))


@router.delete("/measures/{measure_id}", responses={404: {"description": "no such measure, or retired"}})
def retire_measure(measure_id: MeasureId, settings: SettingsDep, book: MeasureBookDep, key: Engineer,
                   site: SiteQuery = None) -> MeasureOut:
    site = site_of(key, settings, site)
    last = book.versions(site, measure_id)[-1]
    return _out(book.retire(site, measure_id, MeasureDoc.model_validate_json(last.spec), key.name))
