"""The FastAPI application: wires settings, keys, the store reader, the API database and the live engine to the
routers (one per resource, all under /v1; "/" is left for the dashboard).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response

from api import dashboard
from api.auth import KeyRing
from api.entry_sender import EntrySender
from api.errors import ApiError, Invalid, error_response
from api.limits import BodyLimit
from api.live.co2e_feed import CO2E_FILTER
from api.live.mqtt_feed import Inbox, MqttLink
from api.live.rule_runner import Engine
from api.records_watch import RecordsWatch
from api.routes import (
    activity,
    alerts,
    allowances,
    audit,
    balance,
    baselines,
    factors,
    health,
    held,
    history,
    instruments,
    keys,
    measures,
    meter_register,
    meters,
    nonconformities,
    offsets,
    organisation,
    performance,
    reconciliation,
    reports,
    rules,
    stream,
    targets,
    variables,
)
from api.rulebook import RuleBook
from api.settings import Settings
from api.sites import Organisation, site_context
from calc.topics import READING_FILTER
from ingest.store.base import HeldReader, Store, StoreError, StoreReader
from records.db import ApiDb
from records.keys import KeyRevocations

log = logging.getLogger("carbonwatch.api")
Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


async def _consume(org: Organisation, inbox: Inbox) -> None:
    while True:
        for topic, payload, received in await inbox.take():
            await org.engine_for(topic).handle(topic, payload, received)


async def _flusher(org: Organisation, every_s: float = 1.0) -> None:
    """The live stream's aggregates of each site, at most once every `every_s`."""
    while True:
        await asyncio.sleep(every_s)
        for site in org:
            site.engine.flush()


async def _ticker(org: Organisation, every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        for site in org:
            await site.engine.tick()


async def _rate_refresher(engine: Engine, store: StoreReader, every_s: float, soonest_s: float = 1.0) -> None:
    """Re-read the live rate's kg-per-unit ratios every `every_s`, or at once when a meter got energy without
    having a ratio (at most one refresh per `soonest_s`: ingest may not have stored that energy yet)."""
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(engine.basis_wanted.wait(), every_s)
        engine.basis_wanted.clear()
        try:
            await engine.refresh_rates(store)
        except (StoreError, OSError, sqlite3.Error) as exc:   # the store is away: keep the last ratios, retry
            log.warning("live rate basis not refreshed from the store: %s", exc)
        await asyncio.sleep(soonest_s)


async def _api_error(request: Request, exc: Exception) -> Response:
    """An ApiError as its status and `{"detail": message}` (an Invalid in FastAPI's validation format)."""
    if isinstance(exc, Invalid):
        return await request_validation_exception_handler(request, RequestValidationError(
            [{"loc": list(exc.where), "msg": str(exc), "type": "value_error"}]))
    if isinstance(exc, ApiError):
        return error_response(exc)
    return JSONResponse({"detail": str(exc)}, status_code=500)


def add_error_handlers(app: FastAPI) -> None:
    """The one place where the API's domain errors (api.errors) become HTTP responses."""
    app.add_exception_handler(ApiError, _api_error)


def create_app(settings: Settings, store: Store, keyring: KeyRing | None = None,
               clock: Clock | None = None, db: ApiDb | None = None, held_reader: HeldReader | None = None,
               sites: Sequence[tuple[Settings, Store]] = ()) -> FastAPI:
    """The app over `store` (the whole ingest.store.base.Store contract: totals, series, latest values, held
    energy...); held energy is read and decided through `held_reader`, by default the store itself. `sites`: the
    organisation's other sites this API serves, each with its own store (api.settings.load_sites)."""
    clock = clock or _utcnow
    db = db or ApiDb(settings.db_path, clock)
    book = RuleBook(db)
    ring = keyring or KeyRing.load(settings.keys_path)
    ring.revoked = KeyRevocations(db).revoked()
    link: MqttLink | None = None

    def publish(topic: str, payload: bytes) -> None:
        if link is not None:
            link.publish(topic, payload, qos=1)

    org = Organisation([site_context(settings, store, held_reader if held_reader is not None else store, db, book,
                                     clock, publish)]
                       + [site_context(s, st, st, db, book, clock, publish) for s, st in sites])
    primary = org.primary
    # calibration overdue, actions overdue, milestones missed: one watch per site
    watches = [RecordsWatch(db, s.settings, s.store, s.notifier, s.hub, clock) for s in org]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nonlocal link
        tasks: list[asyncio.Task[None]] = []
        for site in org:
            site.engine.bind(asyncio.get_running_loop())
            await asyncio.to_thread(site.engine.load, site.store)
        if settings.api.live:
            inbox = Inbox(asyncio.get_running_loop())
            link = MqttLink(settings.mqtt, settings.client_id, inbox.put,
                            (READING_FILTER, CO2E_FILTER), clean_session=not settings.persistent_session)
            app.state.mqtt = link
            link.start()
            tasks.append(asyncio.create_task(_consume(org, inbox), name="live evaluation"))
            tasks.append(asyncio.create_task(_flusher(org), name="live stream aggregates"))
            tasks.append(asyncio.create_task(_ticker(org, settings.api.tick_s), name="clock rules"))
            for site in org:
                tasks.append(asyncio.create_task(_rate_refresher(site.engine, site.store,
                                                                 settings.api.rate_refresh_s),
                                                 name=f"live rate basis {site.site}"))
        for watch in watches:
            tasks.append(asyncio.create_task(watch.run(settings.api.tick_s), name=f"records watch {watch.site}"))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if link is not None:
                await asyncio.to_thread(link.stop)
            for site in org:
                await site.notifier.drain()
                site.store.close()
            db.close()

    app = FastAPI(title="carbonwatch", version="1", lifespan=lifespan,
                  description="Live plant-floor carbon emissions: balances, history, meters, factor sets, "
                              "operating criteria and alerts, energy baselines and actual vs expected, held energy "
                              "(release or reject), allowances, offsets, contractual instruments, "
                              "reports, the audit log and a live stream. Every call needs an API key "
                              "(`Authorization: Bearer KEY` or `X-API-Key`) except /healthz.")
    app.state.org = org   # requests reach a site's settings, store, engine... through api.deps (?site=)
    app.state.settings = settings
    app.state.store = store
    app.state.held = primary.held
    app.state.held_desk = primary.held_desk
    app.state.keyring = ring
    app.state.db = db
    app.state.book = book
    app.state.engine = primary.engine
    app.state.hub = primary.hub
    app.state.clock = clock
    app.state.mqtt = None
    app.state.entry_sender = EntrySender(settings.mqtt)   # manual entries reach ingest through the broker
    app.state.records_watch = watches[0]   # the primary site's (tests drive its checks)
    if settings.api.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.api.cors_origins),
                           allow_methods=["GET", "POST", "PUT", "DELETE"],
                           allow_headers=["Authorization", "X-API-Key", "Content-Type"])
    app.add_middleware(BodyLimit, max_bytes=settings.api.max_body_bytes)
    add_error_handlers(app)
    for module in (health, meters, balance, history, held, factors, rules, alerts, allowances, offsets, instruments,
                   reports, audit, keys, stream, baselines, performance, variables, targets, measures,
                   meter_register, nonconformities, activity, organisation, reconciliation):
        app.include_router(module.router)
    app.include_router(dashboard.router)  # the static page at "/" (no data in it; it calls the API with a key)
    return app
