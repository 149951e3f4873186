"""Nonconformities and corrective actions (ISO 50001 10.2) over records.nonconformities: raised from alerts or by
hand, changed as new versions, the effectiveness check computed from the alert log (calc.nonconformity: the rule
stayed clear for N days after the action), and closure (refused while the check is not effective)."""

from __future__ import annotations

import html
from datetime import date, datetime

from pydantic import BaseModel, Field

from api.errors import Conflict, Invalid, NotFound
from api.meter_register import overdue_from
from api.targets import DocBook
from calc.nonconformity import Verdict, effectiveness
from records.db import ApiDb
from records.nonconformities import Closure, Nonconformities, NonconformityDoc
from records.targets import StoredDoc


class EffectivenessOut(BaseModel):
    rule_id: str
    clear_days: float
    verdict: Verdict
    action_at: datetime = Field(description="the corrective action's time: the check starts here")
    until: datetime = Field(description="action_at + clear_days")
    fired_again: list[datetime] = Field(description="the rule's alerts fired in [action_at, until)")


class NonconformityBook(DocBook):
    def __init__(self, db: ApiDb) -> None:
        self.nc = Nonconformities(db)
        super().__init__(db, self.nc, "nonconformity")

    def check_alerts(self, site: str, doc: NonconformityDoc) -> None:
        unknown = sorted(set(doc.alert_ids) - self.nc.alert_ids(site))
        if unknown:
            raise Invalid(("body", "alert_ids"), f"no alerts {unknown} on this site")

    def effectiveness(self, site: str, doc: NonconformityDoc, now: datetime) -> EffectivenessOut | None:
        """The check at `now`; None without a check or before the corrective action is taken."""
        check = doc.effectiveness
        if check is None or doc.action_taken_at is None:
            return None
        e = effectiveness(doc.action_taken_at, check.clear_days, now, self.nc.fired(site, check.rule_id))
        return EffectivenessOut(rule_id=check.rule_id, clear_days=check.clear_days, verdict=e.verdict,
                                action_at=e.from_, until=e.until, fired_again=list(e.fired_again))

    def close(self, site: str, nc_id: str, note: str, actor: str, now: datetime) -> StoredDoc:
        """Close after the corrective action, when its effectiveness check (if any) says effective."""
        last = self.versions(site, nc_id)[-1]
        doc = NonconformityDoc.model_validate_json(last.spec)
        if not last.active:
            raise NotFound(f"nonconformity {nc_id!r} is withdrawn")
        if doc.state != "action_taken":
            raise Conflict(f"nonconformity {nc_id!r} is {doc.state}: it closes after its corrective action")
        check = self.effectiveness(site, doc, now)
        if check is not None and check.verdict is not Verdict.EFFECTIVE:
            raise Conflict(f"the effectiveness check is {check.verdict.value} (rule {check.rule_id!r} must stay "
                           f"clear until {check.until.isoformat()}): not closed")
        closed = doc.model_copy(update={"state": "closed", "closure": Closure(
            at=now, by=actor, note=note, verdict=check.verdict.value if check is not None else None)})
        return self.save(site, nc_id, NonconformityDoc.model_validate(closed.model_dump()), actor, create=False,
                         action="close")


class OpenItem(BaseModel):
    """A nonconformity not closed, as the period report lists it."""

    id: str
    title: str
    owner: str
    state: str
    due_on: date
    overdue: bool = Field(description="not closed by the day after its due date (site time)")
    alert_ids: list[int]


def open_items(db: ApiDb, site: str, now: datetime, tz: str) -> list[OpenItem]:
    """The site's nonconformities not closed at `now`, by id."""
    items = []
    for d in Nonconformities(db).current(site):
        doc = NonconformityDoc.model_validate_json(d.spec)
        if d.active and doc.state != "closed":
            items.append(OpenItem(id=d.id, title=doc.title, owner=doc.owner, state=doc.state, due_on=doc.due_on,
                                  overdue=now >= overdue_from(doc.due_on, tz), alert_ids=list(doc.alert_ids)))
    return items


def open_items_csv(items: list[OpenItem]) -> list[list[str]]:
    return [["nonconformity_open", f"{i.id} {i.title}", "", "", "", "",
             f"{i.state}; owner {i.owner}; due {i.due_on.isoformat()}{'; overdue' if i.overdue else ''}"]
            for i in items]


def open_items_html(items: list[OpenItem]) -> str:
    if not items:
        return "<h2>Open nonconformities (ISO 50001 10.2)</h2><p>none</p>"
    e = html.escape
    rows = "".join(f"<tr><th>{e(i.id)}</th><td>{e(i.title)}; {e(i.state)}; owner {e(i.owner)}; due "
                   f"{i.due_on.isoformat()}{' (overdue)' if i.overdue else ''}</td></tr>" for i in items)
    return f"<h2>Open nonconformities (ISO 50001 10.2)</h2><table>{rows}</table>"
