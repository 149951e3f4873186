"""Held energy: measured but not counted (a confirmed implausible jump, a delta above the meter's max power, a sample
whose time cannot be placed). Viewers list it; an engineer releases it (it then counts, at its own time or at a
`counted_ts`, with the plant's factor for that time) or rejects it, with a note; each decision is audited and final.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, Query
from pydantic import AwareDatetime, BaseModel, Field, StringConstraints

from api.deps import (
    EngineDep,
    Engineer,
    EntryId,
    HeldDep,
    HeldDeskDep,
    NowDep,
    SettingsDep,
    SiteQuery,
    Viewer,
    site_of,
)
from api.errors import NotFound
from api.held import find_held
from ingest.store.base import HeldRecord, HeldStatus

router = APIRouter(prefix="/v1", tags=["held"])


Note = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


class HeldOut(BaseModel):
    id: int
    site: str
    meter: str
    area: str
    carrier: str
    ts: datetime = Field(description="the sample's time (may lie outside the plant's life: then release it at a "
                         "counted_ts)")
    quantity: str
    delta: float = Field(description="the counter's advance as the sample said, in `unit`")
    unit: str
    interval_s: float | None
    energy: float = Field(description="held energy in `energy_unit`")
    energy_unit: str
    co2e_kg: float | None = Field(description="kg CO2e with the factor valid at `ts` (None: none applies there); "
                                  "for a released record, what was counted")
    factor_id: str | None
    factor_version: str | None
    reason: str = Field(description="why it was held")
    status: HeldStatus
    received: datetime
    seq: int
    agent: str | None
    decided: datetime | None
    decided_by: str | None
    note: str | None
    counted_ts: datetime | None = Field(description="released: where the energy counts")


class HeldPage(BaseModel):
    site: str
    records: list[HeldOut] = Field(description="newest first")


class HeldTotalOut(BaseModel):
    meter: str
    area: str
    carrier: str
    energy: float
    energy_unit: str
    co2e_kg: float = Field(description="kg CO2e of the records that have one")
    records: int


class HeldTotalsOut(BaseModel):
    site: str
    meters: list[HeldTotalOut] = Field(description="open held energy per meter (any time)")
    co2e_kg: float = Field(description="open held kg CO2e of the site")
    records: int


class ReleaseIn(BaseModel):
    note: Note = Field(description="why the energy is real (required, audited)",
                       examples=["Meter P-3 was swapped at 10:40; the jump is the new meter's start reading"])
    counted_ts: AwareDatetime | None = Field(
        default=None, description="where the energy counts, when the record's own time cannot be placed (before "
        "the plant's start, in the future); its CO2e is then computed with the plant's factor valid at this time")


class RejectIn(BaseModel):
    note: Note = Field(description="why the energy is not real (required, audited)",
                       examples=["Gateway returned garbage registers during the firmware update"])


def held_out(rec: HeldRecord) -> HeldOut:
    return HeldOut(id=rec.id, site=rec.site, meter=rec.meter, area=rec.area, carrier=rec.carrier, ts=rec.ts,
                   quantity=rec.quantity, delta=rec.delta, unit=rec.unit, interval_s=rec.interval_s,
                   energy=rec.energy, energy_unit=rec.energy_unit, co2e_kg=rec.co2e_kg, factor_id=rec.factor_id,
                   factor_version=rec.factor_version, reason=rec.reason, status=rec.status, received=rec.received,
                   seq=rec.seq, agent=rec.agent, decided=rec.decided, decided_by=rec.decided_by, note=rec.note,
                   counted_ts=rec.counted_ts)


@router.get("/held", responses={404: {"description": "unknown site or meter"}})
def list_held(settings: SettingsDep, reader: HeldDep, key: Viewer, site: SiteQuery = None,
              status: Annotated[HeldStatus | None, Query(description="only records in this state")] = None,
              meter: Annotated[str | None, Query(description="only this meter", max_length=128)] = None,
              limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> HeldPage:
    """Held records, newest first."""
    site = site_of(key, settings, site)
    if meter is not None and meter not in settings.plant.meters_by_id:
        raise NotFound(f"no meter {meter!r}")
    return HeldPage(site=site, records=[held_out(r) for r in reader.held(site, status, meter, limit)])


@router.get("/held/totals")
def held_totals(settings: SettingsDep, reader: HeldDep, key: Viewer, site: SiteQuery = None) -> HeldTotalsOut:
    """Open held energy and CO2e per meter, whatever the records' times."""
    site = site_of(key, settings, site)
    totals = sorted(reader.held_totals(site), key=lambda t: t.meter)
    return HeldTotalsOut(site=site, meters=[HeldTotalOut(meter=t.meter, area=t.area, carrier=t.carrier,
                                                         energy=t.energy, energy_unit=t.energy_unit,
                                                         co2e_kg=t.co2e_kg, records=t.records) for t in totals],
                         co2e_kg=sum(t.co2e_kg for t in totals), records=sum(t.records for t in totals))


@router.get("/held/{held_id}", responses={404: {"description": "no such record on this site"}})
def show_held(held_id: EntryId, settings: SettingsDep, reader: HeldDep, key: Viewer,
              site: SiteQuery = None) -> HeldOut:
    site = site_of(key, settings, site)
    return held_out(find_held(reader, site, held_id))


def _decide(desk: HeldDeskDep, engine: EngineDep, site: str, held_id: int, status: HeldStatus, actor: str,
            note: str, now: datetime, counted_ts: datetime | None) -> HeldOut:
    done = desk.decide(site, held_id, status, actor, note, now, counted_ts)
    if done.status is HeldStatus.RELEASED and done.co2e_kg is not None:
        engine.released(done.meter, done.counted_ts or done.ts, done.co2e_kg)
    return held_out(done)


DECIDE_RESPONSES: dict[int | str, dict[str, str]] = {
    404: {"description": "no such record on this site"},
    409: {"description": "the record was already released or rejected"}}


@router.post("/held/{held_id}/release",
             responses={**DECIDE_RESPONSES, 422: {"description": "no note, or a time where it cannot count"}})
def release(held_id: EntryId, body: Annotated[ReleaseIn, Body()], settings: SettingsDep, desk: HeldDeskDep,
            engine: EngineDep, now: NowDep, key: Engineer, site: SiteQuery = None) -> HeldOut:
    """Count held energy: at its own time, or at `counted_ts` when its own cannot be placed. Audited; final."""
    site = site_of(key, settings, site)
    return _decide(desk, engine, site, held_id, HeldStatus.RELEASED, key.name, body.note, now, body.counted_ts)


@router.post("/held/{held_id}/reject", responses={**DECIDE_RESPONSES, 422: {"description": "no note"}})
def reject(held_id: EntryId, body: Annotated[RejectIn, Body()], settings: SettingsDep, desk: HeldDeskDep,
           engine: EngineDep, now: NowDep, key: Engineer, site: SiteQuery = None) -> HeldOut:
    """Never count held energy (it stays stored, rejected, with the note). Audited; final."""
    site = site_of(key, settings, site)
    return _decide(desk, engine, site, held_id, HeldStatus.REJECTED, key.name, body.note, now, None)
