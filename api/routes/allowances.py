"""Allowances per period and boundary (clause 8.1.2): add and void (admin, audited), list, and one allowance with
used, burn rate, projection to the period's end and the date it runs out."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel

from api.accounting import AllowanceStatus, allowance_status
from api.deps import (
    Admin,
    DbDep,
    EngineDep,
    EntryId,
    HistoryDep,
    NowDep,
    SettingsDep,
    SiteQuery,
    StoreDep,
    Viewer,
    invalid,
    site_of,
)
from api.ledger import AllowanceIn, LedgerDesk, Void

router = APIRouter(prefix="/v1", tags=["allowances"])


class AllowanceOut(BaseModel):
    id: int
    site: str
    scope: str
    target: str | None
    period_start: str
    period_end: str
    amount_kg: float
    amount: float
    amount_unit: str
    note: str | None
    created_at: str
    created_by: str
    voided: bool
    voided_at: str | None
    voided_by: str | None
    void_reason: str | None


class AllowanceDetail(AllowanceOut):
    status: AllowanceStatus | None


def _check_target(settings: SettingsDep, scope: str, target: str | None) -> None:
    if scope == "area" and target not in {m.area for m in settings.plant.meters}:
        raise invalid(("body", "target"), f"no area {target!r} in this plant")
    if scope == "meter" and target not in settings.plant.meters_by_id:
        raise invalid(("body", "target"), f"no meter {target!r} in this plant")


@router.get("/allowances")
def list_allowances(settings: SettingsDep, db: DbDep, key: Viewer, site: SiteQuery = None,
                    limit: Annotated[int, Query(ge=1, le=500)] = 100,
                    offset: Annotated[int, Query(ge=0, le=10**9)] = 0) -> list[AllowanceOut]:
    return [AllowanceOut(**d) for d in LedgerDesk(db).list("allowance", site_of(key, settings, site), limit, offset)]


@router.get("/allowances/{entry_id}", responses={404: {"description": "no such allowance on this site"}})
def show_allowance(entry_id: EntryId, settings: SettingsDep, db: DbDep, store: StoreDep, history: HistoryDep,
                   now: NowDep, key: Viewer, site: SiteQuery = None) -> AllowanceDetail:
    """The allowance and, unless voided, where emissions stand against it now."""
    site = site_of(key, settings, site)
    doc: dict[str, Any] = LedgerDesk(db).get("allowance", site, entry_id)
    from datetime import datetime, timedelta

    start, end = datetime.fromisoformat(doc["period_start"]), datetime.fromisoformat(doc["period_end"])
    status = None
    if not doc["voided"]:
        at = min(max(now, start), end - timedelta(microseconds=1))
        status = allowance_status(db, store, history, settings, site, at, now, doc["scope"], doc["target"])
        if status is not None and status.id != entry_id:
            status = None  # a newer allowance of the same boundary and period supersedes this one
    return AllowanceDetail(**doc, status=status)


@router.post("/allowances", status_code=201, responses={422: {"description": "invalid allowance"}})
def add_allowance(body: Annotated[AllowanceIn, Body()], settings: SettingsDep, db: DbDep, engine: EngineDep,
                  key: Admin, site: SiteQuery = None) -> AllowanceOut:
    """Add an allowance (amount with its mass unit, e.g. 12000 t CO2e); a newer one for the same boundary and
    period supersedes the older."""
    site = site_of(key, settings, site)
    _check_target(settings, body.scope, body.target)
    ledger = LedgerDesk(db)
    new_id = ledger.add_allowance(site, body, key.name)
    engine.reload_allowances()
    return AllowanceOut(**ledger.get("allowance", site, new_id))


@router.post("/allowances/{entry_id}/void", responses={404: {"description": "no such allowance"},
                                                      409: {"description": "already void"}})
def void_allowance(entry_id: EntryId, body: Annotated[Void, Body()], settings: SettingsDep, db: DbDep,
                   engine: EngineDep, key: Admin, site: SiteQuery = None) -> AllowanceOut:
    site = site_of(key, settings, site)
    ledger = LedgerDesk(db)
    ledger.void("allowance", site, entry_id, body.reason, key.name)
    engine.reload_allowances()
    return AllowanceOut(**ledger.get("allowance", site, entry_id))
