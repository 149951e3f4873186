"""Targets and milestones (ISO 50001 6.6) in the API database, versioned like baselines (a change is a new
version, a retirement a version with `active` 0), and the versioned-document repository measures share."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from calc.targets import TargetKind, TargetSpec
from records.base import Reader, Repository, first

NAME = r"^[A-Za-z0-9_.\-]+$"


class TargetDoc(TargetSpec):
    """A target as stored: its trajectory (calc.targets.TargetSpec) with boundary, owner and what it measures."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    title: str = Field(min_length=1, max_length=200)
    owner: str = Field(min_length=1, max_length=128, description="who answers for the target")
    scope: Literal["site", "area", "meter"] = "site"
    target: str | None = Field(default=None, max_length=128, description="the area or meter (not for site)")
    production_variable: str | None = Field(default=None, max_length=128, description="intensity targets: the "
                                            "production counter (a plant variable) the kg CO2e are divided by")
    note: str | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def _boundary(self) -> TargetDoc:
        if (self.scope == "site") != (self.target is None):
            raise ValueError("`target` names the area or meter of scope area/meter, and is left out for site")
        if (self.kind is TargetKind.INTENSITY) != (self.production_variable is not None):
            raise ValueError("`production_variable` is given for intensity targets, and only for them")
        return self

    def trajectory_spec(self) -> TargetSpec:
        return TargetSpec(kind=self.kind, base_year=self.base_year, base_value=self.base_value,
                          milestones=self.milestones)


@dataclass(frozen=True, slots=True)
class StoredDoc:
    """One version of a versioned document (a target's or a measure's JSON)."""

    id: str
    version: int
    site: str
    spec: str
    active: bool
    created_at: str
    created_by: str


class Table(BaseModel):
    """A table of versioned documents: (id, version, site, spec, active, created_at, created_by)."""

    name: Literal["targets", "measures", "nonconformities"]

    def sql(self) -> dict[str, str]:
        t = self.name
        return {
            "current": (f"SELECT d.* FROM {t} d JOIN (SELECT id, MAX(version) v FROM {t} WHERE site = ? "
                        "GROUP BY id) last ON d.id = last.id AND d.version = last.v ORDER BY d.id"),
            "versions": f"SELECT * FROM {t} WHERE site = ? AND id = ? ORDER BY version",
            "latest": f"SELECT site, MAX(version) v FROM {t} WHERE id = ?",
            "insert": (f"INSERT INTO {t} (id, version, site, spec, active, created_at, created_by) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)"),
        }


def _doc(row: sqlite3.Row) -> StoredDoc:
    return StoredDoc(row["id"], row["version"], row["site"], row["spec"], bool(row["active"]), row["created_at"],
                     row["created_by"])


class VersionedDocs(Repository):
    """Reads and writes of one table of versioned documents."""

    def __init__(self, db: Reader, table: Literal["targets", "measures", "nonconformities"]) -> None:
        super().__init__(db)
        self.q = Table(name=table).sql()

    def current(self, site: str) -> list[StoredDoc]:
        """The newest version of each of the site's documents (retired ones included: `active` says)."""
        return [_doc(r) for r in self.db.query(self.q["current"], (site,))]

    def versions(self, site: str, doc_id: str) -> list[StoredDoc]:
        return [_doc(r) for r in self.db.query(self.q["versions"], (site, doc_id))]

    def latest(self, conn: sqlite3.Connection, doc_id: str) -> tuple[str | None, int | None]:
        """(owning site, newest version) of the id, inside the caller's transaction; (None, None) when free."""
        row = first(conn, self.q["latest"], (doc_id,))
        return (row["site"], row["v"]) if row is not None else (None, None)

    def add(self, conn: sqlite3.Connection, d: StoredDoc) -> None:
        conn.execute(self.q["insert"], (d.id, d.version, d.site, d.spec, int(d.active), d.created_at,
                                        d.created_by))


class Targets(VersionedDocs):
    def __init__(self, db: Reader) -> None:
        super().__init__(db, "targets")
