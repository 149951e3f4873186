"""Generation and export (on-site solar) in a balance: import, export and generation of electricity over the
period, net import, self-consumption and their effect on location- and market-based scope 2 (calc.generation)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from api.settings import Settings
from api.standard_coal import factor_bases
from calc.generation import Flows, scope2_with_generation
from calc.units import UnitError, conversion_factor
from ingest.store.base import StoreReader

if TYPE_CHECKING:
    from api.accounting import BalanceOut

ELECTRICITY = "electricity"


class FlowsOut(BaseModel):
    """Electricity of the boundary by direction over the period, kWh. Export and generation carry no CO2e:
    location-based scope 2 is import × grid factor whatever is exported or generated on site."""

    energy_unit: str = "kWh"
    import_energy: float = Field(description="bought from the grid (the counted energy, with CO2e), kWh")
    export_energy: float = Field(description="sent to the grid (*_export counters), kWh")
    generation_energy: float = Field(description="made on site (*_generation counters), kWh")
    net_import: float = Field(description="import − export, kWh (negative: more sold than bought); not the basis "
                              "of scope 2")
    self_consumed: float = Field(description="generation − export (at least 0): generation used on site, kWh")
    consumption: float = Field(description="import + self-consumed: what the boundary used, kWh")
    location_co2e_kg: float = Field(description="location-based scope 2 of the electricity: import × grid factor "
                                    "(equal to the balance's electricity CO2e; export and generation change "
                                    "nothing)")
    market_co2e_kg: float | None = Field(default=None, description="market-based kg CO2e of the electricity as "
                                         "the balance counts it (self-consumed generation adds nothing while the "
                                         "site keeps its attributes)")
    grid_kg_per_kwh: float | None = Field(default=None, description="the grid factor a kWh bought by these "
                                          "meters counts at (ingest's factor table at the period's end, or now), "
                                          "kg CO2e/kWh; their mean when they differ")
    avoided_location_kg: float = Field(default=0.0, description="self-consumed × grid_kg_per_kwh: a memo of what "
                                       "the generation used on site would have cost from the grid, never "
                                       "subtracted")
    meters: list[str] = Field(default_factory=list, description="meters with an export or generation counter")


def balance_flows(settings: Settings, store: StoreReader, balance: BalanceOut, site: str, start: datetime,
                  end: datetime, now: datetime, area: str | None = None, meter: str | None = None) -> FlowsOut | None:
    """The boundary's electricity flows over [start, end), or None when no meter of it exports or generates."""
    flows = [f for f in store.energy_flows(site, start, end) if f.carrier == ELECTRICITY
             and (area is None or f.area == area) and (meter is None or f.meter == meter)]
    total, with_flow = Flows(0.0), []
    for f in flows:
        try:
            k = conversion_factor(f.energy_unit, "kWh")
        except UnitError:
            continue
        total = total + Flows(f.import_energy * k, f.export_energy * k, f.generation_energy * k)
        if f.export_energy or f.generation_energy:
            with_flow.append(f.meter)
    if not with_flow:
        return None
    location = sum(c.co2e_kg for c in balance.carriers if c.carrier == ELECTRICITY)
    market_rows = [m.market_co2e_kg for m in balance.meters if m.carrier == ELECTRICITY]
    market = None if any(v is None for v in market_rows) else sum(v or 0.0 for v in market_rows)
    factors = [b.co2e_kg / b.energy / conversion_factor(b.energy_unit, "kWh")
               for b in factor_bases(settings, min(end, now)) if b.meter in with_flow and b.energy > 0]
    grid = sum(factors) / len(factors) if factors else None
    scope2 = scope2_with_generation(total, grid or 0.0, 0.0)
    return FlowsOut(import_energy=total.import_energy, export_energy=total.export_energy,
                    generation_energy=total.generation_energy, net_import=total.net_import,
                    self_consumed=total.self_consumed, consumption=total.consumption, location_co2e_kg=location,
                    market_co2e_kg=market, grid_kg_per_kwh=grid, avoided_location_kg=scope2.avoided_location_kg,
                    meters=sorted(set(with_flow)))


def with_virtual_and_flows(settings: Settings, store: StoreReader, balance: BalanceOut, site: str, start: datetime,
                           end: datetime, now: datetime, area: str | None = None,
                           meter: str | None = None) -> BalanceOut:
    """The balance with its virtual meters (the site's only) and its electricity flows: as /v1/balance and the
    period report both give them."""
    from api.virtual import virtual_balances

    return balance.model_copy(update={
        "virtual_meters": virtual_balances(settings, balance) if area is None and meter is None else [],
        "flows": balance_flows(settings, store, balance, site, start, end, now, area, meter)})
