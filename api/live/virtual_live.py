"""Live rules on virtual meters: a rule whose target is a virtual meter watches Σ sign × its inputs (power, CO2e
rate, cumulative CO2e) or, with metric `unmetered`, the share of the main's power no submeter sees."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from calc.plant import Plant
from calc.rules import Metric, RuleSpec, ScopeKind
from calc.virtual_meters import Term

if TYPE_CHECKING:
    from datetime import datetime

    from api.live.live_sums import LiveState, MeterLive

SIGNED = frozenset({Metric.POWER, Metric.CO2E_RATE, Metric.CUMULATIVE_CO2E})


def virtual_terms(plant: Plant, scope: ScopeKind, target: str | None) -> tuple[Term, ...] | None:
    """The real meters (with signs) under a meter-scope target that is a virtual meter; None otherwise."""
    if scope is not ScopeKind.METER or target is None:
        return None
    resolved = plant.virtual().get(target)
    return resolved.base if resolved is not None else None


def touches(plant: Plant, spec: RuleSpec, meter: str) -> bool:
    """Whether a reading of `meter` may change a rule on a virtual meter (it is one of its inputs)."""
    terms = virtual_terms(plant, spec.scope, spec.target)
    return terms is not None and any(t.meter == meter for t in terms)


def unmetered_pct(main_kw: float | None, subs_kw: list[float | None]) -> float:
    """(main − Σ submeters) ÷ main × 100 from live power; NaN while any power is unknown or the main draws none."""
    if main_kw is None or main_kw <= 0 or any(s is None for s in subs_kw):
        return math.nan
    return (main_kw - sum(s or 0.0 for s in subs_kw)) / main_kw * 100.0


def value(live: LiveState, rule: RuleSpec, now: datetime) -> float | None:
    """The rule's metric over a virtual target (None: not a virtual target, or a metric read over its inputs as
    any scope's: data quality and meter offline)."""
    terms = virtual_terms(live.plant, rule.scope, rule.target)
    if terms is None:
        return math.nan if rule.metric is Metric.UNMETERED else None
    meters: list[tuple[int, MeterLive]] = [(t.sign, live.meters[t.meter]) for t in terms if t.meter in live.meters]
    if rule.metric is Metric.UNMETERED:
        mains = [m for s, m in meters if s > 0]
        if len(mains) != 1:
            return math.nan
        return unmetered_pct(mains[0].power_kw, [m.power_kw for s, m in meters if s < 0])
    if rule.metric is Metric.POWER:   # unknown until every input has a power (a difference of a part is not it)
        if any(m.power_kw is None for _, m in meters):
            return math.nan
        return sum(s * (m.power_kw or 0.0) for s, m in meters)
    if rule.metric is Metric.CO2E_RATE:
        return sum(s * m.co2e_rate_kg_per_h for s, m in meters)
    if rule.metric is Metric.CUMULATIVE_CO2E:
        return sum(s * live.period_kg([m], rule.period, now) for s, m in meters)
    return None
