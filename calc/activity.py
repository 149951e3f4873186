"""Manual activity data (fuel deliveries, utility bills, refrigerant top-ups, process emissions, heat and steam
statements): what an entry is, how it becomes energy and kg CO2e through the carrier recipes, and its spread in time.

Pure: the caller passes the factor set, the site's region and time zone; nothing here reads a clock or a file
(the refrigerant GWPs and carbonate factors are package data, calc/data/activity_factors.toml).
"""

from __future__ import annotations

import math
import tokenize
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from calc.carriers import BY_NAME
from calc.conditions import ConditionError, Measure, parse_measure
from calc.emissions import carrier_co2e
from calc.errors import CalcError
from calc.factors import Factor, FactorError, FactorSet, combined_hash, content_version, load_toml
from calc.recipes import Conditions
from calc.units import UnitError, conversion_factor

Kind = Literal["fuel", "bill", "refrigerant", "process", "heat"]
KINDS: tuple[str, ...] = ("fuel", "bill", "refrigerant", "process", "heat")
MAX_QUANTITY = 1e12  # far beyond any plant's delivery or bill; keeps every figure finite
ACTIVITY_SET = "activity"


class ActivityError(CalcError):
    """An activity entry that cannot be turned into emissions; the message names the field and why."""


class Entry(BaseModel):
    """One activity entry as given (API body or CSV row). Dates are the site's local calendar days, inclusive."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Kind
    start: date = Field(description="first local day the entry covers (a delivery: the day it was delivered)")
    end: date | None = Field(default=None, description="last local day covered, inclusive (default: start)")
    quantity: float = Field(gt=0, le=MAX_QUANTITY, allow_inf_nan=False)
    unit: str = Field(min_length=1, max_length=32, examples=["L", "t", "kWh", "GJ", "kg"])
    carrier: str | None = Field(default=None, max_length=32, description="fuel, bill, heat: the energy carrier")
    method: str | None = Field(default=None, max_length=16, description="the carrier's method (default: its first)")
    density: str | None = Field(default=None, max_length=32, description="fuel by volume: e.g. '0.84 kg/L'")
    pressure: str | None = Field(default=None, max_length=32, description="steam by mass: e.g. '1.0 MPa'")
    temperature: str | None = Field(default=None, max_length=32, description="superheated steam, hot water")
    gas: str | None = Field(default=None, max_length=32, description="refrigerant: HFC-134a, R-410A ...")
    material: str | None = Field(default=None, max_length=32, description="process, carbonate method: CaCO3 ...")
    purity: float | None = Field(default=None, gt=0, le=1, allow_inf_nan=False,
                                 description="process: mass fraction of the carbonate in the material (0..1]")
    factor: str | None = Field(default=None, max_length=32, description="process with its own factor: e.g. "
                               "'0.2 t/t' (t CO2 per t of quantity)")
    factor_source: str | None = Field(default=None, max_length=500, description="where `factor` comes from")
    meters: tuple[str, ...] = Field(default=(), max_length=64, description="bill: live meters it covers (then "
                                    "it is a reconciliation, not counted)")

    @model_validator(mode="after")
    def _check(self) -> Entry:
        if self.end is not None and self.end < self.start:
            raise ValueError("end: before start")
        needs_carrier = self.kind in ("fuel", "bill", "heat")
        if needs_carrier != (self.carrier is not None):
            raise ValueError("carrier: required for fuel, bill and heat entries, not allowed otherwise")
        if self.carrier is not None:
            row = BY_NAME.get(self.carrier)
            family = {"fuel": ("fuel",), "heat": ("heat",), "bill": ("electricity", "fuel", "heat")}[self.kind]
            if row is None or row.family not in family:
                names = sorted(c for c, r in BY_NAME.items() if r.family in family)
                raise ValueError(f"carrier: {self.carrier!r} is not one of {names}")
        if (self.kind == "refrigerant") != (self.gas is not None):
            raise ValueError("gas: required for refrigerant entries (e.g. HFC-134a), not allowed otherwise")
        if self.kind == "process":
            if (self.material is None) == (self.factor is None):
                raise ValueError("material or factor: a process entry gives one (a carbonate, or its own factor)")
            if self.factor is not None and not (self.factor_source or "").strip():
                raise ValueError("factor_source: a process factor needs its source")
        elif self.material or self.factor or self.purity is not None:
            raise ValueError("material, purity, factor: only for process entries")
        if self.meters and self.kind != "bill":
            raise ValueError("meters: only a bill covers meters")
        return self

    @property
    def last_day(self) -> date:
        return self.end or self.start


class ActivityResult(BaseModel):
    """What one entry amounts to: its energy (or mass), kg CO2e by method, and the factors behind it."""

    model_config = ConfigDict(frozen=True)

    carrier: str                 # the energy carrier, or 'refrigerant:<gas>', 'process:<material>'
    scope: str
    energy: float                # activity data in energy_unit (kWh, GJ, t of gas or material)
    energy_unit: str
    co2e_kg: float               # location-based
    market_co2e_kg: float        # market-based (electricity: the residual factor; others: as co2e_kg)
    factor_id: str
    factor_version: str
    source: str
    factor_ids: tuple[str, ...]
    fallback: bool = False


@cache
def activity_factors() -> dict[str, Factor]:
    """The refrigerant GWPs, blend compositions and carbonate factors shipped with carbonwatch."""
    from calc.data import activity_factor_text

    raw = load_toml(activity_factor_text()).get("factors", {})
    try:
        return {fid: Factor.model_validate({**body, "id": fid}) for fid, body in raw.items()}
    except ValidationError as exc:  # package data: a broken file is a bug, said plainly
        raise FactorError(f"activity_factors.toml: {exc}") from exc


def _version(factors: FactorSet, used: list[Factor]) -> str:
    own = content_version(activity_factors(), factors.gwp_set)
    return f"{factors.version}+{ACTIVITY_SET}@{own}:{combined_hash(used)}"


def refrigerant_gwp(factors: FactorSet, gas: str) -> tuple[float, list[Factor]]:
    """GWP100 of a gas or blend in the factor set's assessment (AR5 or AR6): the set's own row first, then the
    shipped table; a blend is the mass-weighted mean of its components. Returns the value and the rows used."""
    try:
        own = factors.gwp(gas)
        return own.value, [own.factor]
    except FactorError:
        pass
    wanted = factors.gwp_set.upper()
    table = activity_factors()
    pure = [f for f in table.values() if f.kind == "gwp100" and f.gas.upper() == gas.upper()
            and (f.assessment or "").upper() == wanted]
    if pure:
        return pure[0].value, [pure[0]]
    parts = [f for f in table.values() if f.kind == "refrigerant_blend_fraction"
             and str(getattr(f, "blend", "")).upper() == gas.upper()]
    if not parts:
        known = sorted({f.gas for f in table.values() if f.kind == "gwp100"}
                       | {str(getattr(f, "blend", "")) for f in parts or table.values()
                          if f.kind == "refrigerant_blend_fraction"})
        raise ActivityError(f"gas: no GWP100 for {gas!r} in {wanted}; known: {', '.join(known)}")
    total, used = 0.0, list(parts)
    for part in parts:
        value, rows = refrigerant_gwp(factors, part.gas)
        total += part.value * value
        used += rows
    return total, used


def carbonate_factor(material: str) -> Factor:
    for f in activity_factors().values():
        if f.kind == "process_emission_factor" and str(getattr(f, "material", "")).lower() == material.lower():
            return f
    known = sorted(str(getattr(f, "material", "")) for f in activity_factors().values()
                   if f.kind == "process_emission_factor")
    raise ActivityError(f"material: no carbonate factor for {material!r}; known: {', '.join(known)}")


def _per(unit: str, target: str, what: str) -> float:
    try:
        return conversion_factor(unit, target)
    except UnitError as exc:
        raise ActivityError(f"{what}: {exc}") from exc


def _measure(text: str | None, what: str, positive: bool = False) -> Measure | None:
    if text is None:
        return None
    try:
        measure = parse_measure(text, what)
    except (ConditionError, ValueError) as exc:
        raise ActivityError(str(exc)) from exc
    if positive and not (math.isfinite(measure.value) and measure.value > 0):
        raise ActivityError(f"{what}: {text!r} must be a positive, finite number with its unit")
    return measure


def _energy(entry: Entry, factors: FactorSet, region: str) -> ActivityResult:
    assert entry.carrier is not None
    cond = Conditions(density=_measure(entry.density, "density", positive=True),
                      pressure=_measure(entry.pressure, "pressure"),
                      temperature=_measure(entry.temperature, "temperature"))
    try:
        loc = carrier_co2e(entry.quantity, entry.unit, entry.carrier, factors, region=region, at=entry.start,
                           method=entry.method, conditions=cond)
        market = loc
        if BY_NAME[entry.carrier].family == "electricity" and entry.method in (None, "location"):
            market = carrier_co2e(entry.quantity, entry.unit, entry.carrier, factors, region=region,
                                  at=entry.start, method="market", conditions=cond)
    except (FactorError, ConditionError, UnitError) as exc:
        raise ActivityError(str(exc)) from exc
    return ActivityResult(carrier=entry.carrier, scope=loc.scope, energy=loc.activity or 0.0,
                          energy_unit=loc.activity_unit, co2e_kg=loc.co2e_kg, market_co2e_kg=market.co2e_kg,
                          factor_id=loc.factor_id, factor_version=loc.factor_version, source=loc.source,
                          factor_ids=loc.factor_ids, fallback=loc.fallback)


def _refrigerant(entry: Entry, factors: FactorSet) -> ActivityResult:
    assert entry.gas is not None
    kg = entry.quantity * _per(entry.unit, "kg", "unit (a refrigerant is entered by mass)")
    gwp, used = refrigerant_gwp(factors, entry.gas)
    co2e = kg * gwp
    return ActivityResult(carrier=f"refrigerant:{entry.gas}", scope="scope1", energy=kg, energy_unit="kg",
                          co2e_kg=co2e, market_co2e_kg=co2e, factor_id=used[0].id,
                          factor_version=_version(factors, used), source=used[0].source,
                          factor_ids=tuple(dict.fromkeys(f.id for f in used)))


def _process(entry: Entry, factors: FactorSet) -> ActivityResult:
    tonnes = entry.quantity * _per(entry.unit, "t", "unit (process material is entered by mass)")
    if entry.material is not None:
        row = carbonate_factor(entry.material)
        per_t = row.value * _per(row.unit, "t / t", f"factors.{row.id}.unit")
        name = entry.material
    else:
        assert entry.factor is not None and entry.factor_source is not None
        measure = _measure(entry.factor, "factor", positive=True)
        assert measure is not None
        per_t = measure.value * _per(measure.unit, "t / t", "factor (t CO2 per t of quantity, e.g. '0.2 t/t')")
        row = Factor(id="entry_factor", value=measure.value, unit=measure.unit, gas="CO2",
                     kind="process_emission_factor", scope="scope1_process", region="site",
                     source=entry.factor_source)
        name = "own_factor"
    co2e = tonnes * (entry.purity if entry.purity is not None else 1.0) * per_t * 1000.0
    return ActivityResult(carrier=f"process:{name}", scope="scope1", energy=tonnes, energy_unit="t",
                          co2e_kg=co2e, market_co2e_kg=co2e, factor_id=row.id,
                          factor_version=_version(factors, [row]), source=row.source, factor_ids=(row.id,))


def evaluate(entry: Entry, factors: FactorSet, region: str) -> ActivityResult:
    """kg CO2e of an entry (factors chosen at its first day). Raises ActivityError naming the field and why."""
    try:
        if entry.kind == "refrigerant":
            result = _refrigerant(entry, factors)
        elif entry.kind == "process":
            result = _process(entry, factors)
        else:
            result = _energy(entry, factors, region)
    except ActivityError:
        raise
    # what a hostile unit or number can raise in pint or the formulas (e.g. '1/0', an unbalanced parenthesis)
    except (CalcError, ArithmeticError, ValueError, TypeError, AttributeError, tokenize.TokenError) as exc:
        raise ActivityError(f"unit or value: {exc}") from exc
    if not (math.isfinite(result.co2e_kg) and math.isfinite(result.market_co2e_kg) and math.isfinite(result.energy)
            and result.co2e_kg >= 0 and result.energy >= 0):
        raise ActivityError(f"quantity: the result ({result.co2e_kg} kg CO2e) is not a finite, non-negative mass")
    return result


def span(entry: Entry, tz: str) -> tuple[datetime, datetime]:
    """The UTC instants an entry covers: local midnight of its first day to local midnight after its last."""
    zone = ZoneInfo(tz)
    first = datetime.combine(entry.start, time(), zone)
    after = datetime.combine(entry.last_day + timedelta(days=1), time(), zone)
    return first.astimezone(UTC), after.astimezone(UTC)


def share(start: datetime, end: datetime, window_start: datetime, window_end: datetime) -> float:
    """The fraction of [start, end) inside [window_start, window_end): an entry is spread evenly over its time."""
    overlap = (min(end, window_end) - max(start, window_start)).total_seconds()
    whole = (end - start).total_seconds()
    return max(0.0, overlap) / whole if whole > 0 else 0.0


def pieces(start: datetime, end: datetime, tz: str) -> list[tuple[datetime, datetime, float]]:
    """[start, end) cut at the site's local midnights: (piece start, piece end, its share), shares summing to 1."""
    zone = ZoneInfo(tz)
    out: list[tuple[datetime, datetime, float]] = []
    at = start
    while at < end:
        local = at.astimezone(zone)
        nxt = datetime.combine(local.date() + timedelta(days=1), time(), zone).astimezone(UTC)
        cut = min(nxt, end)
        out.append((at, cut, share(start, end, at, cut)))
        at = cut
    return out



@dataclass(frozen=True, slots=True)
class Counted:
    """A stored entry that counts (not voided, not a reconciliation): its area, UTC span and result."""

    area: str
    start: datetime
    end: datetime
    result: ActivityResult


class ManualTotal(BaseModel):
    """Counted entries of one (area, carrier, scope, unit) within a time range, each by its share of it."""

    area: str
    carrier: str
    scope: str
    energy: float
    energy_unit: str
    co2e_kg: float
    market_co2e_kg: float
    entries: int
    factor_ids: list[str]
    factor_versions: list[str]


def manual_totals(entries: Iterable[Counted], start: datetime, end: datetime,
                  area: str | None = None) -> list[ManualTotal]:
    """The entries' shares of [start, end) summed per area, carrier, scope and unit (the API's balance and
    history and SCADA's figures all use this one sum)."""
    acc: dict[tuple[str, str, str, str], list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])
    ids: dict[tuple[str, str, str, str], set[str]] = defaultdict(set)
    versions: dict[tuple[str, str, str, str], set[str]] = defaultdict(set)
    for e in entries:
        part = share(e.start, e.end, start, end)
        if part <= 0 or (area is not None and e.area != area):
            continue
        r = e.result
        key = (e.area, r.carrier, r.scope, r.energy_unit)
        v = acc[key]
        v[0], v[1], v[2], v[3] = v[0] + part * r.energy, v[1] + part * r.co2e_kg, v[2] + part * r.market_co2e_kg, \
            v[3] + 1
        ids[key].update(r.factor_ids)
        versions[key].add(r.factor_version)
    return [ManualTotal(area=a, carrier=c, scope=s, energy_unit=u, energy=v[0], co2e_kg=v[1], market_co2e_kg=v[2],
                        entries=int(v[3]), factor_ids=sorted(ids[(a, c, s, u)]),
                        factor_versions=sorted(versions[(a, c, s, u)]))
            for (a, c, s, u), v in sorted(acc.items())]
