"""The store interface: what ingest writes and what the API reads (the one part of ingest others import)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class MeterSummary:
    """What the store knows of a meter: where it is and its latest sample."""

    meter: str
    site: str
    area: str
    carrier: str
    last_ts: datetime | None
    last_quality: str | None
    samples: int


@dataclass(frozen=True, slots=True)
class MeterTotal:
    """Sums of one meter's stored points over a period."""

    meter: str
    site: str
    area: str
    carrier: str
    scope: str
    energy: float          # in energy_unit
    energy_unit: str       # e.g. "kWh"
    co2e_kg: float
    points: int
    factor_ids: tuple[str, ...] = field(default=())
    factor_versions: tuple[str, ...] = field(default=())


class StoreReader(Protocol):
    """Read side of a store, as the API uses it."""

    def meter_summaries(self, site: str) -> list[MeterSummary]: ...

    def totals(self, site: str, start: datetime, end: datetime) -> list[MeterTotal]:
        """Per-meter sums of points with start <= ts < end (UTC)."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class LatestValue:
    """The latest stored sample of one quantity of a meter (live power, latest counter, its quality)."""

    meter: str
    site: str
    quantity: str
    ts: datetime
    value: float
    unit: str
    quality: str
    flags: tuple[str, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    """Input that was not stored as a point, with the reason (schema error, unknown meter, conflict...)."""

    id: int
    received: datetime
    topic: str
    meter: str | None
    seq: int | None
    index: int | None
    reason: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What one write did: new points, exact duplicates skipped, conflicts refused (never overwritten)."""

    stored: int = 0
    duplicates: int = 0
    conflicts: int = 0
    dead_lettered: int = 0
    # Keys (meter, ts_us, quantity) of the points stored by this write, or None when every point of the batch
    # was (a stored point's full key adds its site, batch.meters[meter].site: one site per meter id in a batch).
    new_keys: frozenset[tuple[str, int, str]] | None = None


class StoreError(RuntimeError):
    """The store cannot be reached or is not working (down, disk full, I/O error, timeout): a later try of the
    same batch may succeed, so ingest buffers and retries, nothing is dropped."""


class StoreDataError(ValueError):
    """The store refused a batch for what it holds, not because it is down (a value it cannot represent, a
    type clash): the same batch would fail again. Nothing of the batch is stored (the write is rolled back).
    Ingest then writes its messages one by one and dead-letters the ones that still fail, with this reason;
    a store that can tell the bad points apart itself (per chunk) dead-letters them in `write` instead."""


class LiveReader(StoreReader, Protocol):
    """Optional extras a store may offer the API beyond `StoreReader` (the SQLite and InfluxDB stores do)."""

    def latest_values(self, site: str) -> list[LatestValue]: ...

    def dead_letters(self, site: str, limit: int = 100) -> list[DeadLetterRecord]: ...
