"""The live CO2e rate (kg CO2e/h) of each meter, for every carrier, defined once for the API and SCADA:
the meter's latest flow (power, volume or mass flow) times the CO2e its stored energy carried per unit.

rate = flow (converted to the store's energy unit per hour) × co2e_kg / energy of the meter's stored totals
(today's, or this month's when today has no energy yet; with neither, the meter's current factor as ingest would
apply it, `FactorBasis`, so a meter that just started has a rate at once). Pure: the caller reads the store and
passes rows.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from calc.generation import Direction, direction_of
from calc.table import FactorTable
from calc.units import UnitError, conversion_factor

# Preferred flow quantity per meter when several convert (totals first, per-phase values never).
PREFERRED = ("active_power", "volume_flow", "mass_flow", "heat_flow", "power")
_PHASE = re.compile(r"_(a|b|c|l1|l2|l3)$")


class LatestLike(Protocol):
    """A latest stored sample (ingest.store.base.LatestValue has these fields)."""

    @property
    def meter(self) -> str: ...
    @property
    def quantity(self) -> str: ...
    @property
    def value(self) -> float: ...
    @property
    def unit(self) -> str: ...
    @property
    def quality(self) -> str: ...


class TotalLike(Protocol):
    """Stored sums of one meter over a period (ingest.store.base.MeterTotal has these fields)."""

    @property
    def meter(self) -> str: ...
    @property
    def energy(self) -> float: ...
    @property
    def energy_unit(self) -> str: ...
    @property
    def co2e_kg(self) -> float: ...


@dataclass(frozen=True, slots=True)
class MeterRate:
    """One meter's live CO2e rate and what it was computed from."""

    meter: str
    rate_kg_per_h: float
    quantity: str            # the flow quantity used, e.g. active_power
    flow: float              # in flow_unit
    flow_unit: str           # energy_unit per hour, e.g. "kWh/h"
    kg_per_unit: float       # kg CO2e per energy_unit, from the stored totals
    basis: str = "stored"    # "stored": the stored totals' ratio; "factor": the meter's current factor (no energy yet)


@dataclass(frozen=True, slots=True)
class FactorBasis:
    """A meter's current factor in the shape of stored totals (TotalLike): kg CO2e per one unit of its energy
    unit, as ingest's factor table would count it now; the rate's basis until the store holds energy."""

    meter: str
    energy_unit: str
    co2e_kg: float            # per one energy_unit
    energy: float = 1.0


def factor_bases(table: FactorTable, at_s: float) -> list[FactorBasis]:
    """Each meter's factor at `at_s` (epoch seconds) as a rate basis: kg CO2e per unit of its table (stored)
    energy unit, from ingest's factor table; meters the table cannot convert are left out."""
    if not table.meters:
        return []
    idx = np.arange(len(table.meters), dtype=np.intp)
    kg, rows = table.co2e_kg(idx, np.ones(len(idx)), np.full(len(idx), at_s))
    return [FactorBasis(m, table.units[i], float(kg[i])) for i, m in enumerate(table.meters)
            if rows[i] >= 0 and math.isfinite(float(kg[i])) and kg[i] > 0]


def kg_per_unit(total: TotalLike | None) -> float | None:
    """kg CO2e per unit of stored energy, or None when the totals hold no energy."""
    if total is None or not total.energy > 0:
        return None
    return total.co2e_kg / total.energy


def pick_flow(samples: Iterable[LatestLike], energy_unit: str) -> tuple[str, float] | None:
    """(quantity, value in energy_unit/h) of the meter's flow sample, or None when none converts.

    Bad samples and per-phase values are skipped; quantities in PREFERRED come first, then by name."""
    target = f"{energy_unit} / hour"
    found: dict[str, float] = {}
    for s in samples:
        if s.quality == "bad" or _PHASE.search(s.quantity):
            continue
        try:
            found[s.quantity] = s.value * conversion_factor(s.unit, target)
        except UnitError:
            continue
    if not found:
        return None
    order = sorted(found, key=lambda q: (PREFERRED.index(q) if q in PREFERRED else len(PREFERRED), q))
    return order[0], found[order[0]]


def meter_rates(latest: Iterable[LatestLike], today: Iterable[TotalLike], month: Iterable[TotalLike],
                fallback: Iterable[TotalLike] = ()) -> dict[str, MeterRate]:
    """Live rate of every meter that has a flow sample and a basis: stored energy with CO2e (today, else month),
    else its `fallback` (FactorBasis: the meter's current factor)."""
    by_meter: dict[str, list[LatestLike]] = {}
    for s in latest:
        by_meter.setdefault(s.meter, []).append(s)
    today_by = {t.meter: t for t in today}
    month_by = {t.meter: t for t in month}
    fallback_by = {t.meter: t for t in fallback}
    out: dict[str, MeterRate] = {}
    for meter, samples in by_meter.items():
        if any(direction_of(s.quantity) is Direction.GENERATION for s in samples):
            continue   # a generation meter (calc.generation): its power is made on site, not bought
        total = today_by.get(meter) if kg_per_unit(today_by.get(meter)) is not None else month_by.get(meter)
        basis = "stored"
        if kg_per_unit(total) is None and kg_per_unit(fallback_by.get(meter)) is not None:
            total, basis = fallback_by.get(meter), "factor"
        per_unit = kg_per_unit(total)
        if total is None or per_unit is None:
            continue
        flow = pick_flow(samples, total.energy_unit)
        if flow is None:
            continue
        quantity, value = flow
        out[meter] = MeterRate(meter, max(value, 0.0) * per_unit, quantity, value, f"{total.energy_unit}/h",
                               per_unit, basis)
    return out


def total_rate(rates: Mapping[str, MeterRate], meters: Iterable[str]) -> float:
    """kg CO2e/h of a boundary: the sum over its meters (a meter without a rate adds nothing)."""
    return sum(rates[m].rate_kg_per_h for m in meters if m in rates)
