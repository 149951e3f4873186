"""Energy and emission reduction measures (ISO 50001 6.6.2) in the API database: what, owner, resources, dates,
the meters or areas they affect, the expected savings and the baseline their savings are verified with;
versioned like targets (records.targets.VersionedDocs)."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from records.base import Reader
from records.targets import NAME, VersionedDocs


class MeasureDoc(BaseModel):
    """A reduction measure as stored."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    title: str = Field(min_length=1, max_length=200, description="what is done")
    description: str | None = Field(default=None, max_length=4000)
    owner: str = Field(min_length=1, max_length=128)
    status: Literal["planned", "in_progress", "implemented", "cancelled"] = "planned"
    resources: str | None = Field(default=None, max_length=2000, description="people, equipment, budget line")
    cost: float | None = Field(default=None, ge=0, allow_inf_nan=False, description="in cost_currency")
    cost_currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$", description="ISO 4217, e.g. CNY")
    planned_start: date | None = None
    planned_end: date | None = None
    implemented_at: AwareDatetime | None = Field(default=None, description="when the measure took effect: "
                                                 "savings are verified from here")
    meters: tuple[str, ...] = Field(default=(), max_length=100, description="meters it affects")
    areas: tuple[str, ...] = Field(default=(), max_length=100, description="areas it affects")
    expected_savings: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    expected_savings_unit: str | None = Field(default=None, max_length=32, description="e.g. kWh/a, kg/a")
    baseline_id: str | None = Field(default=None, pattern=NAME, max_length=64, description="the baseline "
                                    "(/v1/baselines) whose model gives the expected energy after the measure")
    target_id: str | None = Field(default=None, pattern=NAME, max_length=64, description="the target it serves")

    @model_validator(mode="after")
    def _consistent(self) -> MeasureDoc:
        if self.status == "implemented" and self.implemented_at is None:
            raise ValueError("an implemented measure needs `implemented_at`")
        if (self.cost is None) != (self.cost_currency is None):
            raise ValueError("give `cost` with its `cost_currency`")
        if (self.expected_savings is None) != (self.expected_savings_unit is None):
            raise ValueError("give `expected_savings` with its `expected_savings_unit`")
        if self.planned_start and self.planned_end and self.planned_end < self.planned_start:
            raise ValueError("planned_end is before planned_start")
        return self


class Measures(VersionedDocs):
    def __init__(self, db: Reader) -> None:
        super().__init__(db, "measures")
