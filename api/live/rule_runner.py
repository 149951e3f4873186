"""Live evaluation: each reading message updates the live state, each message of ingest's derived CO2e stream
adds its stored kg CO2e (every carrier) to the period sums, the rules of its scope are evaluated at the
sample's time, alert transitions are stored, notified and streamed. Time-based rules (meter offline) are
evaluated on `tick(now)` with an injected clock; the live CO2e rate's per-unit ratio is refreshed from the
store on `refresh_rates(store)` (calc.rate's definition, as /v1/balance reports it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from api.live import co2e_feed
from api.live.aggregate import Pending, aggregate, meter_doc, snapshot
from api.live.deviation import BaselineLookup
from api.live.live_sums import PERIODS, Boundary, LiveAllowance, LiveState, MeterLive, hour_of
from api.live.stream import Hub
from api.live.virtual_live import touches as virtual_touches
from api.live_rates import RateInputs, rate_inputs
from api.notify import Notifier
from api.projection import expected_profile, hourly_history, in_boundary
from api.rulebook import RuleBook, StoredRule, alert_doc
from calc import topics
from calc.baseline import Baseline
from calc.performance import HourOfWeekProfile
from calc.periods import resolve
from calc.rules import Metric, Phase, RuleState, ScopeKind, Transition, evaluate
from calc.schema import ReadingMessage, decode
from ingest.store.base import StoreReader
from records.ledger import Ledger

log = logging.getLogger("carbonwatch.api")
CLOCK_METRICS = frozenset({Metric.METER_OFFLINE})
SUM_METRICS = frozenset({Metric.CUMULATIVE_CO2E, Metric.INTENSITY, Metric.ALLOWANCE_PROJECTION, Metric.DEVIATION})
LATE_METRICS = CLOCK_METRICS | {Metric.DEVIATION}   # not evaluated on a meter's reading (its energy comes later)


@dataclass
class Counters:
    messages: int = 0
    bad_messages: int = 0
    other_site: int = 0
    evaluations: int = 0
    fired: int = 0
    resolved: int = 0
    last_message: float = 0.0


class Engine:
    def __init__(self, site: str, live: LiveState, book: RuleBook, notifier: Notifier, hub: Hub,
                 clock: Callable[[], datetime] | None = None, baselines: BaselineLookup | None = None) -> None:
        self.site = site
        self.live = live
        self.book = book
        self.notifier = notifier
        self.hub = hub
        self.clock = clock or (lambda: datetime.now(UTC))
        self.rules: list[StoredRule] = []
        self.states: dict[str, RuleState] = {}
        self.open: dict[str, int] = {}   # rule id -> open alert id
        self.counters = Counters()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.basis_wanted = asyncio.Event()   # set when a meter got energy but has no stored kg-per-unit yet
        self.baselines = baselines            # baseline id -> active model (deviation rules); None: no models
        self.pending = Pending()              # what the stream has not had yet (api.live.aggregate)
        self.flushed_at = time.monotonic()

    # ---- start-up ---------------------------------------------------------------------------------------

    def load(self, store: StoreReader | None) -> None:
        """Rules, open alerts (so a restart does not fire them again), allowances and the store's baseline."""
        self.reload_rules()
        for alert in self.book.open_alerts(self.site):
            self.open[alert.rule] = alert.id
            self.states[alert.rule] = RuleState(Phase.FIRING, datetime.fromisoformat(alert.fired_at), None)
        self.reload_allowances()
        if store is None:
            return
        self.apply_rate_inputs(self.read_rate_inputs(store))
        summaries = store.meter_summaries(self.site)
        seen = [s.last_ts for s in summaries if s.last_ts is not None]
        cut = max(seen) if seen else None
        for m in self.live.meters:
            self.live.set_hwm(m, cut)
        self.live.production.set_hwm(cut)
        self.live.deviation.set_hwm(cut)
        self.live.deviation.models = self.read_models()
        for s in summaries:
            if s.meter in self.live.meters:
                self.live.meters[s.meter].last_ts = s.last_ts
                self.live.meters[s.meter].last_quality = s.last_quality
        self.live.cut = cut
        self.live.allowance_base.clear()
        self.apply_projection_inputs(self.read_projection_inputs(store))
        if cut is None:
            return
        end = cut + timedelta(microseconds=1)
        for period in PERIODS:
            bounds = resolve(period, None, None, self.live.tz, self.clock())
            totals = store.totals(self.site, bounds.start, end) if end > bounds.start else []
            self.live.load_baseline(period, bounds.start, {t.meter: t.co2e_kg for t in totals})
            if self.live.production.variables:
                made = store.variable_totals(self.site, bounds.start, end) if end > bounds.start else []
                self.live.production.load_baseline(period, bounds.start,
                                                   {v.variable: v.total or 0.0 for v in made if v.total is not None})

    def read_models(self) -> dict[str, Baseline | None]:
        """The active model of each baseline a deviation rule names (blocking: the lookup may read a database)."""
        lookup = self.baselines
        wanted = {r.spec.baseline_id for r in self.rules if r.spec.metric is Metric.DEVIATION and r.spec.baseline_id}
        return {b: lookup(b) for b in sorted(wanted)} if lookup is not None else {}

    def reload_rules(self) -> None:
        self.rules = self.book.current(self.site)
        if any(r.spec.metric is Metric.DEVIATION for r in self.rules):
            self._on_loop(self.basis_wanted.set)   # read the models they name soon
        live_ids = {r.id for r in self.rules}
        for rule_id in list(self.states):
            if rule_id not in live_ids and rule_id not in self.open:
                del self.states[rule_id]

    def reload_allowances(self) -> None:
        """The unvoided allowances; a new one's stored part and its boundary's profile are read at the next
        refresh, which this asks for (allowance rules on it wait until then)."""
        self.live.allowances = [LiveAllowance(a.id, a.scope, a.target, a.start, a.end, a.amount_kg)
                                for a in Ledger(self.book.db).allowances(self.site)]
        self._on_loop(self.basis_wanted.set)

    # ---- the allowance projection's inputs (api.projection) -----------------------------------------------

    def projection_due(self) -> bool:
        """Whether a profile or an allowance's stored part is missing, or the hour turned since the profiles."""
        live = self.live
        return (live.profiles_at != hour_of(self.clock())
                or any(a.id not in live.allowance_base or (a.scope, a.target) not in live.profiles
                       for a in live.allowances))

    def read_projection_inputs(self, store: StoreReader,
                               ) -> tuple[datetime, dict[int, float], dict[Boundary, HourOfWeekProfile | None]]:
        """The stored kg of each allowance's boundary up to the start-up cut (those not read yet) and the
        hour-of-week profile of every allowance boundary at the engine's clock (blocking: run it in a thread)."""
        live, now = self.live, self.clock()
        bases: dict[int, float] = {}
        cut = live.cut
        for a in live.allowances:
            if a.id in live.allowance_base:
                continue
            end = min(a.end, cut + timedelta(microseconds=1)) if cut is not None else a.start
            totals = store.totals(self.site, a.start, end) if end > a.start else []
            bases[a.id] = sum(t.co2e_kg for t in totals if in_boundary(t, a.scope, a.target))
        profiles: dict[Boundary, HourOfWeekProfile | None] = {}
        for scope, target in {(a.scope, a.target) for a in live.allowances}:
            hourly = hourly_history(store, self.site, now, scope, target)
            profiles[(scope, target)] = expected_profile(hourly, live.tz)
        return hour_of(now), bases, profiles

    def apply_projection_inputs(
            self, inputs: tuple[datetime, dict[int, float], dict[Boundary, HourOfWeekProfile | None]]) -> None:
        at, bases, profiles = inputs
        self.live.allowance_base.update(bases)
        self.live.profiles = profiles
        self.live.profiles_at = at

    async def refresh_projection(self, store: StoreReader) -> None:
        """Rebuild the allowance profiles when the hour turned (or an allowance is new), off the event loop."""
        if self.projection_due():
            self.apply_projection_inputs(await asyncio.to_thread(self.read_projection_inputs, store))

    # ---- the live rate's basis ---------------------------------------------------------------------------

    def read_rate_inputs(self, store: StoreReader) -> RateInputs | None:
        """The store reads behind calc.rate at the engine's clock (blocking: run it in a worker thread)."""
        return rate_inputs(store, self.site, self.live.tz, self.clock())

    def apply_rate_inputs(self, inputs: RateInputs | None) -> list[str]:
        """Latest stored samples (where the stream has nothing newer) and the kg-per-unit ratios; the meters
        whose rate changed."""
        if inputs is None:
            return []
        before = {m.meter: m.rate for m in self.live.meters.values()}
        self.live.seed_latest(inputs.latest)
        self.live.set_basis(inputs.today, inputs.month)
        return [m.meter for m in self.live.meters.values() if m.rate != before[m.meter]]

    async def refresh_rates(self, store: StoreReader) -> None:
        """Refresh the rate basis from the store; changed rates go to the stream (meters, then the balance)."""
        await self.refresh_projection(store)
        if self.baselines is not None:
            self.live.deviation.models = await asyncio.to_thread(self.read_models)
        changed = self.apply_rate_inputs(await asyncio.to_thread(self.read_rate_inputs, store))
        for name in changed:
            m = self.live.meters[name]
            if self.hub.watched(name):
                self.hub.publish_meter(name, meter_doc(m, None, None))
            self.pending.changed.add(name)
            self.pending.dirty = True

    # ---- feeding ----------------------------------------------------------------------------------------

    async def handle(self, topic: str, payload: bytes, received: float) -> None:
        """One MQTT message; bad input is counted (ingest dead-letters it) and never raises."""
        self.counters.messages += 1
        self.counters.last_message = received
        if topic.endswith("/co2e"):
            await self.handle_co2e(topic, payload, received)
            return
        try:
            path = topics.parse_meter_topic(topic)
            message: ReadingMessage = decode(payload)
        except (topics.TopicError, ValidationError, ValueError):
            self.counters.bad_messages += 1
            return
        if path.site != self.site:
            self.counters.other_site += 1
            return
        if message.meter in self.live.deviation.variables:
            if self.live.deviation.apply_reading(message):
                for rule in self.rules:
                    if rule.spec.metric is Metric.DEVIATION:
                        await self._observe(rule, self.clock())
            if message.meter in self.live.production.variables:
                await self.handle_production(message)
            return
        update = self.live.apply(message)
        if update is None:
            return
        if update.needs_basis:
            self.basis_wanted.set()
        meter = self.live.meters[update.meter]
        self.pending.reading(meter, update.last_ts, received)
        if self.hub.watched(update.meter):
            self.hub.publish_meter(update.meter, meter_doc(meter, update.seq, received))
        for rule in self.rules:
            if rule.spec.metric in LATE_METRICS or not self._touches(rule, meter):
                continue
            await self._observe(rule, update.last_ts)

    async def handle_co2e(self, topic: str, payload: bytes, received: float) -> None:
        """A message of ingest's derived CO2e stream (per meter or per site): each meter's kg CO2e join its period
        sums, then the cumulative rules it touches are evaluated once at the newest point; a bad message is
        counted and logged, never raised."""
        try:
            site, parts = co2e_feed.parse(topic, payload)
        except co2e_feed.Co2eError as exc:
            self.counters.bad_messages += 1
            log.warning("bad co2e message on %r: %s", topic, exc)
            return
        if site != self.site:
            self.counters.other_site += 1
            return
        touched: dict[str, datetime] = {}   # rule id -> newest point of its meters in this message
        for part in parts:
            energy = [(p.energy, p.energy_unit) for p in part.by_factor]
            if not self.live.apply_co2e(part.meter, part.first, part.last, part.co2e_kg, energy):
                continue
            m = self.live.meters[part.meter]
            self.pending.co2e(m, part.co2e_kg, received)
            if self.hub.watched(m.meter):
                self.hub.publish_meter(m.meter, meter_doc(m, None, received, part.co2e_kg))
            for rule in self.rules:
                if rule.spec.metric in SUM_METRICS and self._touches(rule, m):
                    touched[rule.id] = max(touched.get(rule.id, part.last), part.last)
        for rule in self.rules:
            if rule.id in touched:
                await self._observe(rule, touched[rule.id])

    async def handle_production(self, message: ReadingMessage) -> None:
        """A reading of a production variable: counted once, then the intensity rules that divide by it are
        evaluated at its newest sample."""
        variable = self.live.production.apply(message)
        if variable is None:
            return
        at = variable.hwm or self.clock()
        for rule in self.rules:
            if rule.spec.metric is Metric.INTENSITY and variable in self.live.production.matching(rule.spec):
                await self._observe(rule, at)

    async def tick(self, now: datetime | None = None) -> None:
        """Evaluate the clock-driven rules (meter offline) at `now` (default: the engine's clock)."""
        at = now or self.clock()
        for rule in self.rules:
            if rule.spec.metric in CLOCK_METRICS:
                await self._observe(rule, at)

    def _touches(self, rule: StoredRule, meter: MeterLive) -> bool:
        spec = rule.spec
        return (spec.scope is ScopeKind.SITE or (spec.scope is ScopeKind.AREA and spec.target == meter.area)
                or (spec.scope is ScopeKind.LINE and spec.target == meter.line)
                or (spec.scope is ScopeKind.METER and spec.target == meter.meter)
                or virtual_touches(self.live.plant, spec, meter.meter))   # a virtual meter's input

    async def _observe(self, rule: StoredRule, ts: datetime) -> None:
        if rule.spec.metric is Metric.DEVIATION:
            # observed at the end of the window its value stands for (where every input has reached)
            meters = [m.meter for m in self.live.in_scope(rule.spec.scope, rule.spec.target)]
            reached = self.live.deviation.reached(rule.spec, meters)
            if reached is None:
                return
            ts = min(ts, reached)
        value = self.live.value(rule.spec, ts)
        self.counters.evaluations += 1
        outcome = evaluate(rule.spec, self.states.get(rule.id, RuleState()), value, ts, self.live.tz)
        self.states[rule.id] = outcome.state
        if outcome.transition is Transition.FIRE and rule.id not in self.open:
            row = await asyncio.to_thread(self.book.fire, self.site, rule, value, ts.isoformat())
            self.open[rule.id] = row["id"]
            self.counters.fired += 1
            self._announce("fire", alert_doc(row))
        elif outcome.transition is Transition.CLEAR and rule.id in self.open:
            alert_id = self.open.pop(rule.id)
            row = await asyncio.to_thread(self.book.resolve, self.site, alert_id, value, ts.isoformat())
            self.counters.resolved += 1
            self._announce("resolve", alert_doc(row))

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The event loop that owns the stream and the webhook tasks (routes run in worker threads)."""
        self.loop = loop

    def _on_loop(self, call: Callable[..., None], *args: Any) -> None:
        """Run `call(*args)` in the loop that owns the live state and the stream: now when already there (or
        none is bound), else handed over to it (a closed loop takes nothing)."""
        loop = self.loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is not None and running is not loop:
            if not loop.is_closed():
                loop.call_soon_threadsafe(call, *args)
            return
        call(*args)

    def _announce(self, transition: str, alert: dict[str, Any]) -> None:
        self._on_loop(self._announce_now, transition, alert)

    def _announce_now(self, transition: str, alert: dict[str, Any]) -> None:
        self.notifier.send(transition, alert)
        self.hub.publish("alert", {"transition": transition, **alert})

    def released(self, meter: str, ts: datetime, co2e_kg: float) -> None:
        """Held energy released through the API now counts at `ts`: the live period sums take it (in the loop
        that owns the live state; routes run in worker threads)."""
        self._on_loop(self._released_now, meter, ts, co2e_kg)

    def _released_now(self, meter: str, ts: datetime, co2e_kg: float) -> None:
        if self.live.apply_released(meter, ts, co2e_kg):
            self.pending.co2e(self.live.meters[meter], co2e_kg, None)

    def acknowledged(self, alert: dict[str, Any]) -> None:
        self._announce("acknowledge", alert)

    def resolved_by_hand(self, rule_id: str, alert: dict[str, Any]) -> None:
        self.open.pop(rule_id, None)
        self.states[rule_id] = RuleState()
        self._announce("resolve", alert)

    def snapshot(self, now: datetime) -> dict[str, Any]:
        return snapshot(self.site, self.live, now)

    def flush(self) -> None:
        """Send what arrived since the last flush (main.py calls it once a second): one `aggregate` and one
        `balance` event, and each changed meter's latest state to the `meters=all` subscribers."""
        pending, at = self.pending, time.monotonic()
        if not pending.dirty:
            return
        self.pending = Pending()
        doc, balance = aggregate(self.site, self.live, pending, self.clock(), at - self.flushed_at)
        self.flushed_at = at
        self.hub.publish("aggregate", doc)
        self.hub.publish("balance", balance)
        if self.hub.coalesced:
            self.hub.publish_coalesced([meter_doc(self.live.meters[m], None, None) for m in sorted(pending.changed)])
