"""The contractual instruments ledger (market-based scope 2): green electricity certificates (serial ranges, 1 MWh
each) and PPAs (contract id, MWh), added or voided, never edited, each change with its audit row; a certificate
serial or a PPA contract is counted once across all sites."""

from __future__ import annotations

import re
import sqlite3
import tokenize
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.errors import Conflict, NotFound
from api.ledger import LedgerDesk
from calc.market import Instrument
from calc.units import UnitError, convert
from records.db import ApiDb
from records.instruments import Instruments

SERIAL = re.compile(r"^(?P<prefix>\S+)-(?P<number>\d{1,12})$")
MAX_CERTIFICATES = 10**9      # 1 000 TWh: far beyond any plant
MAX_MWH = 1e9
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2100, 12, 31)


def parse_serial(serial: str, what: str) -> tuple[str, int, int]:
    """PREFIX-000123 -> (prefix, 123, digits)."""
    m = SERIAL.match(serial)
    if m is None:
        raise ValueError(f"{what}: {serial!r} is not a certificate serial PREFIX-NUMBER (e.g. GEC2026-000001)")
    return m["prefix"], int(m["number"]), len(m["number"])


def render_serial(prefix: str, number: int, digits: int) -> str:
    return f"{prefix}-{number:0{digits}d}"


class InstrumentIn(BaseModel):
    """A new instrument: certificates by serial range, or a PPA by contract id and volume."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"kind": "gec", "serial_first": "GEC2026-000001", "serial_last": "GEC2026-000100",
         "valid_from": "2026-01-01", "valid_to": "2026-12-31", "scope": "site", "region": "CN",
         "evidence": "GEC platform transfer record T-2026-0007"},
        {"kind": "ppa", "contract_id": "PPA-2026-WIND-03", "quantity": 250, "unit": "MWh",
         "valid_from": "2026-01-01", "valid_to": "2026-06-30", "scope": "area", "target": "press-shop",
         "region": "CN", "evidence": "green power trading contract PPA-2026-WIND-03"}]})

    kind: Literal["gec", "ppa"] = Field(description="gec: green electricity certificates (1 MWh each); ppa: "
                                        "power purchase agreement", examples=["gec"])
    serial_first: str | None = Field(default=None, max_length=200, examples=["GEC2026-000001"],
                                     description="gec: first serial of the range, PREFIX-NUMBER")
    serial_last: str | None = Field(default=None, max_length=200, examples=["GEC2026-000100"],
                                    description="gec: last serial (inclusive, same prefix); default the first")
    contract_id: str | None = Field(default=None, min_length=1, max_length=200, pattern=r"^\S(.*\S)?$",
                                    description="ppa: contract id, counted once", examples=["PPA-2026-WIND-03"])
    quantity: float | None = Field(default=None, gt=0, allow_inf_nan=False, examples=[250.0],
                                   description="ppa: contracted volume (gec: the range's count, leave out)")
    unit: str = Field(default="MWh", max_length=16, examples=["MWh", "kWh", "GWh"])
    valid_from: date = Field(ge=FIRST_DAY, le=LAST_DAY, examples=["2026-01-01"],
                             description="first day of consumption the instrument may cover")
    valid_to: date = Field(ge=FIRST_DAY, le=LAST_DAY, examples=["2026-12-31"], description="last day (inclusive)")
    scope: Literal["site", "area", "meter"] = Field(default="site", description="boundary the instrument covers")
    target: str | None = Field(default=None, max_length=128, description="area or meter id for area/meter scope")
    region: str = Field(default="", max_length=32, pattern=r"^[A-Za-z0-9_\-]*$", examples=["CN"],
                        description="market boundary (grid region); empty: any")
    evidence: str = Field(min_length=1, max_length=1000, examples=["GEC platform transfer record T-2026-0007"])
    note: str | None = Field(default=None, max_length=1000)

    @model_validator(mode="after")
    def _check(self) -> InstrumentIn:
        if (self.scope == "site") != (self.target is None):
            raise ValueError("target: an area or meter id for area and meter scope, none for site scope")
        if self.valid_to < self.valid_from:
            raise ValueError("valid_to must not be before valid_from")
        if self.kind == "gec":
            if self.serial_first is None:
                raise ValueError("serial_first: certificates need their serial range")
            if self.contract_id is not None or self.quantity is not None:
                raise ValueError("quantity: a certificate range counts its serials (1 MWh each); leave out "
                                 "quantity and contract_id")
            self.serial_range()
        else:
            if self.contract_id is None or self.quantity is None:
                raise ValueError("contract_id: a PPA needs its contract id and quantity")
            if self.serial_first is not None or self.serial_last is not None:
                raise ValueError("serial_first: serial ranges are for certificates (kind gec)")
            self.mwh()
        return self

    def serial_range(self) -> tuple[str, int, int, int]:
        """(prefix, first, last, digits) of a certificate range."""
        prefix, first, digits = parse_serial(self.serial_first or "", "serial_first")
        last_prefix, last, _ = parse_serial(self.serial_last or self.serial_first or "", "serial_last")
        if last_prefix != prefix:
            raise ValueError(f"serial_last: prefix {last_prefix!r} differs from serial_first's {prefix!r}")
        if not first <= last < first + MAX_CERTIFICATES:
            raise ValueError(f"serial_last: must be at or after serial_first and within {MAX_CERTIFICATES} of it")
        return prefix, first, last, digits

    def mwh(self) -> float:
        if self.kind == "gec":
            _, first, last, _ = self.serial_range()
            return float(last - first + 1)
        try:
            mwh = convert(self.quantity or 0.0, self.unit, "MWh")
        except (UnitError, tokenize.TokenError) as exc:
            raise ValueError(f"unit: {self.unit!r} is not an energy unit (use MWh, kWh, GWh)") from exc
        if not 0 < mwh <= MAX_MWH:
            raise ValueError(f"quantity: {self.quantity} {self.unit} is not between 0 and {MAX_MWH:g} MWh")
        return mwh


class InstrumentOut(BaseModel):
    id: int
    site: str
    kind: str
    serial_first: str | None
    serial_last: str | None
    certificates: int | None = Field(description="gec: number of certificates in the range")
    contract_id: str | None
    quantity_mwh: float
    valid_from: date
    valid_to: date
    scope: str
    target: str | None
    region: str
    evidence: str
    note: str | None
    created_at: str
    created_by: str
    voided: bool
    voided_at: str | None
    voided_by: str | None
    void_reason: str | None


def _out(doc: dict[str, Any]) -> InstrumentOut:
    """An instrument's stored row (with its void marks, records.ledger.row_doc) as the API shows it."""
    gec = doc["kind"] == "gec"
    prefix, digits = doc.pop("serial_prefix"), doc.pop("serial_digits")
    first, last = doc.pop("serial_first"), doc.pop("serial_last")
    doc.update(serial_first=render_serial(prefix, first, digits) if gec else None,
               serial_last=render_serial(prefix, last, digits) if gec else None,
               certificates=last - first + 1 if gec else None)
    return InstrumentOut(**doc)


@dataclass(frozen=True, slots=True)
class Scoped:
    """An unvoided instrument as the accounting uses it: calc's Instrument and the boundary it covers."""

    instrument: Instrument
    scope: str
    target: str | None


class InstrumentDesk:
    """Adds and voids the site's instruments (audited, a serial or contract counted once) and reads them."""

    def __init__(self, db: ApiDb) -> None:
        self.db = db
        self.ledger = LedgerDesk(db)

    def add(self, site: str, body: InstrumentIn, actor: str) -> int:
        prefix: str | None = None
        first = last = digits = None
        with self.db.tx() as conn:
            if body.kind == "gec":
                prefix, first, last, digits = body.serial_range()
                clash = Instruments.gec_overlap(conn, prefix, first, last)
                if clash is not None:
                    theirs = (f"{render_serial(prefix, clash['serial_first'], clash['serial_digits'])}.."
                              f"{render_serial(prefix, clash['serial_last'], clash['serial_digits'])}")
                    raise Conflict(f"certificates {render_serial(prefix, first, digits)}.."
                                   f"{render_serial(prefix, last, digits)} overlap {theirs} already counted "
                                   f"({_where(clash, site)}); void that entry first if it was wrong")
            else:
                clash = Instruments.ppa_with_contract(conn, body.contract_id)
                if clash is not None:
                    raise Conflict(f"PPA contract {body.contract_id!r} is already counted ({_where(clash, site)}); "
                                   "void that entry first if it was wrong")
            new_id = Instruments.add(conn, (site, body.kind, prefix, first, last, digits, body.contract_id,
                                            body.mwh(), body.valid_from.isoformat(), body.valid_to.isoformat(),
                                            body.scope, body.target, body.region, body.evidence, body.note,
                                            self.db.now(), actor))
            self.db.audit(conn, site, actor, "create", "instrument", str(new_id), body.model_dump(mode="json"))
        return new_id

    def void(self, site: str, entry_id: int, reason: str, actor: str) -> None:
        self.ledger.void("instrument", site, entry_id, reason, actor)

    def entries(self, site: str, limit: int, offset: int) -> list[InstrumentOut]:
        return [_out(d) for d in self.ledger.ledger.entries("instrument", site, limit, offset)]

    def get(self, site: str, entry_id: int) -> InstrumentOut:
        doc = self.ledger.ledger.entry("instrument", site, entry_id)
        if doc is None:
            raise NotFound(f"no instrument {entry_id}")
        return _out(doc)

    def active(self, site: str) -> list[Scoped]:
        """The site's unvoided instruments, soonest-expiring first (so nothing lapses while a later one is used)."""
        out = []
        for r in Instruments(self.db).active(site):
            gec = r["kind"] == "gec"
            inst = Instrument(id=str(r["id"]), kind=r["kind"],
                              quantity=float(r["serial_last"] - r["serial_first"] + 1) if gec else r["quantity_mwh"],
                              unit="certificate" if gec else "MWh", valid_from=date.fromisoformat(r["valid_from"]),
                              valid_to=date.fromisoformat(r["valid_to"]), region=r["region"], evidence=r["evidence"])
            out.append(Scoped(inst, r["scope"], r["target"]))
        return out


def _where(row: sqlite3.Row, site: str) -> str:
    return f"entry {row['id']}" if row["site"] == site else "another site's entry"
