"""Energy baselines (ISO 50006 EnB), versioned like rules: list, show with every version, fit one on stored data
(engineers and admins; a model that misses its acceptance limits is refused with each limit and its value, and
nothing is stored), refit (a new version) and retire (a retired version; nothing is erased). Every change is
audited."""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.baselines import BaselineBook, Refused, fit
from api.deps import DbDep, Engineer, NowDep, SettingsDep, SiteQuery, StoreDep, Viewer, site_of
from calc.baseline import Baseline
from records.baselines import NAME, BaselineSpec, StoredBaseline

router = APIRouter(prefix="/v1", tags=["baselines"])

BaselineId = Annotated[str, Path(pattern=NAME, max_length=64)]

EXAMPLE = {"id": "press-line-1-electricity", "scope": "line", "target": "line-1", "carrier": "electricity",
           "resolution": "daily", "period_start": "2026-01-01T00:00:00+08:00",
           "period_end": "2026-03-01T00:00:00+08:00",
           "drivers": [{"name": "panels", "variable": "press-1-output"},
                       {"name": "hdd", "variable": "outdoor-temp", "transform": "heating_degree_days"}]}
REFUSED = {"description": "the model misses its acceptance limits (`misses`: each limit and the model's value; "
                          "`stats`: the fit), or a request that cannot be fitted; nothing is stored"}


def get_baseline_book(db: DbDep) -> BaselineBook:
    return BaselineBook(db)


BaselineBookDep = Annotated[BaselineBook, Depends(get_baseline_book)]


class BaselineIn(BaselineSpec):
    id: str = Field(pattern=NAME, max_length=64, description="stable id")


class BaselineOut(BaseModel):
    id: str
    version: int
    active: bool
    created_at: str
    created_by: str
    model_version: str = Field(description="content hash of the fitted model")
    period_hours: float = Field(description="mean length of the fit's periods, h")
    spec: BaselineSpec
    model: Baseline = Field(description="the fitted model: terms with unit, standard error, p-value and 95 % "
                            "interval; R², CV(RMSE), NMBE; the acceptance limits it met")


class BaselineDetail(BaselineOut):
    versions: list[BaselineOut]


def _out(b: StoredBaseline) -> BaselineOut:
    return BaselineOut(id=b.id, version=b.version, active=b.active, created_at=b.created_at,
                       created_by=b.created_by, model_version=b.model_hash, period_hours=b.period_hours,
                       spec=b.spec, model=b.model)


def _finite(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in doc.items()}


def refused(exc: Refused) -> JSONResponse:
    return JSONResponse({"detail": str(exc), "misses": exc.misses,
                         "stats": _finite(exc.stats.model_dump()) if exc.stats is not None else None},
                        status_code=422)


@router.get("/baselines")
def list_baselines(settings: SettingsDep, book: BaselineBookDep, key: Viewer, site: SiteQuery = None,
                   include_retired: Annotated[bool, Query(description="list retired baselines too")] = False,
                   ) -> list[BaselineOut]:
    """The newest version of each baseline (in force only, unless `include_retired`)."""
    return [_out(b) for b in book.current(site_of(key, settings, site), include_retired)]


@router.get("/baselines/{baseline_id}", responses={404: {"description": "no such baseline on this site"}})
def show_baseline(baseline_id: BaselineId, settings: SettingsDep, book: BaselineBookDep, key: Viewer,
                  site: SiteQuery = None) -> BaselineDetail:
    """The newest version and every version before it (what each fitted, when and by whom)."""
    versions = book.versions(site_of(key, settings, site), baseline_id)
    return BaselineDetail(**_out(versions[-1]).model_dump(), versions=[_out(v) for v in versions])


@router.post("/baselines", status_code=201, response_model=BaselineOut,
             responses={409: {"description": "the id is taken"}, 422: REFUSED})
def create_baseline(body: Annotated[BaselineIn, Body(openapi_examples={"line": {"value": EXAMPLE}})],
                    settings: SettingsDep, store: StoreDep, book: BaselineBookDep, now: NowDep, key: Engineer,
                    site: SiteQuery = None) -> BaselineOut | JSONResponse:
    """Fit energy on the drivers over the baseline period from the stored data (OLS) and store the model with its
    statistics, when it meets the acceptance limits (default: ASHRAE Guideline 14's for the resolution)."""
    site = site_of(key, settings, site)
    spec = BaselineSpec.model_validate(body.model_dump(exclude={"id"}))
    try:
        model, hours = fit(store, settings.plant, site, spec, now)
    except Refused as exc:
        return refused(exc)
    return _out(book.save(site, body.id, spec, model, hours, key.name, create=True))


@router.put("/baselines/{baseline_id}", response_model=BaselineOut,
            responses={404: {"description": "no such baseline"}, 422: REFUSED})
def refit_baseline(baseline_id: BaselineId, body: Annotated[BaselineSpec, Body()], settings: SettingsDep,
                   store: StoreDep, book: BaselineBookDep, now: NowDep, key: Engineer,
                   site: SiteQuery = None) -> BaselineOut | JSONResponse:
    """Replace the baseline with a new fit (a new version; earlier versions stay readable and usable)."""
    site = site_of(key, settings, site)
    book.get(site, baseline_id)
    try:
        model, hours = fit(store, settings.plant, site, body, now)
    except Refused as exc:
        return refused(exc)
    return _out(book.save(site, baseline_id, body, model, hours, key.name, create=False))


@router.delete("/baselines/{baseline_id}", responses={404: {"description": "no such baseline, or retired"}})
def retire_baseline(baseline_id: BaselineId, settings: SettingsDep, book: BaselineBookDep, key: Engineer,
                    site: SiteQuery = None) -> BaselineOut:
    """Retire the baseline (a new, inactive version of the same model; nothing is erased)."""
    return _out(book.retire(site_of(key, settings, site), baseline_id, key.name))
