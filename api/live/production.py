"""Live production of the plant's production variables (plant file `[[variables]]`, kind production), for the
intensity rules: per variable and period (today, month, year in the site's time zone), the sum of its counter's
deltas in its unit, as the store counts them (ingest.store.variables.amounts: its quantity only, bad samples and
held deltas not counted, the device's unit converted to the variable's; ingest refuses offset units for a
counter).

Start-up loads the store's totals up to the baseline's cut; afterwards a sample counts once, when it is newer
than the cut and than every sample of the variable counted before (a replay or duplicate adds nothing; a
sample that arrives out of order, older than one already counted, is left to the store and the next start-up).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from calc.periods import resolve
from calc.plant import Variable
from calc.rules import RuleSpec, ScopeKind
from calc.schema import Quality, ReadingMessage
from calc.units import UnitError, conversion_factor

PERIODS = ("today", "month", "year")


@dataclass
class ProductionLive:
    variable: str
    area: str
    line: str | None
    quantity: str
    unit: str
    hwm: datetime | None = None            # newest sample counted (or the start-up baseline's cut)
    period_amount: dict[str, tuple[datetime, float]] = field(default_factory=dict)  # period -> (start, amount)

    def in_scope(self, scope: ScopeKind, target: str | None) -> bool:
        return (scope is ScopeKind.SITE or (scope is ScopeKind.AREA and self.area == target)
                or (scope is ScopeKind.LINE and self.line == target))


class Production:
    """The production variables of one site; not thread-safe (one event loop owns it)."""

    def __init__(self, variables: tuple[Variable, ...], timezone: str) -> None:
        self.tz = timezone
        self.variables = {v.id: ProductionLive(v.id, v.area, v.line, v.quantity, v.unit)
                          for v in variables if v.kind == "production"}

    def load_baseline(self, period: str, start: datetime, per_variable: dict[str, float]) -> None:
        for v in self.variables.values():
            v.period_amount[period] = (start, per_variable.get(v.variable, 0.0))

    def set_hwm(self, cut: datetime | None) -> None:
        for v in self.variables.values():
            v.hwm = cut

    def apply(self, message: ReadingMessage) -> ProductionLive | None:
        """Count a reading message of a production variable; the variable when something counted."""
        v = self.variables.get(message.meter)
        if v is None:
            return None
        counted = False
        for s in sorted(message.samples, key=lambda s: s.ts):
            if s.quantity != v.quantity or (v.hwm is not None and s.ts <= v.hwm) or "void" in s.flags:
                continue   # a void (calc.entries) takes back in the store; live, it is left to the next start-up
            if s.quality is Quality.BAD or s.delta is None or "held" in s.flags:
                v.hwm = s.ts
                continue
            try:
                scale = conversion_factor(s.unit, v.unit)
            except UnitError:
                continue               # ingest dead-letters it; it is never counted
            v.hwm = s.ts
            for period in PERIODS:
                bounds = resolve(period, None, None, self.tz, s.ts)
                start, amount = v.period_amount.get(period, (bounds.start, 0.0))
                if bounds.start > start:
                    start, amount = bounds.start, 0.0          # a new period began
                if bounds.start == start:
                    v.period_amount[period] = (start, amount + s.delta * scale)
            counted = True
        return v if counted else None

    def matching(self, rule: RuleSpec) -> list[ProductionLive]:
        """The production variables an intensity rule divides by: its `product_variable`, else those of its
        scope whose quantity is `product_quantity`."""
        if rule.product_variable is not None:
            v = self.variables.get(rule.product_variable)
            return [v] if v is not None else []
        return [v for v in self.variables.values()
                if v.quantity == rule.product_quantity and v.in_scope(rule.scope, rule.target)]

    def amount(self, rule: RuleSpec, now: datetime) -> float:
        """Product counted in the rule's period up to now (0 when none; its unit: the variables')."""
        start = resolve(rule.period, None, None, self.tz, now).start
        return sum(a for v in self.matching(rule) for s, a in [v.period_amount.get(rule.period, (start, 0.0))]
                   if s == start)
