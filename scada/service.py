"""The SCADA service: the live feed signals, the figures are recomputed from the store and the API database (at most
every min_interval_s while messages stream in, at least every refresh_s), and each enabled server gets the new
snapshot. A failed read keeps the last figures, marked Uncertain, and is retried; it never stops the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Protocol

from calc.coal import CoalError
from calc.factors import default_factor_set
from calc.plant_coal import plant_coal_book
from calc.rate import factor_bases
from calc.schema import Quality
from calc.table import FactorTable
from ingest.store import open_reader
from ingest.store.base import StoreError, StoreReader
from records.base import RecordsUnreadable
from scada.config import ScadaConfig
from scada.figures import Figure, Figures, Snapshot, collect, compute
from scada.ledger import ApiRecords
from scada.live import LiveFeed

log = logging.getLogger("carbonwatch.scada")


class Sink(Protocol):
    """A server that shows the figures (OPC UA, Sparkplug B, Modbus)."""

    async def start(self, snapshot: Snapshot) -> None: ...

    async def update(self, snapshot: Snapshot) -> None: ...

    async def stop(self) -> None: ...


def degrade(snapshot: Snapshot, at: datetime) -> Snapshot:
    """The last figures, marked Uncertain (a read failed): shown as last usable values, never as fresh."""
    items = {}
    for key, figs in snapshot.items.items():
        marked = {n: Figure(f.value, f.ts, Quality.UNCERTAIN if f.quality is Quality.GOOD else f.quality)
                  for n, f in figs.figures.items()}
        items[key] = Figures(figs.boundary, marked, figs.alert_state, figs.active_alerts, figs.alerts_ts)
    return replace(snapshot, items=items, at=at, version=snapshot.version + 1)


class ScadaService:
    def __init__(self, config: ScadaConfig, sinks: list[Sink] | None = None, store: StoreReader | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.config = config
        self.clock = clock or (lambda: datetime.now(UTC))
        self.store = store
        self.ledger = ApiRecords(config.api_db_path)
        self.sinks: list[Sink] = sinks if sinks is not None else default_sinks(config)
        self.snapshot: Snapshot | None = None
        # kgce of each meter (the plant file's factors, conditions and [standard_coal], as the API's) and the
        # factor table behind the rate's fallback basis; built once (the recipes hardly change with time)
        try:
            self.book = plant_coal_book(default_factor_set(), config.plant, config.data, self.clock().date())
        except CoalError as exc:   # a bad [standard_coal]: the CO2e figures still serve, kgce is unknown
            log.error("scada: no kgce figures: %s", exc)
            empty = {k: v for k, v in config.data.items() if k != "standard_coal"}
            self.book = replace(plant_coal_book(default_factor_set(), config.plant, empty, self.clock().date()),
                                refused=str(exc))
        self.table = FactorTable.build(self.book.plant_factors, config.plant)
        self.version = 0
        self.last_error: str | None = None
        self.refreshes = 0
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        site = config.site
        self.feed = LiveFeed(config.mqtt, site, config.scada.client_id or f"carbonwatch-scada-{site}", self._poke)

    def _poke(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

    def _read(self) -> Snapshot:
        if self.store is None:
            self.store = open_reader(self.config.data, self.config.base_dir)
        now = self.clock()
        inputs = collect(self.config.plant, self.store, self.ledger, now, self.feed.times.snapshot(), self.book,
                         factor_bases(self.table, now.timestamp()))
        self.version += 1
        return compute(self.config.plant, inputs, self.config.scada.stale_after_s, self.version)

    async def refresh(self) -> Snapshot:
        """Recompute the figures now (in a worker thread: the reads block)."""
        try:
            snap = await asyncio.to_thread(self._read)
            self.last_error = None
        except (StoreError, RecordsUnreadable, sqlite3.Error, OSError) as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.error("scada: reading the figures failed, keeping the last ones: %s", self.last_error)
            if self.snapshot is None:
                raise
            snap = degrade(self.snapshot, self.clock())
        self.snapshot = snap
        self.refreshes += 1
        return snap

    async def run(self, stop: asyncio.Event, ready: asyncio.Event | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        snap = await self._first_snapshot(stop)
        if snap is None:
            return
        started: list[Sink] = []
        try:
            for sink in self.sinks:
                await sink.start(snap)
                started.append(sink)
            self.feed.start()
            if ready is not None:
                ready.set()
            await self._loop_until(stop)
        finally:
            self.feed.stop()
            for sink in reversed(started):
                with contextlib.suppress(Exception):  # one server failing to stop must not keep the others up
                    await sink.stop()
            self.ledger.close()
            if self.store is not None:
                self.store.close()

    async def _first_snapshot(self, stop: asyncio.Event) -> Snapshot | None:
        delay = 0.5
        while not stop.is_set():
            try:
                return await self.refresh()
            except (StoreError, RecordsUnreadable, sqlite3.Error, OSError):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                delay = min(delay * 2, 10.0)
        return None

    async def _loop_until(self, stop: asyncio.Event) -> None:
        s = self.config.scada
        last = time.monotonic()
        stopper = asyncio.create_task(stop.wait(), name="scada-stop")
        try:
            while not stop.is_set():
                waker = asyncio.create_task(self._wake.wait(), name="scada-wake")
                await asyncio.wait({waker, stopper}, timeout=s.refresh_s, return_when=asyncio.FIRST_COMPLETED)
                waker.cancel()
                if stop.is_set():
                    return
                pause = s.min_interval_s - (time.monotonic() - last)
                if pause > 0:  # coalesce a burst of messages into one recompute
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), pause)
                self._wake.clear()
                last = time.monotonic()
                snap = await self.refresh()
                for sink in self.sinks:
                    try:
                        await sink.update(snap)
                    except Exception:  # one server's failure must not starve the others
                        log.exception("scada: updating %s failed", type(sink).__name__)
        finally:
            stopper.cancel()


def default_sinks(config: ScadaConfig) -> list[Sink]:
    """The servers switched on in [scada] (imported only when enabled)."""
    s = config.scada
    sinks: list[Sink] = []
    if s.opcua.enabled:
        from scada.opcua_server import OpcUaSink

        sinks.append(OpcUaSink(s.opcua, config.site, config.resolve(s.opcua.cert_dir)))
    if s.sparkplug.enabled:
        from scada.sparkplug import SparkplugSink

        sinks.append(SparkplugSink(s.sparkplug, config.mqtt, config.site, config.resolve(s.sparkplug.state_file)))
    if s.modbus.enabled:
        from scada.modbus_server import ModbusSink

        sinks.append(ModbusSink(s.modbus))
    return sinks
