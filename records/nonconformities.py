"""Nonconformities and corrective actions (ISO 50001 10.2) in the API database: raised from alerts or by hand,
with cause, correction, corrective action, owner, due date, an effectiveness check (the rule stayed clear for N
days) and closure; versioned like targets (records.targets.VersionedDocs). Also the alert reads they need."""

from __future__ import annotations

from datetime import date, datetime
from typing import Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from records.base import Reader
from records.targets import NAME, VersionedDocs

# (site, rule_id): when each alert of a rule fired
FIRED: Final = "SELECT fired_at FROM alerts WHERE site = ? AND rule_id = ? ORDER BY id"
# (site,): ids of the site's alerts
ALERT_IDS: Final = "SELECT id FROM alerts WHERE site = ?"


class EffectivenessCheck(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    rule_id: str = Field(pattern=NAME, max_length=64, description="the rule that must stay clear")
    clear_days: float = Field(gt=0, le=3650, description="for this many days after the corrective action")


class Closure(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    at: AwareDatetime
    by: str
    note: str
    verdict: str | None = Field(description="the effectiveness check's verdict when closed (none without one)")


class NonconformityDoc(BaseModel):
    """A nonconformity as stored."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    title: str = Field(min_length=1, max_length=200)
    description: str = Field(min_length=1, max_length=4000)
    alert_ids: tuple[int, ...] = Field(default=(), max_length=100, description="the alerts it was raised from "
                                       "(none: raised by hand)")
    owner: str = Field(min_length=1, max_length=128)
    due_on: date = Field(description="the corrective action is due by this day (overdue from the next, site time)")
    cause: str | None = Field(default=None, max_length=4000)
    correction: str | None = Field(default=None, max_length=4000, description="what was done at once")
    corrective_action: str | None = Field(default=None, max_length=4000, description="what removes the cause")
    action_taken_at: AwareDatetime | None = Field(default=None, description="when the corrective action was done: "
                                                  "the effectiveness check starts here")
    effectiveness: EffectivenessCheck | None = None
    state: Literal["open", "action_taken", "closed"] = "open"
    closure: Closure | None = None

    @model_validator(mode="after")
    def _consistent(self) -> NonconformityDoc:
        if self.state != "open" and (self.corrective_action is None or self.action_taken_at is None):
            raise ValueError(f"state {self.state!r} needs `corrective_action` and `action_taken_at`")
        if (self.state == "closed") != (self.closure is not None):
            raise ValueError("a closed nonconformity has its `closure`, an open one none (close it with POST "
                             "/v1/nonconformities/{id}/close)")
        if len(set(self.alert_ids)) != len(self.alert_ids):
            raise ValueError("alert_ids: each alert once")
        return self


class Nonconformities(VersionedDocs):
    def __init__(self, db: Reader) -> None:
        super().__init__(db, "nonconformities")

    def fired(self, site: str, rule_id: str) -> list[datetime]:
        """When each alert of the rule fired."""
        return [datetime.fromisoformat(r["fired_at"]) for r in self.db.query(FIRED, (site, rule_id))]

    def alert_ids(self, site: str) -> set[int]:
        return {int(r["id"]) for r in self.db.query(ALERT_IDS, (site,))}
