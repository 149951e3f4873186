"""Factor sets: list and show (the shipped default and uploaded versions), upload a new version (admin, audited),
and which factor version produced the stored figures when (GET /v1/factor-usage)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel, Field

from api.deps import Admin, DbDep, HistoryDep, NowDep, SettingsDep, SiteQuery, Viewer, invalid, site_of
from api.errors import Conflict, NotFound
from api.routes.balance import FromQuery, PeriodQuery, ToQuery, period_of
from calc.factors import FactorError, FactorSet, default_factor_set, parse_factor_toml
from records.factor_sets import FactorSets

router = APIRouter(prefix="/v1", tags=["factors"])


class FactorSetSummary(BaseModel):
    name: str
    version: str
    factors: int
    gwp_set: str
    created_at: str | None = None
    created_by: str | None = None


class FactorSetOut(FactorSetSummary):
    items: list[dict[str, Any]]
    total: int
    offset: int


class FactorUseOut(BaseModel):
    factor_id: str
    factor_version: str
    first: datetime
    last: datetime
    points: int


class FactorUsageOut(BaseModel):
    site: str
    start: datetime
    end: datetime
    used: list[FactorUseOut]


class FactorUpload(BaseModel):
    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$", max_length=64, examples=["plant-2026"])
    toml: str = Field(min_length=1, max_length=200_000, description="factor document (TOML), as in "
                      "calc/data/default_factors.toml", examples=['[factors.x]\nvalue = 0.5\nunit = "kg/kWh"\n'])


def _sets(db: DbDep) -> list[tuple[FactorSet, str | None, str | None]]:
    out: list[tuple[FactorSet, str | None, str | None]] = [(default_factor_set(), None, None)]
    for r in FactorSets(db).uploaded():
        out.append((parse_factor_toml(r["document"], r["name"]), r["created_at"], r["created_by"]))
    return out


def _summary(fs: FactorSet, at: str | None, by: str | None) -> FactorSetSummary:
    return FactorSetSummary(name=fs.name, version=fs.version, factors=len(fs.factors), gwp_set=fs.gwp_set,
                            created_at=at, created_by=by)


@router.get("/factor-sets")
def list_sets(db: DbDep, key: Viewer) -> list[FactorSetSummary]:
    """Every factor set version known to the API (the shipped `default` first)."""
    return [_summary(*s) for s in _sets(db)]


@router.get("/factor-sets/{name}", responses={404: {"description": "no such set or version"}})
def show_set(name: str, db: DbDep, key: Viewer,
             version: Annotated[str | None, Query(max_length=80, description="default: the newest")] = None,
             offset: Annotated[int, Query(ge=0)] = 0,
             limit: Annotated[int, Query(ge=1, le=500)] = 100) -> FactorSetOut:
    """One factor set version with its factors (paged), each with value, unit, validity and source."""
    found = [s for s in _sets(db) if s[0].name == name and (version is None or s[0].version == version)]
    if not found:
        raise NotFound(f"no factor set {name!r}" + (f" version {version!r}" if version else ""))
    fs, at, by = found[-1]
    items = [f.model_dump(mode="json") for f in sorted(fs.factors.values(), key=lambda f: f.id)]
    return FactorSetOut(**_summary(fs, at, by).model_dump(), items=items[offset:offset + limit], total=len(items),
                        offset=offset)


@router.post("/factor-sets", status_code=201, responses={409: {"description": "this version exists"},
                                                          422: {"description": "the document does not validate"}})
def upload_set(body: Annotated[FactorUpload, Body()], db: DbDep, settings: SettingsDep, key: Admin,
               site: SiteQuery = None) -> FactorSetSummary:
    """Store a new factor set version (validated; its version is a content hash). Audited. Ingest keeps
    converting with the factor set it was started with."""
    site = site_of(key, settings, site)
    try:
        fs = parse_factor_toml(body.toml, body.name)
    except FactorError as exc:
        raise invalid(("body", "toml"), str(exc)) from exc
    with db.tx() as conn:
        if FactorSets.exists(conn, fs.name, fs.version):
            raise Conflict(f"factor set {fs.name!r} version {fs.version!r} exists")
        at = db.now()
        FactorSets.add(conn, fs.name, fs.version, body.toml, at, key.name)
        db.audit(conn, site, key.name, "create", "factor_set", f"{fs.name}@{fs.version}",
                 {"factors": len(fs.factors), "gwp_set": fs.gwp_set})
    return _summary(fs, at, key.name)


@router.get("/factor-usage")
def factor_usage(settings: SettingsDep, history: HistoryDep, now: NowDep, key: Viewer, site: SiteQuery = None,
                 period: PeriodQuery = None, start: FromQuery = None, end: ToQuery = None) -> FactorUsageOut:
    """Which factor versions produced the stored figures, and from when to when (hour resolution)."""
    site = site_of(key, settings, site)
    bounds = period_of(settings, now, period or "year", start, end)
    used = [FactorUseOut(factor_id=u.factor_id, factor_version=u.factor_version, first=u.first, last=u.last,
                         points=u.points) for u in history.factor_usage(site, bounds.start, bounds.end)]
    return FactorUsageOut(site=site, start=bounds.start, end=bounds.end, used=used)
