"""Production counters and driver variables in the stores: what each stored point adds (amount, held, weighted
value and weight) and how per-variable figures combine into area, line and site figures; one rule for every store.

A counter adds its delta in the variable's unit (held deltas apart); a gauge adds value x interval_s and
interval_s, so a mean over any period is the sum of one over the sum of the other (time-weighted). A bad sample
adds nothing; nothing here ever has a CO2e.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cache
from typing import Literal

from calc.units import Q_
from ingest.points import DELTA, FLAGS, INTERVAL, QUALITY, QUANTITY, UNIT, VALUE, Point, VariableInfo
from ingest.store.base import VariableTotal

Amounts = tuple[float, float, float, float]  # amount, held, weighted, weight_s
NOTHING: Amounts = (0.0, 0.0, 0.0, 0.0)


@cache
def affine(from_unit: str, to_unit: str) -> tuple[float, float]:
    """(a, b) with to = a * from + b (b != 0 for offset units such as degC and K); raises calc.units errors."""
    b = float(Q_(0.0, from_unit).to(to_unit).magnitude)
    return float(Q_(1.0, from_unit).to(to_unit).magnitude) - b, b


def amounts(p: Point, info: VariableInfo) -> Amounts | None:
    """What a stored point adds to its variable's figures, or None when it is not the variable's quantity. A
    point flagged `void` (a manual entry taken back, calc.entries) takes away what its twin added."""
    if p[QUANTITY] != info.quantity:
        return None
    if p[QUALITY] == "bad":
        return NOTHING
    flags = p[FLAGS].split(",")
    sign = -1.0 if "void" in flags else 1.0
    if info.measure == "counter":
        delta = p[DELTA]
        if delta is None:
            return NOTHING
        a, _ = affine(p[UNIT], info.unit)
        if "held" in flags:
            return (0.0, sign * delta * a, 0.0, 0.0)
        return (sign * delta * a, 0.0, 0.0, 0.0)
    interval = p[INTERVAL]
    if interval is None or interval <= 0:
        return NOTHING
    a, b = affine(p[UNIT], info.unit)
    return (0.0, 0.0, sign * (p[VALUE] * a + b) * interval, sign * float(interval))


@dataclass(slots=True)
class Acc:
    """Running sums of one variable (or one variable in one bucket)."""

    amount: float = 0.0
    held: float = 0.0
    weighted: float = 0.0
    weight_s: float = 0.0
    points: int = 0

    def add(self, amount: float, held: float, weighted: float, weight_s: float, points: int) -> None:
        self.amount += amount
        self.held += held
        self.weighted += weighted
        self.weight_s += weight_s
        self.points += points


def figure(variable: str, info: VariableInfo, acc: Acc, start: datetime | None = None) -> VariableTotal:
    counter = info.measure == "counter"
    mean = acc.weighted / acc.weight_s if not counter and acc.weight_s > 0 else None
    return VariableTotal(variable=variable, site=info.site, area=info.area, line=info.line, kind=info.kind,
                         quantity=info.quantity, unit=info.unit, measure=info.measure,
                         total=acc.amount if counter else None, held=acc.held, mean=mean,
                         weight_s=acc.weight_s, points=acc.points, start=start)


def combine(rows: Iterable[VariableTotal], by: Literal["area", "line", "site"]) -> list[VariableTotal]:
    """Variables' figures added up per area, line or site (and bucket, in a series): counters of the same kind,
    quantity and unit summed, gauges time-weighted by their `weight_s`; `variable` is then the group's name.
    Variables of different units are never added: each (kind, quantity, unit) stays a row of its own."""
    acc: dict[tuple[object, ...], tuple[VariableTotal, Acc]] = {}
    for r in rows:
        group = r.site if by == "site" else r.area if by == "area" else r.line
        key = (r.start, group, r.kind, r.quantity, r.unit, r.measure)
        if key not in acc:
            acc[key] = (replace(r, variable=group, area=r.area if by != "site" else "",
                                line=r.line if by == "line" else ""), Acc())
        a = acc[key][1]
        a.add(r.total or 0.0, r.held, (r.mean or 0.0) * r.weight_s, r.weight_s, r.points)
    out = []
    for first, a in acc.values():
        counter = first.measure == "counter"
        out.append(replace(first, total=a.amount if counter else None, held=a.held,
                           mean=a.weighted / a.weight_s if not counter and a.weight_s > 0 else None,
                           weight_s=a.weight_s, points=a.points))
    return sorted(out, key=lambda r: (r.start or datetime.min, r.variable, r.kind, r.quantity))
