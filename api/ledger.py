"""Allowances and the offsets ledger in the API database: entries are added or voided, never edited; an offset
serial is counted once (a second unvoided entry with the same serial is refused)."""

from __future__ import annotations

import sqlite3
import tokenize
from datetime import date, datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from api.db import ApiDb
from api.errors import Conflict, NotFound
from calc import ledger_sql
from calc.ledger_sql import TABLES, Voidable
from calc.units import UnitError, convert

MASS_EXAMPLES = ["t", "kg", "kt"]


MAX_KG = 1e15  # a million megatonnes: far beyond any plant; keeps every figure finite


def to_kg(amount: float, unit: str, what: str) -> float:
    try:
        kg = convert(amount, unit, "kg")
    except (UnitError, tokenize.TokenError) as exc:   # pint's tokenizer raises on e.g. "(" (not a UnitError)
        raise ValueError(f"{what}: {unit!r} is not a mass unit of CO2e (use t, kg, kt)") from exc
    if not 0 < kg <= MAX_KG:
        raise ValueError(f"{what}: {amount} {unit} is not between 0 and {MAX_KG:g} kg")
    return kg


class AllowanceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scope: Literal["site", "area", "meter"] = "site"
    target: str | None = Field(default=None, max_length=128)
    start: AwareDatetime = Field(examples=["2026-01-01T00:00:00+08:00"])
    end: AwareDatetime = Field(examples=["2027-01-01T00:00:00+08:00"])
    amount: float = Field(gt=0, le=MAX_KG, allow_inf_nan=False, examples=[12_000.0])
    unit: str = Field(default="t", max_length=16, examples=MASS_EXAMPLES, description="t CO2e, kg CO2e ...")
    note: str | None = Field(default=None, max_length=1000)

    @model_validator(mode="after")
    def _check(self) -> AllowanceIn:
        if (self.scope == "site") != (self.target is None):
            raise ValueError("target: an area or meter id for area and meter scope, none for site scope")
        if self.end <= self.start:
            raise ValueError("end must be after start")
        to_kg(self.amount, self.unit, "unit")
        return self


class OffsetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["credit", "sink", "other"] = Field(examples=["credit"])
    standard: str | None = Field(default=None, max_length=64, examples=["CCER"])
    project: str | None = Field(default=None, max_length=200)
    vintage: int | None = Field(default=None, ge=1990, le=2100, examples=[2025])
    serial: str | None = Field(default=None, min_length=1, max_length=200, pattern=r"^\S(.*\S)?$",
                               description="registry serial number (block); counted once",
                               examples=["CCER-2025-000123-000001-001000"])
    quantity: float = Field(gt=0, le=MAX_KG, allow_inf_nan=False, examples=[1000.0])
    unit: str = Field(default="t", max_length=16, examples=MASS_EXAMPLES)
    applies_on: date = Field(description="date the offset counts for (retirement date); site time zone is not "
                             "applied, the day starts at 00:00 UTC", examples=["2026-11-30"])
    evidence: str = Field(min_length=1, max_length=1000, description="reference to the proof (registry record, "
                          "retirement certificate, survey)", examples=["registry retirement record R-2026-0042"])
    note: str | None = Field(default=None, max_length=1000)

    @model_validator(mode="after")
    def _check(self) -> OffsetIn:
        if self.kind == "credit" and not self.serial:
            raise ValueError("serial: a credit needs its registry serial number")
        to_kg(self.quantity, self.unit, "unit")
        return self


class Void(BaseModel):
    reason: str = Field(min_length=1, max_length=1000, examples=["entered twice by mistake"])


def row_doc(row: sqlite3.Row, voids: dict[int, sqlite3.Row]) -> dict[str, Any]:
    doc = {k: row[k] for k in row.keys()}  # noqa: SIM118
    v = voids.get(row["id"])
    doc.update(voided=v is not None, voided_at=v["at"] if v else None, voided_by=v["by"] if v else None,
               void_reason=v["reason"] if v else None)
    return doc


class Ledger:
    def __init__(self, db: ApiDb) -> None:
        self.db = db

    def add_allowance(self, site: str, body: AllowanceIn, actor: str) -> int:
        with self.db.tx() as conn:
            cur = conn.execute(
                "INSERT INTO allowances (site, scope, target, period_start, period_end, amount_kg, amount, "
                "amount_unit, note, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (site, body.scope, body.target, _utc(body.start), _utc(body.end),
                 to_kg(body.amount, body.unit, "unit"), body.amount, body.unit, body.note, self.db.now(), actor))
            new_id = int(cur.lastrowid or 0)
            self.db.audit(conn, site, actor, "create", "allowance", str(new_id), body.model_dump(mode="json"))
        return new_id

    def add_offset(self, site: str, body: OffsetIn, actor: str) -> int:
        with self.db.tx() as conn:
            if body.serial is not None:
                dup = conn.execute(ledger_sql.OFFSET_WITH_SERIAL, (body.serial,)).fetchone()
                if dup is not None:
                    where = f"entry {dup['id']}" if dup["site"] == site else "another site's entry"
                    raise Conflict(f"serial {body.serial!r} is already counted ({where}); void that entry first "
                                   f"if it was wrong")
            applies = datetime(body.applies_on.year, body.applies_on.month, body.applies_on.day).isoformat() + "+00:00"
            cur = conn.execute(
                "INSERT INTO offsets (site, kind, standard, project, vintage, serial, quantity_kg, quantity, "
                "quantity_unit, applies_on, evidence, note, created_at, created_by) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (site, body.kind, body.standard, body.project, body.vintage, body.serial,
                 to_kg(body.quantity, body.unit, "unit"), body.quantity, body.unit, applies, body.evidence,
                 body.note, self.db.now(), actor))
            new_id = int(cur.lastrowid or 0)
            self.db.audit(conn, site, actor, "create", "offset", str(new_id), body.model_dump(mode="json"))
        return new_id

    def void(self, entity: Literal["allowance", "offset"], site: str, entry_id: int, reason: str, actor: str) -> None:
        void_entry(self.db, entity, site, entry_id, reason, actor)

    def list(self, entity: Literal["allowance", "offset"], site: str, limit: int, offset: int) -> list[dict[str, Any]]:
        table = {"allowance": "allowances", "offset": "offsets"}[entity]
        rows = self.db.query(f"SELECT * FROM {table} WHERE site = ? ORDER BY id LIMIT ? OFFSET ?",
                             (site, limit, offset))
        voids = self.db.voided(entity)
        return [row_doc(r, voids) for r in rows]

    def get(self, entity: Literal["allowance", "offset"], site: str, entry_id: int) -> dict[str, Any]:
        table = {"allowance": "allowances", "offset": "offsets"}[entity]
        rows = self.db.query(f"SELECT * FROM {table} WHERE site = ? AND id = ?", (site, entry_id))
        if not rows:
            raise NotFound(f"no {entity} {entry_id}")
        return row_doc(rows[0], self.db.voided(entity))


def void_entry(db: ApiDb, entity: Voidable, site: str, entry_id: int, reason: str, actor: str) -> None:
    """Void one entry of the site's ledger (allowance, offset or instrument) with its audit row; raises NotFound
    or Conflict (already void). The entry stays readable, marked."""
    with db.tx() as conn:
        if conn.execute(f"SELECT 1 FROM {TABLES[entity]} WHERE id = ? AND site = ?",
                        (entry_id, site)).fetchone() is None:
            raise NotFound(f"no {entity} {entry_id}")
        if conn.execute(ledger_sql.IS_VOIDED, (entity, entry_id)).fetchone():
            raise Conflict(f"{entity} {entry_id} is already void")
        conn.execute("INSERT INTO voids (entity, entity_id, at, by, reason) VALUES (?, ?, ?, ?, ?)",
                     (entity, entry_id, db.now(), actor, reason))
        db.audit(conn, site, actor, "void", entity, str(entry_id), {"reason": reason})


def _utc(ts: datetime) -> str:
    from datetime import UTC

    return ts.astimezone(UTC).isoformat()
