"""Energy baselines in the API database: versioned like rules, never overwritten (a refit is a new version, a
retirement a version with `active` 0). Each version holds what was fitted (`BaselineSpec`) and the fitted model
(calc.baseline.Baseline), both as JSON; `latest_active` is the one read a consumer (the deviation rule) needs."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from calc.baseline import AcceptanceLimits, Baseline, Resolution
from records.base import Repository, first

NAME = r"^[A-Za-z0-9_.\-]+$"


class DriverSpec(BaseModel):
    """One driver of a baseline, read from the store: a variable of the plant's `[[variables]]` (its total when a
    counter: production, operating hours; its degree-days when a temperature gauge), or the production counters of
    an area, line or site added up (ingest.store.variables.combine)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=NAME, max_length=64, description="the term's name in the model")
    variable: str | None = Field(default=None, max_length=128, description="a variable id of the plant")
    production_of: Literal["area", "line", "site"] | None = Field(
        default=None, description="instead of `variable`: the production counters of this area, line or site")
    target: str | None = Field(default=None, max_length=128, description="the area or line of `production_of`")
    transform: Literal["total", "heating_degree_days", "cooling_degree_days"] = Field(
        default="total", description="total: a counter's sum per period; *_degree_days: K·d of a temperature gauge "
        "per period (from its hourly means)")
    base_c: float | None = Field(default=None, ge=-50, le=50, allow_inf_nan=False,
                                 description="degree-day base, degC (default: the variable's degree_day_base_c)")

    @model_validator(mode="after")
    def _one_source(self) -> DriverSpec:
        if self.name == "intercept":
            raise ValueError("name: 'intercept' is reserved")
        if (self.variable is None) == (self.production_of is None):
            raise ValueError("give exactly one of `variable` and `production_of`")
        if self.production_of is not None and self.transform != "total":
            raise ValueError("production_of: production is summed (transform 'total')")
        if self.production_of in ("area", "line") and not self.target:
            raise ValueError(f"production_of {self.production_of!r} needs a `target`")
        return self


class BaselineSpec(BaseModel):
    """What a baseline models: the energy of one carrier over a site, area, line or meter, per period of
    `resolution`, on the drivers, fitted over [period_start, period_end)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    scope: Literal["site", "area", "line", "meter"]
    target: str | None = Field(default=None, max_length=128, description="the area, line or meter (not for site)")
    carrier: str | None = Field(default=None, max_length=64, description="default: the meter's, or the only one")
    resolution: Resolution = Resolution.DAILY
    period_start: AwareDatetime
    period_end: AwareDatetime
    drivers: tuple[DriverSpec, ...] = Field(default=(), max_length=8)
    limits: AcceptanceLimits | None = Field(default=None, description="default: ASHRAE Guideline 14's for the "
                                            "resolution")

    @model_validator(mode="after")
    def _consistent(self) -> BaselineSpec:
        if self.scope != "site" and not self.target:
            raise ValueError(f"scope {self.scope!r} needs a `target`")
        if self.period_end <= self.period_start:
            raise ValueError("period_end must be after period_start")
        names = [d.name for d in self.drivers]
        if len(set(names)) != len(names):
            raise ValueError("driver names must be unique")
        return self


@dataclass(frozen=True, slots=True)
class StoredBaseline:
    """One version of a baseline as stored."""

    id: str
    version: int
    site: str
    spec: BaselineSpec
    model: Baseline
    model_hash: str
    period_hours: float       # mean length (h) of the fit's periods: scales the intercept at another resolution
    active: bool
    created_at: str
    created_by: str


def stored(row: sqlite3.Row) -> StoredBaseline:
    return StoredBaseline(row["id"], row["version"], row["site"], BaselineSpec.model_validate_json(row["spec"]),
                          Baseline.model_validate_json(row["model"]), row["model_hash"], row["period_hours"],
                          bool(row["active"]), row["created_at"], row["created_by"])


# (site,): the newest version of each of the site's baselines, by id
CURRENT: Final = ("SELECT b.* FROM baselines b JOIN (SELECT id, MAX(version) v FROM baselines WHERE site = ? "
                  "GROUP BY id) last ON b.id = last.id AND b.version = last.v ORDER BY b.id")
# (site, id): every version of one baseline, oldest first
VERSIONS: Final = "SELECT * FROM baselines WHERE site = ? AND id = ? ORDER BY version"
# (site, id): the newest version, when it is active
LATEST_ACTIVE: Final = ("SELECT * FROM baselines WHERE site = ? AND id = ? AND active = 1 AND version = "
                        "(SELECT MAX(version) FROM baselines WHERE site = ? AND id = ?)")
# (id,): the site that owns the id and its newest version (both NULL when the id is free)
LATEST: Final = "SELECT site, MAX(version) v FROM baselines WHERE id = ?"
INSERT: Final = ("INSERT INTO baselines (id, version, site, spec, model, model_hash, period_hours, active, "
                 "created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")


class Baselines(Repository):
    def current(self, site: str) -> list[StoredBaseline]:
        """The newest version of each of the site's baselines (retired ones included: `active` says)."""
        return [stored(r) for r in self.db.query(CURRENT, (site,))]

    def versions(self, site: str, baseline_id: str) -> list[StoredBaseline]:
        """Every version of one baseline, oldest first (empty when there is none)."""
        return [stored(r) for r in self.db.query(VERSIONS, (site, baseline_id))]

    def latest_active(self, site: str, baseline_id: str) -> StoredBaseline | None:
        """The baseline's newest version when it is in force; None when there is none or it is retired."""
        rows = self.db.query(LATEST_ACTIVE, (site, baseline_id, site, baseline_id))
        return stored(rows[0]) if rows else None

    @staticmethod
    def latest(conn: sqlite3.Connection, baseline_id: str) -> tuple[str | None, int | None]:
        """(owning site, newest version) of the id, inside the caller's transaction; (None, None) when free."""
        row = first(conn, LATEST, (baseline_id,))
        return (row["site"], row["v"]) if row is not None else (None, None)

    @staticmethod
    def add(conn: sqlite3.Connection, b: StoredBaseline) -> None:
        conn.execute(INSERT, (b.id, b.version, b.site, b.spec.model_dump_json(), b.model.model_dump_json(),
                              b.model_hash, b.period_hours, int(b.active), b.created_at, b.created_by))
