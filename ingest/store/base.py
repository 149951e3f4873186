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
