"""GET /v1/meters: each meter with its last sample time, quality, status, live power, data completeness and
estimated energy over a period, and its open held energy; GET /v1/meters/{meter} for one."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.completeness import expected_points, first_readings
from api.deps import EngineDep, HeldDep, NowDep, SettingsDep, SiteQuery, StoreDep, Viewer, site_of
from api.errors import NotFound
from api.live_rates import live_rates
from api.routes.balance import FromQuery, PeriodQuery, ToQuery, period_of

router = APIRouter(prefix="/v1", tags=["meters"])

Status = Literal["ok", "stale", "never_seen"]


class MeterOut(BaseModel):
    meter: str
    site: str
    area: str
    line: str | None
    carrier: str
    last_sample_ts: datetime | None
    last_quality: str | None
    samples: int
    status: Status
    power_kw: float | None = Field(default=None, description="live active power (from the reading stream)")
    co2e_rate_kg_per_h: float | None = Field(default=None, description="live kg CO2e/h (calc.rate: latest flow × "
                                             "stored CO2e per unit of energy), any carrier")
    period_points: int = Field(default=0, description="counter samples stored in the period")
    expected_points: int | None = Field(default=None, description="counter samples expected at the meter's interval")
    completeness: float | None = Field(default=None, description="period_points / expected_points (0..1)")
    period_energy: float = Field(default=0.0, description="counted energy in the period, in energy_unit")
    energy_unit: str | None = Field(default=None, description="the meter's energy unit")
    estimated_energy: float = Field(default=0.0, description="of period_energy, what is estimated (gaps)")
    held_energy: float = Field(default=0.0, description="open held energy of the meter, any time (not counted; "
                               "see /v1/held), in energy_unit")
    held_co2e_kg: float = Field(default=0.0, description="kg CO2e of the open held energy")
    held_records: int = Field(default=0, description="open held records of the meter")


class MetersOut(BaseModel):
    site: str
    period_start: datetime
    period_end: datetime
    meters: list[MeterOut]


def _meters(settings: SettingsDep, store: StoreDep, held: HeldDep, engine: EngineDep, now: datetime, site: str,
            start: datetime, end: datetime) -> list[MeterOut]:
    seen = {s.meter: s for s in store.meter_summaries(site)}
    totals = {t.meter: t for t in store.totals(site, start, end)}
    holds = {h.meter: h for h in held.held_totals(site)}
    rates = live_rates(settings, store, site, now)
    firsts = first_readings(settings, store, site, start, end, now)   # meters that began in the period
    out = []
    for meter in settings.plant.meters:
        summary = seen.get(meter.id)
        last = summary.last_ts if summary else None
        status: Status = "never_seen"
        if last is not None:
            status = "ok" if (now - last).total_seconds() <= settings.api.stale_after_s else "stale"
        live = engine.live.meters.get(meter.id)
        # a meter with no reading yet has no expected count (its status says never seen)
        expected = None if meter.id in firsts and firsts[meter.id] is None else \
            expected_points(settings, meter.id, start, end, now, firsts.get(meter.id))
        t, h = totals.get(meter.id), holds.get(meter.id)
        got = t.points if t else 0
        out.append(MeterOut(meter=meter.id, site=site, area=meter.area, line=meter.line, carrier=meter.carrier,
                            last_sample_ts=last, last_quality=summary.last_quality if summary else None,
                            samples=summary.samples if summary else 0, status=status,
                            power_kw=live.power_kw if live else None,
                            co2e_rate_kg_per_h=rates[meter.id].rate_kg_per_h if meter.id in rates else None,
                            period_points=got, expected_points=expected,
                            completeness=min(1.0, got / expected) if expected else None,
                            period_energy=t.energy if t else 0.0,
                            energy_unit=t.energy_unit if t else (h.energy_unit if h else None),
                            estimated_energy=t.estimated_energy if t else 0.0,
                            held_energy=h.energy if h else 0.0, held_co2e_kg=h.co2e_kg if h else 0.0,
                            held_records=h.records if h else 0))
    return out


@router.get("/meters")
def list_meters(settings: SettingsDep, store: StoreDep, held: HeldDep, engine: EngineDep, now: NowDep, key: Viewer,
                site: SiteQuery = None, period: PeriodQuery = None, start: FromQuery = None, end: ToQuery = None,
                ) -> MetersOut:
    """Every meter of the plant; completeness is counted over the period (default today)."""
    site = site_of(key, settings, site)
    bounds = period_of(settings, now, period, start, end)
    return MetersOut(site=site, period_start=bounds.start, period_end=bounds.end,
                     meters=_meters(settings, store, held, engine, now, site, bounds.start, bounds.end))


@router.get("/meters/{meter}", responses={404: {"description": "no such meter"}})
def one_meter(meter: str, settings: SettingsDep, store: StoreDep, held: HeldDep, engine: EngineDep, now: NowDep,
              key: Viewer, site: SiteQuery = None, period: PeriodQuery = None, start: FromQuery = None,
              end: ToQuery = None) -> MeterOut:
    site = site_of(key, settings, site)
    if meter not in settings.plant.meters_by_id:
        raise NotFound(f"no meter {meter!r}")
    bounds = period_of(settings, now, period, start, end)
    return next(m for m in _meters(settings, store, held, engine, now, site, bounds.start, bounds.end)
                if m.meter == meter)
