"""The audit log (clause 7.5): every change of rules, factors, allowances, offsets and keys and every alert
transition, append-only and hash-chained; GET /v1/audit/verify recomputes the chain."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.deps import DbDep, SettingsDep, SiteQuery, Viewer, site_of

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
    sql, params = "SELECT * FROM audit WHERE site = ? AND seq > ?", [site, after_seq]
    if entity:
        sql += " AND entity = ?"
        params.append(entity)
    rows = db.query(sql + " ORDER BY seq LIMIT ?", (*params, limit))
    out = [AuditRow(**{k: r[k] for k in r.keys()}) for r in rows]  # noqa: SIM118
    return AuditPage(rows=out, next_after_seq=out[-1].seq if len(out) == limit else None)


@router.get("/audit/verify")
def verify(db: DbDep, key: Viewer) -> ChainOut:
    """Recompute every hash of the whole chain (all sites: the chain is one); names the first bad row."""
    report = db.verify_chain()
    return ChainOut(ok=report.ok, rows=report.rows, first_bad_seq=report.first_bad_seq, reason=report.reason,
                    head=report.head)


