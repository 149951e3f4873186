"""Allowances and offsets: the request models and the desk that adds and voids entries (over records.ledger), each
change with its audit row. Entries are never edited; an offset serial is counted once (a second unvoided entry with
the same serial is refused)."""

from __future__ import annotations

import tokenize
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from api.errors import Conflict, NotFound
from calc.units import UnitError, convert
from records.db import ApiDb
from records.ledger import Ledger, Voidable

MASS_EXAMPLES = ["t", "kg", "kt"]


MAX_KG = 1e15  # a million megatonnes: far beyond any plant; keeps every figure finite
# an allowance's period (ETS compliance periods are a year; a budget a few): its projection walks the hours left
# along the expected profile, so a period to the year 9999 would cost gigabytes for one request
MAX_ALLOWANCE_PERIOD = timedelta(days=3653)


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
        if self.end - self.start > MAX_ALLOWANCE_PERIOD:
            raise ValueError(f"end: an allowance period is at most {MAX_ALLOWANCE_PERIOD.days} days (10 years)")
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


class LedgerDesk:
    """Adds and voids allowances and offsets, each change with its audit row; reads entries with their void marks."""

    def __init__(self, db: ApiDb) -> None:
        self.db = db
        self.ledger = Ledger(db)

    def add_allowance(self, site: str, body: AllowanceIn, actor: str) -> int:
        with self.db.tx() as conn:
            new_id = Ledger.add_allowance(conn, (site, body.scope, body.target, _utc(body.start), _utc(body.end),
                                                 to_kg(body.amount, body.unit, "unit"), body.amount, body.unit,
                                                 body.note, self.db.now(), actor))
            self.db.audit(conn, site, actor, "create", "allowance", str(new_id), body.model_dump(mode="json"))
        return new_id

    def add_offset(self, site: str, body: OffsetIn, actor: str) -> int:
        with self.db.tx() as conn:
            if body.serial is not None:
                dup = Ledger.offset_with_serial(conn, body.serial)
                if dup is not None:
                    where = f"entry {dup['id']}" if dup["site"] == site else "another site's entry"
                    raise Conflict(f"serial {body.serial!r} is already counted ({where}); void that entry first "
                                   f"if it was wrong")
            applies = datetime(body.applies_on.year, body.applies_on.month, body.applies_on.day).isoformat() + "+00:00"
            new_id = Ledger.add_offset(conn, (site, body.kind, body.standard, body.project, body.vintage, body.serial,
                                              to_kg(body.quantity, body.unit, "unit"), body.quantity, body.unit,
                                              applies, body.evidence, body.note, self.db.now(), actor))
            self.db.audit(conn, site, actor, "create", "offset", str(new_id), body.model_dump(mode="json"))
        return new_id

    def void(self, entity: Voidable, site: str, entry_id: int, reason: str, actor: str) -> None:
        """Void one entry of the site's ledger (allowance, offset or instrument) with its audit row; raises
        NotFound or Conflict (already void). The entry stays readable, marked."""
        with self.db.tx() as conn:
            if not Ledger.exists(conn, entity, site, entry_id):
                raise NotFound(f"no {entity} {entry_id}")
            if Ledger.is_voided(conn, entity, entry_id):
                raise Conflict(f"{entity} {entry_id} is already void")
            Ledger.void(conn, entity, entry_id, self.db.now(), actor, reason)
            self.db.audit(conn, site, actor, "void", entity, str(entry_id), {"reason": reason})

    def list(self, entity: Literal["allowance", "offset"], site: str, limit: int, offset: int) -> list[dict[str, Any]]:
        return self.ledger.entries(entity, site, limit, offset)

    def get(self, entity: Literal["allowance", "offset"], site: str, entry_id: int) -> dict[str, Any]:
        doc = self.ledger.entry(entity, site, entry_id)
        if doc is None:
            raise NotFound(f"no {entity} {entry_id}")
        return doc


def _utc(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat()
