"""What the API knows live about each meter, from the reading stream: power, CO2e rate, period sums, quality.

Fed with reading messages as they arrive; answers the value of a rule's metric for its scope. Period sums
start from the store's totals (loaded once) and add only samples newer than what the store held then,
so nothing is counted twice.

The CO2e rate is calc.rate's, the one /v1/balance and SCADA report: latest flow sample × kg CO2e per unit of
the meter's stored energy (today's, else this month's). The flow is live: the latest sample of each quantity
comes from the stream as it arrives (seeded from the store's latest values). The per-unit ratio changes
slowly, so it is refreshed from the store's totals at a modest interval (`set_basis`, driven by the engine
every `rate_refresh_s`, and sooner when energy arrives for a meter that has no ratio yet) rather than
re-derived per message; once refreshed after the last sample, the live rate equals the store-read one
exactly (same inputs, same function).

The CO2e period sums (cumulative CO2e, intensity, allowance projection, the stream's today_co2e_kg) count
every carrier exactly as the store does: they start from the store's totals at start-up and then add the
co2e_kg of each message of ingest's derived CO2e stream (carbonwatch/v1/{site}/{area}/{meter}/co2e, one per
meter and stored batch, new points only), so each stored point is counted once, with the factor ingest used.
A message whose newest point (`to`) is at or before the start-up baseline's cut was already in the baseline
and is skipped. A message counts in the periods (in the site's time zone) of its newest point: ingest's live
batches span well under a second, so only a backlog batch straddling midnight is attributed to the later day.
Readings no longer add CO2e themselves (energy × grid factor counted electricity only).

The allowance projection is api.projection's, as /v1/balance makes it: used = the stored kg of the allowance's
boundary up to the cut (read by the engine) plus the co2e stream's kg since, in UTC hour buckets; the profile is
the engine's, rebuilt hourly. Production for intensity rules: api.live.production; the deviation rule's windows:
api.live.deviation.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache

from api.live.deviation import DeviationInputs
from api.live.production import Production
from api.live.virtual_live import value as virtual_value
from api.live.virtual_live import virtual_terms
from api.projection import LIVE_BURN_WINDOW, AllowanceProjection, project_allowance
from calc.balance import TimeRange
from calc.generation import Direction, direction_of
from calc.performance import HourOfWeekProfile
from calc.periods import resolve
from calc.plant import Plant
from calc.rate import MeterRate, TotalLike, kg_per_unit, meter_rates
from calc.rules import Metric, RuleSpec, ScopeKind
from calc.schema import Quality, ReadingMessage
from calc.units import UnitError, conversion_factor
from ingest.store.base import LatestValue

RECENT = LIVE_BURN_WINDOW  # burn-rate window of the live allowance projection while there is no history
PERIODS = ("today", "month", "year")
HOURS_KEPT = 24 * 400      # hourly CO2e buckets kept per meter (allowance periods of up to a year and a bit)
Boundary = tuple[str, str | None]   # (scope, target) of an allowance


@dataclass(frozen=True, slots=True)
class LiveAllowance:
    """An unvoided allowance as the live rule needs it."""

    id: int
    scope: str
    target: str | None
    start: datetime
    end: datetime
    amount_kg: float


def hour_of(ts: datetime) -> datetime:
    """The start of the UTC hour that holds `ts`."""
    return ts.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


@dataclass(frozen=True, slots=True)
class FlowSample:
    """The latest non-counter sample of one quantity of a meter (calc.rate.LatestLike)."""

    meter: str
    quantity: str
    ts: datetime
    value: float
    unit: str
    quality: str


@cache
def _converts(unit: str, energy_unit: str) -> bool:
    """Whether `unit` is a flow of `energy_unit` (cached: pint raising on every message would be slow)."""
    try:
        conversion_factor(unit, f"{energy_unit} / hour")
    except UnitError:
        return False
    return True


@dataclass
class MeterLive:
    meter: str
    area: str
    carrier: str
    line: str | None = None
    last_ts: datetime | None = None
    last_quality: str | None = None
    power_kw: float | None = None
    power_ts: datetime | None = None
    store_hwm: datetime | None = None     # samples at or before this were in the store's baseline
    period_kg: dict[str, tuple[datetime, float]] = field(default_factory=dict)   # name -> (period start, kg)
    product: dict[tuple[str, str], tuple[datetime, float]] = field(default_factory=dict)
    recent: deque[tuple[datetime, float]] = field(default_factory=deque)        # (ts, kg) within RECENT
    hours: dict[datetime, float] = field(default_factory=dict)   # hour start (of `to`) -> kg counted live
    flows: dict[str, FlowSample] = field(default_factory=dict)   # quantity -> latest non-counter sample
    basis: TotalLike | None = None        # stored totals the kg-per-unit ratio comes from (calc.rate)
    rate: MeterRate | None = None         # calc.rate's live rate from flows and basis; None: no rate known
    fallback: TotalLike | None = None     # the meter's current factor (calc.rate.FactorBasis) until energy is stored
    generates: bool = False               # it sent a *_generation counter: its power is made, not drawn (no rate)

    @property
    def co2e_rate_kg_per_h(self) -> float:
        """kg CO2e/h now (0 when the meter has no rate, as calc.rate.total_rate counts it)."""
        return self.rate.rate_kg_per_h if self.rate is not None else 0.0

    def update_rate(self) -> None:
        """Recompute the rate with calc.rate from the latest flows and the stored basis (else the factor's)."""
        basis = self.basis if kg_per_unit(self.basis) is not None else self.fallback
        if basis is None or self.generates:
            self.rate = None
            return
        usable = [f for f in self.flows.values() if _converts(f.unit, basis.energy_unit)]
        self.rate = meter_rates(usable, [self.basis] if self.basis else [], [], [self.fallback] if self.fallback
                                else []).get(self.meter)


@dataclass(frozen=True, slots=True)
class Update:
    """What one message changed, for the live stream."""

    meter: str
    area: str
    seq: int
    last_ts: datetime
    power_kw: float | None
    co2e_rate_kg_per_h: float | None      # None: no live rate (no flow sample or no stored energy yet)
    added_co2e_kg: float                  # 0 from readings: CO2e comes with ingest's co2e stream
    needs_basis: bool = False             # energy arrived for a meter without a stored ratio: refresh soon


class LiveState:
    """Per-meter live values of one site; not thread-safe (one event loop owns it)."""

    def __init__(self, plant: Plant) -> None:
        self.plant = plant
        self.tz = plant.site.timezone
        self.meters = {m.id: MeterLive(m.id, m.area, m.carrier.value, m.line) for m in plant.meters}
        self.production = Production(plant.variables, self.tz)
        self.deviation = DeviationInputs(plant)
        self.allowances: list[LiveAllowance] = []
        self.cut: datetime | None = None                 # the start-up baseline's cut (store_hwm of every meter)
        self.allowance_base: dict[int, float] = {}       # allowance id -> stored kg in [start, cut] of its boundary
        self.profiles: dict[Boundary, HourOfWeekProfile | None] = {}   # None: no history (burn rate)
        self.profiles_at: datetime | None = None         # the hour the profiles were built for
        self._bounds: dict[str, tuple[datetime, datetime]] = {}   # period -> the last bounds resolved

    def period_start(self, period: str, ts: datetime) -> datetime:
        """Start of the named period (site time zone) that holds `ts`; the last bounds are kept, since nearly
        every message falls in the same day as the one before (calc.periods.resolve per message was the fold's
        largest cost)."""
        known = self._bounds.get(period)
        if known is not None and known[0] <= ts < known[1]:
            return known[0]
        bounds = resolve(period, None, None, self.tz, ts)
        self._bounds[period] = (bounds.start, bounds.end)
        return bounds.start

    # ---- baseline ---------------------------------------------------------------------------------------

    def load_baseline(self, period: str, start: datetime, per_meter_kg: dict[str, float]) -> None:
        for m in self.meters.values():
            m.period_kg[period] = (start, per_meter_kg.get(m.meter, 0.0))

    def set_hwm(self, meter: str, last_ts: datetime | None) -> None:
        if meter in self.meters:
            self.meters[meter].store_hwm = last_ts
            if last_ts is not None and self.meters[meter].last_ts is None:
                self.meters[meter].last_ts = last_ts

    def set_basis(self, today: Iterable[TotalLike], month: Iterable[TotalLike]) -> None:
        """The kg-per-unit ratio of every meter from the store's totals (today's, else this month's, as
        calc.rate.meter_rates chooses), and the rates recomputed with it."""
        today_by = {t.meter: t for t in today}
        month_by = {t.meter: t for t in month}
        for m in self.meters.values():
            total = today_by.get(m.meter)
            m.basis = total if kg_per_unit(total) is not None else month_by.get(m.meter)
            m.update_rate()

    def seed_latest(self, latest: Iterable[LatestValue]) -> None:
        """Latest stored samples (store.latest_values): kept where the stream has nothing newer."""
        for s in latest:
            meter = self.meters.get(s.meter)
            if meter is None:
                continue
            known = meter.flows.get(s.quantity)
            if known is None or s.ts > known.ts:
                meter.flows[s.quantity] = FlowSample(s.meter, s.quantity, s.ts, s.value, s.unit, s.quality)
            meter.generates = meter.generates or direction_of(s.quantity) is Direction.GENERATION

    # ---- feeding ----------------------------------------------------------------------------------------

    def apply(self, message: ReadingMessage) -> Update | None:
        meter = self.meters.get(message.meter)
        if meter is None:
            return None
        flowed = counted = False
        if not meter.generates and any(direction_of(s.quantity) is Direction.GENERATION for s in message.samples):
            meter.generates = flowed = True   # a generation meter: no CO2e rate, and its power is not a load
        for s in sorted(message.samples, key=lambda s: s.ts):
            if s.delta is None and s.interval_s is None and "first" not in s.flags:   # not a counter: a flow?
                known = meter.flows.get(s.quantity)
                if known is None or s.ts >= known.ts:    # as the store keeps its latest (bad ones too)
                    meter.flows[s.quantity] = FlowSample(meter.meter, s.quantity, s.ts, s.value, s.unit,
                                                         s.quality.value)
                    flowed = True
            else:
                counted = counted or (s.delta is not None and s.delta > 0)
            if meter.last_ts is None or s.ts >= meter.last_ts:
                meter.last_ts, meter.last_quality = s.ts, s.quality.value
            if s.quality is Quality.BAD:
                continue
            if s.quantity == "active_power" and not meter.generates:
                try:
                    kw = s.value * conversion_factor(s.unit, "kW")
                except UnitError:
                    continue
                if meter.power_ts is None or s.ts >= meter.power_ts:
                    meter.power_kw, meter.power_ts = kw, s.ts
            elif s.delta is not None and direction_of(s.quantity) is Direction.IMPORT:
                fresh = meter.store_hwm is None or s.ts > meter.store_hwm
                if "energy" in s.quantity:
                    self._energy(meter, s.delta, s.unit, s.interval_s)
                elif fresh:
                    for (period, quantity), (start, amount) in list(meter.product.items()):
                        if quantity == s.quantity:
                            meter.product[(period, quantity)] = self._roll(period, start, amount, s.ts, s.delta)
                    for period in PERIODS:
                        if (period, s.quantity) not in meter.product:
                            meter.product[(period, s.quantity)] = (self.period_start(period, s.ts), s.delta)
        if flowed:
            meter.update_rate()
        if meter.last_ts is None:
            return None
        return Update(meter.meter, meter.area, message.seq, meter.last_ts, meter.power_kw,
                      meter.rate.rate_kg_per_h if meter.rate is not None else None, 0.0,
                      needs_basis=counted and meter.basis is None)

    def _roll(self, period: str, start: datetime, amount: float, ts: datetime, add: float) -> tuple[datetime, float]:
        now_start = self.period_start(period, ts)
        if now_start > start:
            return now_start, add         # a new period began: start again from zero
        if now_start < start:
            return start, amount          # a late sample of an earlier period: not this period's
        return start, amount + add

    @staticmethod
    def _energy(meter: MeterLive, delta: float, unit: str, interval_s: float | None) -> None:
        """An energy counter's delta gives the meter's mean power when no power sample is known."""
        if meter.power_ts is not None or not interval_s:
            return
        try:
            kwh = delta * conversion_factor(unit, "kWh")
        except UnitError:
            return
        meter.power_kw = kwh / (interval_s / 3600)

    def apply_co2e(self, meter_id: str, first: datetime, last: datetime, co2e_kg: float,
                   energy: Iterable[tuple[float, str]] = ()) -> bool:
        """One message of ingest's derived CO2e stream (points from `first` to `last`, `co2e_kg` in all):
        added to the meter's period sums unless the start-up baseline already held it. Whether it counted."""
        meter = self.meters.get(meter_id)
        if meter is None or (meter.store_hwm is not None and last <= meter.store_hwm):
            return False
        for period in PERIODS:
            known = meter.period_kg.get(period)
            start, total = known if known is not None else (self.period_start(period, last), 0.0)
            meter.period_kg[period] = self._roll(period, start, total, last, co2e_kg)
        meter.recent.append((last, co2e_kg))
        while meter.recent and meter.recent[0][0] <= last - RECENT:
            meter.recent.popleft()
        self._hour(meter, last, co2e_kg)
        self.deviation.apply_energy(meter_id, first, last, energy)
        return True

    @staticmethod
    def _hour(meter: MeterLive, ts: datetime, co2e_kg: float) -> None:
        hour = hour_of(ts)
        meter.hours[hour] = meter.hours.get(hour, 0.0) + co2e_kg
        while len(meter.hours) > HOURS_KEPT:
            del meter.hours[min(meter.hours)]

    def apply_released(self, meter_id: str, ts: datetime, co2e_kg: float) -> bool:
        """Held energy released through the API (a counted point at `ts`, stored by the API, not in ingest's CO2e
        stream nor in the start-up baseline): added to the period sums that hold `ts`. Whether it counted."""
        meter = self.meters.get(meter_id)
        if meter is None:
            return False
        for period in PERIODS:
            known = meter.period_kg.get(period)
            start, total = known if known is not None else (self.period_start(period, ts), 0.0)
            meter.period_kg[period] = self._roll(period, start, total, ts, co2e_kg)
        self._hour(meter, ts, co2e_kg)
        return True

    # ---- reading ----------------------------------------------------------------------------------------

    def in_scope(self, scope: ScopeKind, target: str | None) -> list[MeterLive]:
        if scope is ScopeKind.SITE:
            return list(self.meters.values())
        if scope is ScopeKind.AREA:
            return [m for m in self.meters.values() if m.area == target]
        if scope is ScopeKind.LINE:
            return [m for m in self.meters.values() if m.line == target]
        if target in self.meters:
            return [self.meters[target]]
        terms = virtual_terms(self.plant, scope, target)   # a virtual meter: its inputs (api.live.virtual_live)
        return [self.meters[t.meter] for t in terms or () if t.meter in self.meters]

    def period_kg(self, meters: list[MeterLive], period: str, now: datetime) -> float:
        start = self.period_start(period, now)
        return sum(kg for m in meters for s, kg in [m.period_kg.get(period, (start, 0.0))] if s == start)

    def value(self, rule: RuleSpec, now: datetime) -> float:
        """The rule's metric over its scope at `now` (NaN when it cannot be known yet)."""
        signed = virtual_value(self, rule, now)
        if signed is not None:
            return signed
        meters = self.in_scope(rule.scope, rule.target)
        if not meters:
            return math.nan
        metric = rule.metric
        if metric is Metric.POWER:
            return sum(m.power_kw or 0.0 for m in meters)
        if metric is Metric.CO2E_RATE:
            return sum(m.co2e_rate_kg_per_h for m in meters)
        if metric is Metric.CUMULATIVE_CO2E:
            return self.period_kg(meters, rule.period, now)
        if metric is Metric.INTENSITY:
            start = self.period_start(rule.period, now)
            product = self.production.amount(rule, now) + sum(
                a for m in meters for (p, q), (s, a) in m.product.items()
                if p == rule.period and q == rule.product_quantity and s == start)
            return self.period_kg(meters, rule.period, now) / product if product > 0 else math.nan
        if metric is Metric.DEVIATION:
            return self.deviation.value(rule, [m.meter for m in meters], now)
        if metric is Metric.DATA_QUALITY:
            seen = [m for m in meters if m.last_quality is not None]
            return sum(m.last_quality != Quality.GOOD.value for m in seen) / len(seen) if seen else math.nan
        if metric is Metric.METER_OFFLINE:
            silent = [(now - m.last_ts).total_seconds() if m.last_ts else math.inf for m in meters]
            return max(silent)
        made = self.allowance_projection(rule, now)
        return made.check.projection.projected_ratio if made is not None else math.nan

    def allowance_at(self, scope: str, target: str | None, at: datetime) -> LiveAllowance | None:
        """The newest allowance of the boundary whose period holds `at` (as records.ledger.allowance_at)."""
        found = [a for a in self.allowances if (a.scope, a.target) == (scope, target) and a.start <= at < a.end]
        return max(found, key=lambda a: a.id) if found else None

    def allowance_used(self, allowance: LiveAllowance) -> float | None:
        """kg CO2e of the boundary since the allowance's start: the stored part up to the start-up cut plus what
        ingest's CO2e stream brought since (hour buckets from the allowance's start hour on); None until the
        stored part has been read."""
        base = self.allowance_base.get(allowance.id)
        if base is None:
            return None
        first = hour_of(allowance.start)
        meters = self.in_scope(ScopeKind(allowance.scope), allowance.target)
        return base + sum(kg for m in meters for h, kg in m.hours.items() if first <= h < allowance.end)

    def allowance_projection(self, rule: RuleSpec, now: datetime) -> AllowanceProjection | None:
        """The projection /v1/balance reports for the rule's boundary (api.projection), None until known."""
        allowance = self.allowance_at(rule.scope.value, rule.target, now)
        if allowance is None:
            return None
        used = self.allowance_used(allowance)
        boundary = (allowance.scope, allowance.target)
        if used is None or boundary not in self.profiles:
            return None
        meters = self.in_scope(rule.scope, rule.target)
        recent = sorted(p for m in meters for p in m.recent)
        return project_allowance(used, allowance.amount_kg, now, TimeRange(start=allowance.start, end=allowance.end),
                                 self.profiles[boundary], recent, RECENT)
