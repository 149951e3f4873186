"""Balances for a boundary (site, area, meter) and a period: emissions by scope and carrier, offsets from a
ledger, net balance = emissions − offsets, the allowance check and intensity per unit of production.

All amounts are kg CO2e. Scope 2 is reported both ways (GHG Protocol dual reporting): the location total
uses scope2_location rows, the market total uses a carrier's scope2_market rows when it has any and its
location rows otherwise (heat, markets without instruments).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from calc.rules import Projection, burn_rate_kg_per_h, project
from calc.units import conversion_factor

SCOPES = ("scope1", "scope2_location", "scope2_market")


@dataclass(frozen=True, slots=True)
class Boundary:
    """Site, optionally narrowed to an area, optionally to one meter."""

    site: str
    area: str | None = None
    meter: str | None = None

    def contains(self, site: str, area: str | None, meter: str | None) -> bool:
        return (site == self.site and (self.area is None or area == self.area)
                and (self.meter is None or meter == self.meter))


class TimeRange(BaseModel):
    """The instants [start, end) a balance or an allowance covers (aware datetimes; not a named period)."""

    model_config = ConfigDict(frozen=True)

    start: AwareDatetime
    end: AwareDatetime

    @model_validator(mode="after")
    def _ordered(self) -> TimeRange:
        if self.end <= self.start:
            raise ValueError("period end must be after its start")
        return self

    def contains(self, ts: datetime) -> bool:
        return self.start <= ts < self.end


@dataclass(frozen=True, slots=True)
class EmissionRow:
    """Emissions of one meter over (part of) the period, as summed from stored points."""

    site: str
    area: str
    meter: str
    carrier: str
    scope: str
    co2e_kg: float


class OffsetKind(StrEnum):
    CCER = "ccer"          # China Certified Emission Reduction, 1 unit = 1 t CO2e
    SINK = "sink"          # carbon sinks (forestry)
    OTHER = "other"        # other proven means


class OffsetEntry(BaseModel):
    """One ledger entry: dated, typed, a CO2e mass with its unit, and the evidence behind it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1)
    date: AwareDatetime
    kind: OffsetKind
    quantity: float = Field(gt=0, allow_inf_nan=False)
    unit: str = "t"                     # mass of CO2e
    vintage: int | None = Field(default=None, ge=1990, le=2100)
    evidence: str = Field(min_length=1)
    site: str
    area: str | None = None
    meter: str | None = None

    @property
    def quantity_kg(self) -> float:
        return self.quantity * conversion_factor(self.unit, "kg")


class Intensity(BaseModel):
    model_config = ConfigDict(frozen=True)

    value: float
    unit: str           # "kg / <production unit>" (CO2e per unit of product)
    production: float
    production_unit: str


class Balance(BaseModel):
    model_config = ConfigDict(frozen=True)

    site: str
    area: str | None
    meter: str | None
    start: datetime
    end: datetime
    by_scope_kg: dict[str, float]
    by_carrier_kg: dict[str, dict[str, float]]   # carrier -> scope -> kg
    emissions_location_kg: float                  # scope 1 + scope 2 location-based
    emissions_market_kg: float                    # scope 1 + scope 2 market-based
    offsets_kg: float
    offsets_by_kind_kg: dict[str, float]
    offset_ids: tuple[str, ...]
    net_location_kg: float
    net_market_kg: float
    intensity: Intensity | None = None


def intensity(co2e_kg: float, production: float, production_unit: str) -> Intensity:
    """CO2e per unit of product (production from a production counter's deltas over the same period)."""
    if production <= 0:
        raise ValueError(f"production must be positive to compute an intensity, got {production} {production_unit}")
    conversion_factor(production_unit, production_unit)  # the unit must be one pint knows
    return Intensity(value=co2e_kg / production, unit=f"kg / {production_unit}", production=production,
                     production_unit=production_unit)


def balance(rows: Iterable[EmissionRow], offsets: Iterable[OffsetEntry], boundary: Boundary, period: TimeRange,
            production: tuple[float, str] | None = None) -> Balance:
    """Emissions, offsets and net balance of a boundary over a period (rows are already summed per period)."""
    by_scope: dict[str, float] = dict.fromkeys(SCOPES, 0.0)
    by_carrier: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys(SCOPES, 0.0))
    for row in rows:
        if not boundary.contains(row.site, row.area, row.meter):
            continue
        if row.scope not in by_scope:
            raise ValueError(f"row of meter {row.meter!r}: unknown scope {row.scope!r}; use one of {SCOPES}")
        by_scope[row.scope] += row.co2e_kg
        by_carrier[row.carrier][row.scope] += row.co2e_kg
    market_s2 = sum(s["scope2_market"] if s["scope2_market"] else s["scope2_location"] for s in by_carrier.values())
    location = by_scope["scope1"] + by_scope["scope2_location"]
    market = by_scope["scope1"] + market_s2
    taken = [o for o in offsets if period.contains(o.date) and boundary.contains(o.site, o.area, o.meter)]
    by_kind: dict[str, float] = defaultdict(float)
    for entry in taken:
        by_kind[entry.kind.value] += entry.quantity_kg
    offsets_kg = sum(by_kind.values())
    return Balance(
        site=boundary.site, area=boundary.area, meter=boundary.meter, start=period.start, end=period.end,
        by_scope_kg=by_scope, by_carrier_kg={k: dict(v) for k, v in by_carrier.items()},
        emissions_location_kg=location, emissions_market_kg=market, offsets_kg=offsets_kg,
        offsets_by_kind_kg=dict(by_kind), offset_ids=tuple(o.id for o in taken),
        net_location_kg=location - offsets_kg, net_market_kg=market - offsets_kg,
        intensity=intensity(location, *production) if production else None,
    )


class AllowanceCheck(BaseModel):
    """Emissions so far against the period's allowance, projected from the recent burn rate."""

    model_config = ConfigDict(frozen=True)

    projection: Projection
    ccer_usable_kg: float      # CCER that may count against the allowance (capped share of it)
    ccer_cap_fraction: float

    @property
    def projected_over_kg(self) -> float:
        """How far the projection at period end exceeds the allowance plus usable CCER (≤ 0: within)."""
        return self.projection.projected_kg - self.projection.allowance_kg - self.ccer_usable_kg


def allowance_check(used_kg: float, allowance_kg: float, series: Sequence[tuple[datetime, float]],
                    now: datetime, period: TimeRange, window: timedelta = timedelta(days=7),
                    ccer_kg: float = 0.0, ccer_cap_fraction: float = 0.05) -> AllowanceCheck:
    """Emissions so far, projection to the period's end from the recent burn rate, remaining allowance and
    run-out time (via calc.rules), and the CCER that may offset it (national ETS: at most 5 % of the
    allowance, factor cn_ccer_offset_cap). `now` is given by the caller: calc reads no clock."""
    rate = burn_rate_kg_per_h(series, now, window, since=period.start)
    projection = project(used_kg, allowance_kg, rate, now, period.end)
    usable = min(max(ccer_kg, 0.0), ccer_cap_fraction * allowance_kg)
    return AllowanceCheck(projection=projection, ccer_usable_kg=usable, ccer_cap_fraction=ccer_cap_fraction)
