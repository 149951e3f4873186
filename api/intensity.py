"""Intensity (kg CO2e and kgce per unit of product) of the site, its areas and its lines, for a period or per
bucket: energy of the boundary's meters over the production its declared production counters counted
(ingest.store.variables.combine; calc.performance.intensity_series). No production: a null figure with the reason.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from calc.performance import intensity_series
from calc.plant import Plant
from ingest.store.base import VariableTotal
from ingest.store.variables import combine

Level = Literal["site", "area", "line"]
LEVELS: tuple[Level, ...] = ("site", "area", "line")


class IntensityOut(BaseModel):
    """kg CO2e and kgce per unit of product of one boundary (site, area or line) over a period or bucket."""

    level: Level
    name: str = Field(description="the site id, area or line")
    start: datetime | None = Field(default=None, description="the bucket's start (history); none for a period")
    product: str = Field(default="", description="what the production counters count")
    quantity: str = Field(description="the production counters' quantity, e.g. production")
    production: float = Field(description="units of product counted in the period")
    production_unit: str
    co2e_kg: float = Field(description="kg CO2e of the boundary's meters (location-based)")
    energy_kgce: float = Field(description="kgce of the boundary's meters")
    co2e_kg_per_unit: float | None = Field(description="kg CO2e per production_unit (null: see `refused`)")
    kgce_per_unit: float | None = Field(description="kgce per production_unit (null: see `refused`)")
    unit: str = Field(description="kg / <production unit>, of both per-unit figures")
    refused: str | None = Field(default=None, description="why there is no figure (no production in the period)")


@dataclass(frozen=True, slots=True)
class Group:
    """A boundary with declared production: its level, name and the counters' quantity and unit."""

    level: Level
    name: str
    quantity: str
    unit: str
    product: str


def production_groups(plant: Plant, area: str | None = None, meter: str | None = None) -> list[Group]:
    """Boundaries of the request that declare production: the site, areas and lines; with `area` only that
    area (a line may span areas, so its energy is not the area's); with `meter` none (a meter has no output)."""
    seen: dict[tuple[str, str, str, str], Group] = {}
    if meter is not None:
        return []
    for v in plant.variables:
        if v.kind != "production":
            continue
        names: list[tuple[Level, str]] = [("site", plant.site.id), ("area", v.area)]
        if v.line:
            names.append(("line", v.line))
        for level, name in names:
            if area is not None and (level != "area" or name != area):
                continue
            key = (level, name, v.quantity, v.unit)
            if key not in seen:
                seen[key] = Group(level, name, v.quantity, v.unit, v.product)
            elif v.product and v.product not in seen[key].product.split("; "):
                old = seen[key]
                seen[key] = Group(level, name, v.quantity, v.unit, f"{old.product}; {v.product}".strip("; "))
    return list(seen.values())


def meter_in(plant: Plant, meter_id: str, level: Level, name: str) -> bool:
    m = plant.meters_by_id.get(meter_id)
    if m is None:
        return False
    return level == "site" or (level == "area" and m.area == name) or (level == "line" and m.line == name)


Key = tuple[datetime | None, str]  # (bucket start or None, meter)


def intensities(plant: Plant, groups: Iterable[Group], energy: Mapping[Key, tuple[float, float]],
                production: Iterable[VariableTotal]) -> list[IntensityOut]:
    """Per group and bucket (None: the whole period): `energy` maps (start, meter) -> (kg CO2e, kgce);
    `production` is store.variable_totals or variable_series rows. Buckets with energy or production appear."""
    prod = [p for p in production if p.kind == "production" and p.total is not None]
    made: dict[tuple[datetime | None, str, str, str, str], float] = defaultdict(float)
    for level in LEVELS:
        for row in combine(prod, level):
            if row.variable:
                made[(row.start, level, row.variable, row.quantity, row.unit)] += row.total or 0.0
    out: list[IntensityOut] = []
    for g in groups:
        by_start: dict[datetime | None, list[float]] = defaultdict(lambda: [0.0, 0.0])
        for (start, meter), (co2e, kgce) in energy.items():
            if meter_in(plant, meter, g.level, g.name):
                v = by_start[start]
                v[0], v[1] = v[0] + co2e, v[1] + kgce
        for key in made:
            if key[1:] == (g.level, g.name, g.quantity, g.unit):
                by_start.setdefault(key[0], [0.0, 0.0])
        if not by_start:
            by_start[None] = [0.0, 0.0]
        starts = sorted(by_start, key=lambda s: s or datetime.min)
        p = np.array([made.get((s, g.level, g.name, g.quantity, g.unit), 0.0) for s in starts])
        c = np.array([by_start[s][0] for s in starts])
        k = np.array([by_start[s][1] for s in starts])
        series = intensity_series(c, k, p, g.unit)
        for i, s in enumerate(starts):
            refused = series.refused[i]
            out.append(IntensityOut(
                level=g.level, name=g.name, start=s, product=g.product, quantity=g.quantity, production=float(p[i]),
                production_unit=g.unit, co2e_kg=float(c[i]), energy_kgce=float(k[i]),
                co2e_kg_per_unit=None if refused else float(series.co2e_per_unit[i]),
                kgce_per_unit=None if refused else float(series.kgce_per_unit[i]), unit=series.unit,
                refused=refused.split(": ", 1)[1] if refused else None))
    return sorted(out, key=lambda r: (r.start or datetime.min, LEVELS.index(r.level), r.name, r.quantity))
