"""Live inputs of the deviation rule ("actual exceeds expected by X % for Y minutes"): per meter, the energy of
ingest's CO2e stream; per plant variable, its readings; both kept for the last day. A rule's value is
calc.deviation's: actual energy of the scope in the last `window_s` against what the baseline's active model
expects from the drivers' totals in the same window.

The models come from a lookup (`BaselineLookup`: baseline id → the active `calc.baseline.Baseline`, or None),
read off the event loop by the engine and kept in `models`. The value is NaN (nothing fires) until the API has
seen a whole window of live data of the scope, when the model is unknown, or when a driver has no variable.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from functools import cache

from calc.baseline import Baseline
from calc.deviation import (
    DEGREE_DAY_UNIT,
    deviation_pct,
    expected_in_window,
    heating_degree_days,
    periods_in,
    time_weighted_mean,
)
from calc.errors import CalcError
from calc.plant import Plant, Variable
from calc.rules import RuleSpec
from calc.schema import Quality, ReadingMessage
from calc.units import UnitError, conversion_factor

BaselineLookup = Callable[[str], Baseline | None]   # blocking (a database read): call it in a worker thread
KEEP = timedelta(days=1)                            # the longest window_s a rule may have


@cache
def _factor(unit: str, to: str) -> float | None:
    try:
        return conversion_factor(unit, to)
    except UnitError:
        return None


class DeviationInputs:
    """Windows of live energy and variable readings; not thread-safe (one event loop owns it)."""

    def __init__(self, plant: Plant) -> None:
        self.variables: dict[str, Variable] = {v.id: v for v in plant.variables}
        self.carriers = {m.id: m.carrier.value for m in plant.meters}
        self.energy: dict[str, deque[tuple[datetime, float, str]]] = {}    # meter -> (ts, energy, unit)
        self.samples: dict[str, deque[tuple[datetime, float, str, float]]] = {}  # (ts, value, unit, interval_s)
        self.first: dict[str, datetime] = {}          # meter or variable -> first live data (its window start)
        self.hwm: dict[str, datetime] = {}            # variable -> newest reading taken
        self.models: dict[str, Baseline | None] = {}  # baseline id -> active model

    def set_hwm(self, cut: datetime | None) -> None:
        """Readings at or before the start-up cut were stored before the API started: not live."""
        if cut is not None:
            for v in self.variables:
                self.hwm[v] = cut

    def apply_energy(self, meter: str, first: datetime, last: datetime, parts: Iterable[tuple[float, str]]) -> None:
        """The energy of one CO2e message (new stored points, first..last), per unit."""
        window = self.energy.setdefault(meter, deque())
        self.first.setdefault(meter, first)
        for amount, unit in parts:
            window.append((last, amount, unit))
        while window and window[0][0] <= last - KEEP:
            window.popleft()

    def apply_reading(self, message: ReadingMessage) -> bool:
        """A reading of a plant variable (production counter or driver); whether it was taken."""
        v = self.variables.get(message.meter)
        if v is None:
            return False
        window = self.samples.setdefault(v.id, deque())
        taken = False
        for s in sorted(message.samples, key=lambda s: s.ts):
            hwm = self.hwm.get(v.id)
            if s.quantity != v.quantity or (hwm is not None and s.ts <= hwm):
                continue
            self.hwm[v.id] = s.ts
            if s.quality is Quality.BAD or "held" in s.flags:
                continue
            self.first.setdefault(v.id, s.ts - timedelta(seconds=s.interval_s or 0.0))
            if v.measure == "counter":
                f = _factor(s.unit, v.unit)
                if f is None or s.delta is None:
                    continue
                window.append((s.ts, s.delta * f, v.unit, s.interval_s or 0.0))
            else:
                window.append((s.ts, s.value, s.unit, s.interval_s or 0.0))   # a gauge: its mean is time-weighted
            taken = True
        while window and window[-1][0] - window[0][0] >= KEEP:
            window.popleft()
        return taken

    def _inputs(self, rule: RuleSpec, meters: Iterable[str]) -> tuple[Baseline, list[str], list[Variable]] | None:
        """The model, the scope's meters with live energy and the driver variables; None when one is missing."""
        model = self.models.get(rule.baseline_id or "")
        if model is None:
            return None
        seen = [m for m in meters
                if m in self.first and (model.carrier is None or self.carriers.get(m) == model.carrier)]
        variables = [self.variables.get(rule.drivers.get(name, name)) for name in model.drivers]
        if not seen or any(v is None or v.id not in self.first for v in variables):
            return None
        return model, seen, [v for v in variables if v is not None]

    def reached(self, rule: RuleSpec, meters: Iterable[str]) -> datetime | None:
        """The newest time every input of the rule has reached (the scope's energy and each driver): the end of
        the window its value stands for, so energy that arrives before its drivers (or after) is never compared
        with a window the others have not filled yet. None while an input is missing."""
        inputs = self._inputs(rule, meters)
        if inputs is None:
            return None
        _, seen, variables = inputs
        energy = [self.energy[m][-1][0] for m in seen if self.energy.get(m)]
        if not energy:
            return None
        ends = [max(energy)] + [self.hwm.get(v.id) for v in variables]
        return min(e for e in ends if e is not None) if all(e is not None for e in ends) else None

    def value(self, rule: RuleSpec, meters: Iterable[str], now: datetime) -> float:
        """% of the scope's actual energy above the expected, over the rule's window ending where every input has
        reached (at most `now`)."""
        scope = list(meters)
        inputs = self._inputs(rule, scope)
        reached = self.reached(rule, scope)
        if inputs is None or reached is None:
            return math.nan
        model, seen, _ = inputs
        now = min(now, reached)
        start = now - timedelta(seconds=rule.window_s)
        if any(self.first[m] > start for m in seen):
            return math.nan
        actual = 0.0
        for m in seen:
            for ts, amount, unit in self.energy.get(m, ()):
                f = _factor(unit, model.energy_unit)
                if start < ts <= now and f is not None:
                    actual += amount * f
        drivers: dict[str, float] = {}
        units: dict[str, str] = {}
        k = periods_in(model, rule.window_s / 3600)
        for name in model.drivers:
            v = self.variables.get(rule.drivers.get(name, name))
            if v is None or self.first.get(v.id, now) > start:
                return math.nan
            window = [w for w in self.samples.get(v.id, ()) if start < w[0] <= now]
            unit = window[-1][2] if window else v.unit
            same = [(w[1], w[3]) for w in window if w[2] == unit]   # a device keeps its unit; a change: the last
            try:
                if v.measure == "counter":
                    drivers[name], units[name] = sum(x for x, _ in same), unit
                elif v.degree_day_base_c is not None \
                        and _factor(DEGREE_DAY_UNIT, model.driver_units[name]) is not None:
                    hdd = heating_degree_days(same, v.degree_day_base_c, unit)
                    drivers[name], units[name] = hdd, DEGREE_DAY_UNIT
                else:
                    drivers[name], units[name] = time_weighted_mean(same) * k, unit
            except CalcError:
                return math.nan
        try:
            expected = expected_in_window(model, rule.window_s / 3600, drivers, units)
        except CalcError:
            return math.nan
        return deviation_pct(actual, expected)

