"""The audit log (clause 7.5): every change of rules, factors, allowances, offsets and keys and every alert
transition, append-only and hash-chained; GET /v1/audit/verify recomputes the chain."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.deps import DbDep, SettingsDep, SiteQuery, Viewer, site_of
from records.audit import AuditLog

router = APIRouter(prefix="/v1", tags=["audit"])


class AuditRow(BaseModel):
    seq: int
    ts: str
    site: str
    actor: str
    action: str
    entity: str
    entity_id: str
    body: str
    prev_hash: str
    hash: str


class AuditPage(BaseModel):
    rows: list[AuditRow]
    next_after_seq: int | None


class ChainOut(BaseModel):
    ok: bool
    rows: int
    first_bad_seq: int | None
    reason: str | None
    head: str


@router.get("/audit")
def audit_log(settings: SettingsDep, db: DbDep, key: Viewer, site: SiteQuery = None,
              entity: Annotated[str | None, Query(max_length=32)] = None,
              after_seq: Annotated[int, Query(ge=0, le=2**62)] = 0,
              limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> AuditPage:
    """Oldest first; page with after_seq."""
    site = site_of(key, settings, site)
    out = [AuditRow(**r) for r in AuditLog(db).page(site, after_seq, limit, entity)]
    return AuditPage(rows=out, next_after_seq=out[-1].seq if len(out) == limit else None)


@router.get("/audit/verify")
def verify(db: DbDep, key: Viewer) -> ChainOut:
    """Recompute every hash of the whole chain (all sites: the chain is one); names the first bad row."""
    report = AuditLog(db).verify()
    return ChainOut(ok=report.ok, rows=report.rows, first_bad_seq=report.first_bad_seq, reason=report.reason,
                    head=report.head)


