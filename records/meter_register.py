"""The meter register (ISO 50001 7.1.4) in the API database: per meter its serial, make and model, accuracy class,
CT/PT ratios, installation and calibration (last, due, certificate), versioned (a change or a calibration is a
new version); certificates' files are kept once per site by their SHA-256."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import date
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, model_validator

from records.base import Repository, first


class Certificate(BaseModel):
    """A calibration certificate: a stored file (its SHA-256, name, type, size) or a reference to one kept
    elsewhere (a document number, a URL)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$", description="of the stored file")
    filename: str | None = Field(default=None, max_length=200)
    content_type: str | None = Field(default=None, max_length=100)
    size_bytes: int | None = Field(default=None, ge=0)
    reference: str | None = Field(default=None, max_length=500, description="where the certificate is kept")
    issuer: str | None = Field(default=None, max_length=200, description="the calibration laboratory")

    @model_validator(mode="after")
    def _something(self) -> Certificate:
        if self.sha256 is None and not self.reference:
            raise ValueError("a certificate is a stored file (sha256) or a reference")
        return self


class RegisterEntry(BaseModel):
    """One meter's entry as stored."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    serial: str = Field(min_length=1, max_length=100)
    make: str = Field(min_length=1, max_length=100)
    model: str = Field(min_length=1, max_length=100)
    accuracy_class: str = Field(min_length=1, max_length=20, description="e.g. 0.5S (IEC 62053-22), 1, 2")
    ct_primary_a: float | None = Field(default=None, gt=0, allow_inf_nan=False, description="CT ratio, primary A")
    ct_secondary_a: float | None = Field(default=None, gt=0, allow_inf_nan=False, description="CT ratio, "
                                         "secondary A")
    pt_primary_v: float | None = Field(default=None, gt=0, allow_inf_nan=False, description="PT ratio, primary V")
    pt_secondary_v: float | None = Field(default=None, gt=0, allow_inf_nan=False, description="PT ratio, "
                                         "secondary V")
    installed_on: date
    location: str | None = Field(default=None, max_length=200)
    last_calibrated_on: date | None = None
    calibration_due_on: date | None = Field(default=None, description="overdue from the next day on (site time)")
    certificate: Certificate | None = None
    note: str | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def _consistent(self) -> RegisterEntry:
        if (self.ct_primary_a is None) != (self.ct_secondary_a is None):
            raise ValueError("a CT ratio needs both ct_primary_a and ct_secondary_a")
        if (self.pt_primary_v is None) != (self.pt_secondary_v is None):
            raise ValueError("a PT ratio needs both pt_primary_v and pt_secondary_v")
        if self.last_calibrated_on and self.calibration_due_on and self.calibration_due_on < self.last_calibrated_on:
            raise ValueError("calibration_due_on is before last_calibrated_on")
        return self

    @property
    def ct_ratio(self) -> float | None:
        return self.ct_primary_a / self.ct_secondary_a if self.ct_primary_a and self.ct_secondary_a else None

    @property
    def pt_ratio(self) -> float | None:
        return self.pt_primary_v / self.pt_secondary_v if self.pt_primary_v and self.pt_secondary_v else None


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """One version of a meter's entry; `calibrated` when this version entered a new calibration."""

    meter: str
    version: int
    site: str
    entry: RegisterEntry
    active: bool
    calibrated: bool
    created_at: str
    created_by: str


@dataclass(frozen=True, slots=True)
class StoredFile:
    sha256: str
    meter: str
    filename: str
    content_type: str
    size_bytes: int
    data: bytes
    uploaded_at: str
    uploaded_by: str


def _entry(row: sqlite3.Row) -> StoredEntry:
    return StoredEntry(row["meter"], row["version"], row["site"], RegisterEntry.model_validate_json(row["spec"]),
                       bool(row["active"]), bool(row["calibrated"]), row["created_at"], row["created_by"])


CURRENT: Final = ("SELECT e.* FROM meter_register e JOIN (SELECT meter, MAX(version) v FROM meter_register "
                  "WHERE site = ? GROUP BY meter) last ON e.meter = last.meter AND e.version = last.v "
                  "WHERE e.site = ? ORDER BY e.meter")
VERSIONS: Final = "SELECT * FROM meter_register WHERE site = ? AND meter = ? ORDER BY version"
ALL: Final = "SELECT * FROM meter_register WHERE site = ? ORDER BY meter, version"
LATEST: Final = "SELECT MAX(version) v FROM meter_register WHERE site = ? AND meter = ?"
INSERT: Final = ("INSERT INTO meter_register (site, meter, version, spec, active, calibrated, created_at, created_by) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
FILE: Final = "SELECT * FROM meter_certificates WHERE site = ? AND sha256 = ?"
INSERT_FILE: Final = ("INSERT OR IGNORE INTO meter_certificates (site, sha256, meter, filename, content_type, "
                      "size_bytes, data, uploaded_at, uploaded_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")


class MeterRegister(Repository):
    def current(self, site: str) -> list[StoredEntry]:
        """The newest version of each meter's entry (removed ones included: `active` says)."""
        return [_entry(r) for r in self.db.query(CURRENT, (site, site))]

    def versions(self, site: str, meter: str) -> list[StoredEntry]:
        return [_entry(r) for r in self.db.query(VERSIONS, (site, meter))]

    def history(self, site: str) -> dict[str, list[StoredEntry]]:
        """Every version of every meter's entry, oldest first, by meter."""
        found: dict[str, list[StoredEntry]] = {}
        for r in self.db.query(ALL, (site,)):
            found.setdefault(r["meter"], []).append(_entry(r))
        return found

    def file(self, site: str, sha256: str) -> StoredFile | None:
        rows = self.db.query(FILE, (site, sha256))
        if not rows:
            return None
        r = rows[0]
        return StoredFile(r["sha256"], r["meter"], r["filename"], r["content_type"], r["size_bytes"],
                          bytes(r["data"]), r["uploaded_at"], r["uploaded_by"])

    @staticmethod
    def latest(conn: sqlite3.Connection, site: str, meter: str) -> int | None:
        row = first(conn, LATEST, (site, meter))
        return int(row["v"]) if row is not None and row["v"] is not None else None

    @staticmethod
    def add(conn: sqlite3.Connection, e: StoredEntry) -> None:
        conn.execute(INSERT, (e.site, e.meter, e.version, e.entry.model_dump_json(), int(e.active),
                              int(e.calibrated), e.created_at, e.created_by))

    @staticmethod
    def add_file(conn: sqlite3.Connection, site: str, f: StoredFile) -> None:
        """Keep a certificate's file (the same content twice is kept once)."""
        conn.execute(INSERT_FILE, (site, f.sha256, f.meter, f.filename, f.content_type, f.size_bytes, f.data,
                                   f.uploaded_at, f.uploaded_by))
