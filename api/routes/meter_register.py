"""The meter register (ISO 50001 7.1.4): per meter its serial, make and model, accuracy class, CT/PT ratios,
installation, last calibration, due date and certificate (a file kept with its SHA-256, or a reference), with its
calibration state. Viewers read it, admins keep the entries, engineers enter calibrations; every change is a new
version with its audit row. An overdue calibration raises an alert (api.records_watch) and marks the meter's
energy as uncertain in balances and reports (api.meter_register) until a new certificate is entered."""

from __future__ import annotations

import base64
import binascii
from datetime import date, datetime
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Body, Depends, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from api.deps import Admin, DbDep, Engineer, NowDep, SettingsDep, SiteQuery, Viewer, site_of
from api.errors import Invalid
from api.meter_register import CertificateFile, RegisterBook, overdue_at
from api.settings import Settings
from records.meter_register import RegisterEntry, StoredEntry

router = APIRouter(prefix="/v1", tags=["meter register"])

MeterId = Annotated[str, Path(max_length=128)]
DUE_SOON_DAYS = 30
EXAMPLE = {"serial": "PM5560-2231-0042", "make": "Schneider Electric", "model": "PM5560", "accuracy_class": "0.5S",
           "ct_primary_a": 400, "ct_secondary_a": 5, "installed_on": "2024-05-01", "last_calibrated_on": "2025-06-01",
           "calibration_due_on": "2026-06-01", "certificate": {"reference": "CAL-2025-0612", "issuer": "NIM lab"}}


def get_register(db: DbDep) -> RegisterBook:
    return RegisterBook(db)


RegisterDep = Annotated[RegisterBook, Depends(get_register)]


class EntryOut(BaseModel):
    meter: str
    version: int
    active: bool
    created_at: str
    created_by: str
    calibrated: bool = Field(description="this version entered a new certificate")
    entry: RegisterEntry
    ct_ratio: float | None = Field(description="primary / secondary A")
    pt_ratio: float | None = Field(description="primary / secondary V")
    calibration_state: Literal["ok", "due_soon", "overdue", "unknown"] = Field(
        description=f"overdue from the day after the due date; due_soon within {DUE_SOON_DAYS} days; unknown "
        "without a due date")
    days_to_due: int | None = Field(description="days from today (site time) to the due date; negative: overdue")


class EntryDetail(EntryOut):
    versions: list[EntryOut]


class FileIn(BaseModel):
    filename: str = Field(min_length=1, max_length=200)
    content_type: str = Field(default="application/pdf", max_length=100)
    content_base64: str = Field(min_length=1, description="the certificate's bytes, base64")


class CalibrationIn(BaseModel):
    calibrated_on: date
    due_on: date
    reference: str | None = Field(default=None, max_length=500, description="the certificate's number or place")
    issuer: str | None = Field(default=None, max_length=200)
    file: FileIn | None = Field(default=None, description="the certificate itself (kept with its SHA-256)")


def _out(e: StoredEntry, settings: Settings, now: datetime) -> EntryOut:
    tz = settings.plant.site.timezone
    due = e.entry.calibration_due_on
    today = now.astimezone(ZoneInfo(tz)).date()
    days = (due - today).days if due is not None else None
    state: Literal["ok", "due_soon", "overdue", "unknown"] = (
        "unknown" if days is None else "overdue" if overdue_at(e, now, tz)
        else "due_soon" if days <= DUE_SOON_DAYS else "ok")
    return EntryOut(meter=e.meter, version=e.version, active=e.active, created_at=e.created_at,
                    created_by=e.created_by, calibrated=e.calibrated, entry=e.entry, ct_ratio=e.entry.ct_ratio,
                    pt_ratio=e.entry.pt_ratio, calibration_state=state, days_to_due=days)


def _meter(settings: Settings, meter: str) -> None:
    if meter not in {m.id for m in settings.plant.meters}:
        raise Invalid(("path", "meter"), f"no meter {meter!r} in this plant")


@router.get("/meter-register")
def list_register(settings: SettingsDep, register: RegisterDep, now: NowDep, key: Viewer, site: SiteQuery = None,
                  include_removed: Annotated[bool, Query(description="list removed meters too")] = False,
                  ) -> list[EntryOut]:
    """Every registered meter's newest entry with its calibration state."""
    site = site_of(key, settings, site)
    return [_out(e, settings, now) for e in register.current(site, include_removed)]


@router.get("/meter-register/{meter}", responses={404: {"description": "the meter is not in the register"}})
def show_entry(meter: MeterId, settings: SettingsDep, register: RegisterDep, now: NowDep, key: Viewer,
               site: SiteQuery = None) -> EntryDetail:
    site = site_of(key, settings, site)
    versions = register.versions(site, meter)
    return EntryDetail(**_out(versions[-1], settings, now).model_dump(),
                       versions=[_out(v, settings, now) for v in versions])


@router.put("/meter-register/{meter}")
def put_entry(meter: MeterId, body: Annotated[RegisterEntry, Body(openapi_examples={"pm": {"value": EXAMPLE}})],
              settings: SettingsDep, register: RegisterDep, now: NowDep, key: Admin,
              site: SiteQuery = None) -> EntryOut:
    """Register a meter or change its entry (a new version). A certificate given here must be a reference
    (files come with a calibration)."""
    site = site_of(key, settings, site)
    _meter(settings, meter)
    if body.certificate is not None and body.certificate.sha256 is not None and \
            register.repo.file(site, body.certificate.sha256) is None:
        raise Invalid(("body", "certificate", "sha256"), "no stored certificate file has this SHA-256")
    return _out(register.save(site, meter, body, key.name), settings, now)


@router.delete("/meter-register/{meter}", responses={404: {"description": "the meter is not in the register"}})
def remove_entry(meter: MeterId, settings: SettingsDep, register: RegisterDep, now: NowDep, key: Admin,
                 site: SiteQuery = None) -> EntryOut:
    """Take a meter out of the register (a new, inactive version; nothing is erased)."""
    site = site_of(key, settings, site)
    last = register.versions(site, meter)[-1]
    return _out(register.save(site, meter, last.entry, key.name, active=False), settings, now)


@router.post("/meter-register/{meter}/calibrations", status_code=201,
             responses={404: {"description": "the meter is not in the register"}})
def add_calibration(meter: MeterId, body: Annotated[CalibrationIn, Body()], settings: SettingsDep,
                    register: RegisterDep, now: NowDep, key: Engineer, site: SiteQuery = None) -> EntryOut:
    """Enter a calibration: its date, the next due date and the certificate (file and/or reference). It ends an
    overdue state: the alert resolves at the next check, energy from now on is no longer uncertain."""
    site = site_of(key, settings, site)
    if body.due_on < body.calibrated_on:
        raise Invalid(("body", "due_on"), "the next due date is before the calibration")
    file = None
    if body.file is not None:
        try:
            data = base64.b64decode(body.file.content_base64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise Invalid(("body", "file", "content_base64"), f"not base64: {exc}") from exc
        file = CertificateFile(body.file.filename, body.file.content_type, data)
    elif not body.reference:
        raise Invalid(("body",), "a calibration needs its certificate: a file or a reference")
    stored = register.calibrate(site, meter, body.calibrated_on, body.due_on, body.reference, body.issuer, key.name,
                                file)
    return _out(stored, settings, now)


@router.get("/meter-register/{meter}/certificates/{sha256}",
            responses={200: {"content": {"application/octet-stream": {}}}, 404: {"description": "no such file"}})
def get_certificate(meter: MeterId, sha256: Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")],
                    settings: SettingsDep, register: RegisterDep, key: Viewer, site: SiteQuery = None) -> Response:
    """A stored certificate's bytes (their SHA-256 is the path's)."""
    site = site_of(key, settings, site)
    f = register.certificate(site, sha256)
    return Response(f.data, media_type=f.content_type,
                    headers={"Content-Disposition": f'attachment; filename="{f.filename}"', "X-Sha256": f.sha256})
