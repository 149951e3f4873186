"""The sites one API serves: per site its settings (plant), store reader, held reader and desk, live engine and
stream hub (a SiteContext), and the organisation that routes a request or an MQTT message to its site's context.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from api.held import HeldDesk
from api.live.live_sums import LiveState
from api.live.rule_runner import Engine
from api.live.stream import Hub
from api.live_rates import seed_factor_fallback
from api.notify import Notifier, Publish
from api.rulebook import RuleBook
from api.settings import Settings
from calc.baseline import Baseline
from calc.topics import ROOT
from ingest.store.base import HeldReader, Store
from records.baselines import Baselines
from records.db import ApiDb


@dataclass(frozen=True, slots=True)
class SiteContext:
    """Everything a request about one site reads: its plant (in `settings`), its own store (each site keeps its
    ingest and store), its held energy, its live engine and stream; the API database is the organisation's."""

    settings: Settings
    store: Store
    held: HeldReader
    held_desk: HeldDesk
    engine: Engine
    hub: Hub
    notifier: Notifier

    @property
    def site(self) -> str:
        return self.settings.plant.site.id


def site_context(settings: Settings, store: Store, held: HeldReader, db: ApiDb, book: RuleBook,
                 clock: Callable[[], datetime], publish: Publish) -> SiteContext:
    """One site's context: a live engine over its plant (its rules, alerts, allowances, time zone), its hub."""
    site = settings.plant.site.id
    hub = Hub()
    notifier = Notifier(db, site, settings.api.webhooks, publish)
    stored_baselines = Baselines(db)

    def active_baseline(baseline_id: str) -> Baseline | None:
        """The model in force for a deviation rule (blocking: the engine calls it in a worker thread)."""
        found = stored_baselines.latest_active(site, baseline_id)
        return found.model if found is not None else None

    engine = Engine(site, LiveState(settings.plant), book, notifier, hub, clock, baselines=active_baseline)
    seed_factor_fallback(engine.live, settings, clock())   # a live rate before the store holds any energy
    engine.load(None)
    return SiteContext(settings, store, held, HeldDesk(settings, held, db), engine, hub, notifier)


class Organisation:
    """The sites of one API, the first being the server's own (the default when a request names none)."""

    def __init__(self, sites: list[SiteContext]) -> None:
        if not sites:
            raise ValueError("an organisation has at least one site")
        self.primary = sites[0]
        self.by_id = {s.site: s for s in sites}

    def __iter__(self) -> Iterator[SiteContext]:
        return iter(self.by_id.values())

    def __len__(self) -> int:
        return len(self.by_id)

    def get(self, site: str | None) -> SiteContext:
        """The context of `site`; the primary's for none or an unknown one (whose request check_site then refuses
        as not found, exactly as a single-site server does)."""
        return self.by_id.get(site or "", self.primary)

    def engine_for(self, topic: str) -> Engine:
        """The engine of the site a topic names (carbonwatch/v1/{site}/...); the primary's for any other topic,
        which counts it as another site's or a bad message as it always has."""
        parts = topic.split("/")
        root = ROOT.split("/")
        site = parts[len(root)] if len(parts) > len(root) and parts[:len(root)] == root else ""
        return self.get(site).engine
