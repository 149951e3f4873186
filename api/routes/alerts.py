"""Alerts: history (paged), one alert with its transitions, acknowledge (who, comment) and resolve by hand.
Alerts are raised and cleared by the live engine; every transition is audited and notified."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel, Field

from api.deps import BookDep, EngineDep, Engineer, EntryId, SettingsDep, SiteQuery, Viewer, site_of
from api.rulebook import alert_doc

router = APIRouter(prefix="/v1", tags=["alerts"])


class AlertOut(BaseModel):
    id: int
    site: str
    rule: str
    rule_version: int
    target: str
    severity: str
    state: Literal["firing", "acknowledged", "resolved"]
    value: float
    unit: str
    fired_at: str
    acknowledged_at: str | None
    acknowledged_by: str | None
    ack_comment: str | None
    resolved_at: str | None
    resolved_value: float | None


class AlertEvent(BaseModel):
    ts: str
    transition: str
    actor: str
    comment: str | None
    value: float | None


class AlertDetail(AlertOut):
    events: list[AlertEvent]


class AlertPage(BaseModel):
    alerts: list[AlertOut]
    next_before_id: int | None = Field(description="pass as before_id for the next (older) page")


class Comment(BaseModel):
    comment: str = Field(min_length=1, max_length=2000, examples=["Press 2 tool change; load back to normal at 10:30"])


@router.get("/alerts")
def list_alerts(settings: SettingsDep, book: BookDep, key: Viewer, site: SiteQuery = None,
                state: Annotated[Literal["firing", "acknowledged", "resolved"] | None, Query()] = None,
                limit: Annotated[int, Query(ge=1, le=500)] = 100,
                before_id: Annotated[int | None, Query(ge=1, le=2**62)] = None) -> AlertPage:
    """Newest first."""
    rows = book.alerts(site_of(key, settings, site), state, limit, before_id)
    alerts = [AlertOut(**alert_doc(r)) for r in rows]
    return AlertPage(alerts=alerts, next_before_id=alerts[-1].id if len(alerts) == limit else None)


def _detail(book: BookDep, site: str, alert_id: int) -> AlertDetail:
    row = book.alert(site, alert_id)
    events = [AlertEvent(ts=e["ts"], transition=e["transition"], actor=e["actor"], comment=e["comment"],
                         value=e["value"]) for e in book.events(alert_id)]
    return AlertDetail(**alert_doc(row), events=events)


@router.get("/alerts/{alert_id}", responses={404: {"description": "no such alert on this site"}})
def show_alert(alert_id: EntryId, settings: SettingsDep, book: BookDep, key: Viewer,
               site: SiteQuery = None) -> AlertDetail:
    return _detail(book, site_of(key, settings, site), alert_id)




@router.post("/alerts/{alert_id}/acknowledge", responses={404: {"description": "no such alert"},
                                                         409: {"description": "not firing"}})
def acknowledge(alert_id: EntryId, body: Annotated[Comment, Body()], settings: SettingsDep, book: BookDep,
                engine: EngineDep, key: Engineer, site: SiteQuery = None) -> AlertDetail:
    """Firing → acknowledged, with who and why; it resolves when the rule clears."""
    site = site_of(key, settings, site)
    row = book.acknowledge(site, alert_id, key.name, body.comment)
    engine.acknowledged(alert_doc(row))
    return _detail(book, site, alert_id)


@router.post("/alerts/{alert_id}/resolve", responses={404: {"description": "no such alert"},
                                                     409: {"description": "already resolved"}})
def resolve_alert(alert_id: EntryId, body: Annotated[Comment, Body()], settings: SettingsDep, book: BookDep,
                  engine: EngineDep, key: Engineer, site: SiteQuery = None) -> AlertDetail:
    """Close an alert by hand (e.g. its rule was deleted); the rule starts again from ok."""
    site = site_of(key, settings, site)
    row = book.resolve(site, alert_id, None, book.db.now(), key.name, body.comment)
    engine.resolved_by_hand(row["rule_id"], alert_doc(row))
    return _detail(book, site, alert_id)
