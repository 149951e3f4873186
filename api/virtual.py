"""Virtual meters in the API: their period figures beside a balance (or a balance of one virtual meter) and their
series in /v1/history, evaluated by calc.virtual_series from the real meters' stored sums."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field

from api.completeness import interval_of
from api.settings import Settings
from calc.virtual_meters import Resolved, Term
from calc.virtual_series import Series, evaluate, evaluate_all
from ingest.store.base import StoreReader
from ingest.store.buckets import DAY_S, STEPS_S

if TYPE_CHECKING:
    from api.accounting import BalanceOut, MeterBalance

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class VirtualTerm(BaseModel):
    sign: int = Field(description="+1 or -1")
    meter: str


class VirtualBalance(BaseModel):
    """A virtual meter over the period: Σ sign × its inputs' counted energy and CO2e (never added to the site's
    figures: the real meters are), as complete as its least complete input."""

    meter: str
    area: str
    carrier: str
    expression: str
    description: str = ""
    terms: list[VirtualTerm] = Field(description="the expression with virtual inputs expanded into real meters")
    energy: float = Field(description="in energy_unit; negative when the subtracted meters exceed the added ones")
    energy_unit: str
    co2e_kg: float = Field(description="location-based kg CO2e, Σ sign × the inputs'")
    market_co2e_kg: float | None = Field(default=None, description="Σ sign × the inputs' market-based kg CO2e "
                                         "(null when an input has none)")
    completeness: float = Field(description="0..1: the least complete input (stored / expected samples; an input "
                                "without samples is 0)")
    points: int = Field(description="stored samples behind the figure (all inputs)")
    estimated_energy: float = Field(default=0.0, description="energy of the inputs that is estimated (gaps), >= 0")
    estimated_share: float = Field(default=0.0, description="estimated_energy / |energy|, capped at 1")
    held_energy: float = Field(default=0.0, description="energy of the inputs measured but held (not counted)")
    negative: bool = Field(default=False, description="energy below zero: submeters above the main (kept, "
                           "flagged, never clipped)")


def _us(ts: datetime) -> int:
    delta = ts - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _of_rows(rows: list[MeterBalance], start_us: int) -> Series:
    """One meter's period as a one-bucket Series (its balance rows summed; expected samples as the balance says)."""
    energy = sum(r.energy for r in rows)
    points = sum(r.points for r in rows)
    expected = [r.expected_points for r in rows]
    want = float(sum(e or 0 for e in expected)) if all(e is not None for e in expected) else float(points)
    return Series.of_meter([start_us], [energy], rows[0].energy_unit, [sum(r.co2e_kg for r in rows)], [points],
                           [want], estimated_energy=[sum(r.estimated_energy for r in rows)],
                           held_energy=[sum(r.held_energy for r in rows)])


def virtual_balances(settings: Settings, balance: BalanceOut, only: str | None = None) -> list[VirtualBalance]:
    """Every virtual meter of the plant (or `only`) over the balance's period, from its meter rows."""
    resolved = settings.plant.virtual()
    if not resolved:
        return []
    start_us = _us(balance.period.start)
    rows: dict[str, list[MeterBalance]] = defaultdict(list)
    for r in balance.meters:
        if r.points or r.energy:
            rows[r.meter].append(r)
    inputs = {m: _of_rows(rs, start_us) for m, rs in rows.items()}
    market = {m: (None if any(r.market_co2e_kg is None for r in rs) else sum(r.market_co2e_kg or 0.0 for r in rs))
              for m, rs in rows.items()}
    out = []
    for vid, s in evaluate_all(resolved, inputs).items():
        if only is not None and vid != only:
            continue
        res = resolved[vid]
        terms = res.base
        m_parts = [market.get(t.meter, 0.0) for t in terms]
        one = len(s.start_us) == 1
        out.append(VirtualBalance(
            meter=vid, area=res.meter.area, carrier=res.carrier.value, expression=res.meter.expression,
            description=res.meter.description, terms=[VirtualTerm(sign=t.sign, meter=t.meter) for t in terms],
            energy=s.total(), energy_unit=s.energy_unit, co2e_kg=float(s.co2e_kg.sum()),
            market_co2e_kg=None if any(p is None for p in m_parts)
            else sum(t.sign * (p or 0.0) for t, p in zip(terms, m_parts, strict=True)),
            completeness=float(s.completeness[0]) if one else 0.0, points=int(s.points.sum()),
            estimated_energy=float(s.estimated_energy.sum()),
            estimated_share=float(s.estimated_share[0]) if one else 0.0,
            held_energy=float(s.held_energy.sum()), negative=bool(s.total() < 0)))
    return out


def is_virtual(settings: Settings, meter: str | None) -> bool:
    return meter is not None and any(v.id == meter for v in settings.plant.virtual_meters)


def virtual_boundary(settings: Settings, site_balance: BalanceOut, meter: str) -> BalanceOut:
    """The balance of one virtual meter: its figure as the boundary's, the real meters under it as its rows."""
    vm = virtual_balances(settings, site_balance, meter)[0]
    under = {t.meter for t in vm.terms}
    return site_balance.model_copy(update={
        "meter": meter, "co2e_kg": vm.co2e_kg, "net_co2e_kg": vm.co2e_kg, "offsets_kg": 0.0,
        "market_based": site_balance.market_based.model_copy(update={
            "co2e_kg": vm.market_co2e_kg or 0.0, "net_co2e_kg": vm.market_co2e_kg or 0.0,
            "complete": vm.market_co2e_kg is not None, "instruments": []}),
        "areas": [], "scopes": [], "carriers": [], "intensity": [], "allowance": None,
        "meters": [m for m in site_balance.meters if m.meter in under], "completeness": vm.completeness,
        "estimated_co2e_kg": 0.0, "held_co2e_kg": 0.0, "held_records": 0, "energy_kgce": 0.0, "kgce_refused": [],
        "virtual_meters": [vm]})


def _bucket_end(start: datetime, step: str, tz: str) -> datetime:
    if STEPS_S[step] != DAY_S:
        return start + timedelta(seconds=STEPS_S[step])
    local = (start.astimezone(ZoneInfo(tz)) + timedelta(hours=36)).replace(hour=0, minute=0, second=0,
                                                                              microsecond=0)
    return local.astimezone(UTC)


def input_series(settings: Settings, reader: StoreReader, site: str, start: datetime, end: datetime,
                 now: datetime, step: str, meters: set[str]) -> dict[str, Series]:
    """The stored series of `meters` as calc.virtual_series inputs: completeness is points / the points expected
    at the meter's interval_s over the part of the bucket before `now` and `end`."""
    tz = settings.plant.site.timezone
    by_meter: dict[str, list[Any]] = defaultdict(list)
    for p in reader.series(site, start, end, step, tz):
        if p.meter in meters:
            by_meter[p.meter].append(p)
    inputs: dict[str, Series] = {}
    for m, ps in by_meter.items():
        acc: dict[datetime, list[float]] = defaultdict(lambda: [0.0] * 4)
        unit = ps[0].energy_unit
        for p in ps:
            v = acc[p.start]
            v[0], v[1], v[2], v[3] = v[0] + p.energy, v[1] + p.co2e_kg, v[2] + p.points, v[3] + p.estimated_energy
        starts = sorted(acc)
        interval = interval_of(settings, m)
        expected = [max(0.0, (min(_bucket_end(s, step, tz), now, end) - s).total_seconds()) / interval
                    if interval else acc[s][2] for s in starts]
        inputs[m] = Series.of_meter([_us(s) for s in starts], [acc[s][0] for s in starts], unit,
                                    [acc[s][1] for s in starts], [int(acc[s][2]) for s in starts], expected,
                                    estimated_energy=[acc[s][3] for s in starts])
    return inputs


def expanded(resolved: Resolved) -> Resolved:
    """The virtual meter with its expression over real meters only (other virtual meters expanded)."""
    return Resolved(resolved.meter.model_copy(update={"expression": _expr(resolved.base)}), resolved.carrier,
                    resolved.unit, resolved.base)


def virtual_buckets(settings: Settings, reader: StoreReader, site: str, start: datetime, end: datetime,
                    now: datetime, step: str, meter: str) -> list[dict[str, Any]]:
    """The virtual meter's buckets for /v1/history (the fields of api.routes.history.Bucket): energy and CO2e
    per bucket from the stored series of its inputs, with completeness (points / expected at each input's
    interval_s, the least of them), estimated energy and the `negative` flag; buckets no input has are left out."""
    res = expanded(settings.plant.virtual()[meter])
    inputs = input_series(settings, reader, site, start, end, now, step, {t.meter for t in res.base})
    series = evaluate(res, inputs)
    out = []
    for i, us in enumerate(series.start_us):
        out.append({"start": _EPOCH + timedelta(microseconds=int(us)), "boundary": meter,
                    "energy": float(series.energy[i]), "energy_unit": series.energy_unit,
                    "co2e_kg": float(series.co2e_kg[i]), "points": int(series.points[i]),
                    "estimated_energy": float(series.estimated_energy[i]),
                    "held_energy": float(series.held_energy[i]), "completeness": float(series.completeness[i]),
                    "negative": bool(series.negative[i])})
    return out


def _expr(terms: tuple[Term, ...]) -> str:
    parts = [("- " if t.sign < 0 else "+ ") + t.meter for t in terms]
    return " ".join(parts)


__all__ = ["VirtualBalance", "VirtualTerm", "expanded", "input_series", "is_virtual", "virtual_balances",
           "virtual_boundary", "virtual_buckets"]
