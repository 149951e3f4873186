"""GET /v1/history: energy and CO2e series (1 min, 15 min, 1 h, 1 day buckets) per site, area or meter, as JSON
or CSV; each bucket says how much of it is estimated and how much energy is held (open) in it."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from api.activity_counts import manual_buckets
from api.deps import DbDep, HeldDep, HistoryDep, NowDep, SettingsDep, SiteQuery, Viewer, invalid, site_of
from api.held import open_held_by_bucket
from api.intensity import IntensityOut, intensities, production_groups
from api.routes.balance import FromQuery, PeriodQuery, ToQuery, check_boundary, period_of
from api.standard_coal import coal_book
from api.virtual import is_virtual, virtual_buckets
from ingest.store.base import SeriesError
from ingest.store.buckets import STEPS_S, bucket_start

router = APIRouter(prefix="/v1", tags=["history"])

MAX_BUCKETS = 20_000


class Bucket(BaseModel):
    start: datetime
    boundary: str
    energy: float
    energy_unit: str
    co2e_kg: float
    points: int
    estimated_energy: float = Field(default=0.0, description="of `energy`, what is estimated (a gap's energy "
                                    "spread over the gap)")
    estimated_co2e_kg: float = Field(default=0.0, description="of `co2e_kg`, what is estimated")
    held_energy: float = Field(default=0.0, description="energy measured in the bucket but held (open records, "
                               "not in `energy`)")
    held_co2e_kg: float = Field(default=0.0, description="kg CO2e of the held energy (not in `co2e_kg`)")
    held_records: int = Field(default=0, description="open held records timed in the bucket")
    energy_kgce: float = Field(default=0.0, description="`energy` in kg of standard coal equivalent (GB/T 2589; "
                               "meters without a coefficient add nothing, see HistoryOut.kgce_refused)")
    kgce_versions: list[str] = Field(default_factory=list, description="the coefficients behind energy_kgce")
    factor_energy: float = Field(default=0.0, description="`energy` in the unit its emission factor applies to "
                                 "(natural gas by volume: Nm^3)")
    factor_energy_unit: str = Field(default="", description="unit of factor_energy")
    manual_co2e_kg: float = Field(default=0.0, description="of `co2e_kg`, what manual activity entries add "
                                  "(spread evenly over the days they cover)")
    completeness: float | None = Field(default=None, description="virtual meters: the least complete input in "
                                       "the bucket (0..1)")
    negative: bool = Field(default=False, description="virtual meters: energy below zero (submeters above the "
                           "main)")

    @property
    def row(self) -> list[object]:
        return [self.start.isoformat(), self.boundary, repr(self.energy), self.energy_unit, repr(self.co2e_kg),
                self.points, repr(self.estimated_energy), repr(self.estimated_co2e_kg), repr(self.held_energy),
                repr(self.held_co2e_kg), self.held_records, repr(self.energy_kgce), " ".join(self.kgce_versions),
                repr(self.factor_energy), self.factor_energy_unit, repr(self.manual_co2e_kg)]


CSV_HEADER = ["start", "boundary", "energy", "energy_unit", "co2e_kg", "points", "estimated_energy",
              "estimated_co2e_kg", "held_energy", "held_co2e_kg", "held_records", "energy_kgce", "kgce_versions",
              "factor_energy", "factor_energy_unit", "manual_co2e_kg"]


class HistoryOut(BaseModel):
    site: str
    step: str
    group: str
    start: datetime
    end: datetime
    buckets: list[Bucket]
    kgce_method: str = Field(default="equivalent", description="equivalent (calorific) or equal value")
    kgce_refused: list[str] = Field(default_factory=list, description="meters whose energy has no kgce, and why")
    intensity: list[IntensityOut] = Field(default_factory=list, description="per bucket, kg CO2e and kgce per "
                                          "unit of product of each series (group site or area) that declares "
                                          "production counters; a bucket without production: null, with why")


@router.get("/history", response_model=HistoryOut,
            responses={200: {"content": {"text/csv": {}}}, 404: {"description": "unknown boundary"},
                                   422: {"description": "bad period, or too many buckets"}})
def history(settings: SettingsDep, reader: HistoryDep, held: HeldDep, now: NowDep, key: Viewer, db: DbDep,
            site: SiteQuery = None,
            period: PeriodQuery = None, start: FromQuery = None, end: ToQuery = None,
            step: Annotated[Literal["1m", "15m", "1h", "1d"], Query(description="bucket length")] = "1h",
            group: Annotated[Literal["site", "area", "meter"], Query(description="one series per")] = "site",
            area: Annotated[str | None, Query(description="only this area", max_length=128)] = None,
            meter: Annotated[str | None, Query(description="only this meter", max_length=128)] = None,
            format: Annotated[Literal["json", "csv"], Query(description="json or csv")] = "json",
            ) -> HistoryOut | Response:
    """Sums of energy (in its unit) and kg CO2e per bucket, with what of them is estimated, and the energy held
    (measured, not counted) in the bucket; buckets without data are left out."""
    site = site_of(key, settings, site)
    check_boundary(settings, area, meter)
    bounds = period_of(settings, now, period, start, end)
    if (bounds.end - bounds.start).total_seconds() / STEPS_S[step] > MAX_BUCKETS:
        raise invalid(("query", "step"),
                      f"more than {MAX_BUCKETS} buckets of {step}: use a coarser step or a shorter range")
    if is_virtual(settings, meter):   # a virtual meter's series from its inputs' (api.virtual)
        assert meter is not None
        try:
            rows = virtual_buckets(settings, reader, site, bounds.start, bounds.end, now, step, meter)
        except SeriesError as exc:
            raise invalid(("query", "step"), str(exc)) from exc
        virtual = [Bucket(**r) for r in rows]
        if format == "csv":
            return _csv(virtual, site, step)
        return HistoryOut(site=site, step=step, group="meter", start=bounds.start, end=bounds.end, buckets=virtual)
    try:
        points = reader.series(site, bounds.start, bounds.end, step, settings.plant.site.timezone)
    except SeriesError as exc:
        raise invalid(("query", "step"), str(exc)) from exc
    # (bucket, boundary, unit) -> energy, co2e, points, estimated energy, estimated co2e, held energy, held co2e,
    # held records, kgce, factor energy
    acc: dict[tuple[datetime, str, str], list[float]] = defaultdict(lambda: [0.0] * 11)
    versions: dict[tuple[datetime, str, str], set[str]] = defaultdict(set)
    factor_units: dict[tuple[datetime, str, str], str] = {}
    book = coal_book(settings, now.date())
    energy: dict[tuple[datetime | None, str], tuple[float, float]] = defaultdict(lambda: (0.0, 0.0))
    refused: set[str] = set()

    def wanted(a: str, m: str) -> bool:
        return (area is None or a == area) and (meter is None or m == meter)

    def name_of(a: str, m: str) -> str:
        return site if group == "site" else (a if group == "area" else m)

    for p in points:
        if wanted(p.area, p.meter):
            bk = (p.start, name_of(p.area, p.meter), p.energy_unit)
            v = acc[bk]
            v[0], v[1], v[2] = v[0] + p.energy, v[1] + p.co2e_kg, v[2] + p.points
            v[3], v[4] = v[3] + p.estimated_energy, v[4] + p.estimated_co2e_kg
            coal = book.of(p.meter, p.energy_unit)
            kgce = p.energy * coal.kgce_per_unit if coal.kgce_per_unit is not None else 0.0
            if coal.refused:
                refused.add(coal.refused)
            elif coal.version:
                versions[bk].add(coal.version)
            fe, factor_units[bk] = book.factor_energy(p.meter, p.energy, p.energy_unit)
            v[8], v[9] = v[8] + kgce, v[9] + fe
            co2e, k = energy[(p.start, p.meter)]
            energy[(p.start, p.meter)] = (co2e + p.co2e_kg, k + kgce)
    tz = settings.plant.site.timezone
    for start_, row in manual_buckets(db, site, bounds.start, bounds.end, step, tz) if meter is None else []:
        if area is None or row.area == area:
            v = acc[(start_, name_of(row.area, f"manual:{row.carrier}"), row.energy_unit)]
            v[0], v[1], v[10] = v[0] + row.energy, v[1] + row.co2e_kg, v[10] + row.co2e_kg
            v[9] += row.energy
    held_by = open_held_by_bucket(held, site, bounds.start, bounds.end,
                                  lambda ts: bucket_start(ts, STEPS_S[step], tz))
    for (start_, m), h in held_by.items():
        plant_meter = settings.plant.meters_by_id.get(m)
        a = plant_meter.area if plant_meter is not None else ""
        if wanted(a, m):
            v = acc[(start_, name_of(a, m), h.energy_unit)]
            v[5], v[6], v[7] = v[5] + h.energy, v[6] + h.co2e_kg, v[7] + h.records
    buckets = [Bucket(start=s, boundary=b, energy_unit=u, energy=v[0], co2e_kg=v[1], points=int(v[2]),
                      estimated_energy=v[3], estimated_co2e_kg=v[4], held_energy=v[5], held_co2e_kg=v[6],
                      held_records=int(v[7]), energy_kgce=v[8], kgce_versions=sorted(versions[(s, b, u)]),
                      factor_energy=v[9], factor_energy_unit=factor_units.get((s, b, u), u), manual_co2e_kg=v[10])
               for (s, b, u), v in sorted(acc.items())]
    if format == "csv":
        return _csv(buckets, site, step)
    groups = [g for g in production_groups(settings.plant, area, meter) if g.level == group]
    per_unit = intensities(settings.plant, groups, energy, reader.variable_series(
        site, bounds.start, bounds.end, step, tz)) if groups else []
    return HistoryOut(site=site, step=step, group=group, start=bounds.start, end=bounds.end, buckets=buckets,
                      kgce_method=book.method.value, kgce_refused=sorted(refused), intensity=per_unit)


def _csv(buckets: list[Bucket], site: str, step: str) -> Response:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    for b in buckets:
        writer.writerow(b.row)
    return Response(out.getvalue(), media_type="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="history-{site}-{step}.csv"'})
