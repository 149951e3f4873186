"""The store contract: what ingest writes and what the API and SCADA read (the one part of ingest others import).

`Store` is the whole of it (`StoreReader`, `HeldReader`, `StoreWriter`); every backend (SQLite, InfluxDB)
implements all of it, so callers never probe for a method. Energy figures (totals, series, meter summaries and
latest values) are of meters only; production counters and driver variables are read with `variable_totals` and
`variable_series`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Literal, Protocol

from ingest.errors import IngestError

if TYPE_CHECKING:
    from ingest.points import Batch

CHUNK_ROWS = 5000  # rows a retention transaction deletes: each holds the write lock for milliseconds


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
    # of `energy` and `co2e_kg`, what is estimated (a gap's energy spread over the gap, flag "estimated")
    estimated_energy: float = 0.0
    estimated_co2e_kg: float = 0.0


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
    held: int = 0  # new held records (batch.held); one seen before is among the duplicates


class StoreError(IngestError, RuntimeError):
    """The store cannot be reached or is not working (down, disk full, I/O error, timeout): a later try of the
    same batch may succeed, so ingest buffers and retries, nothing is dropped."""


class StoreDataError(IngestError, ValueError):
    """The store refused a batch for what it holds, not because it is down (a value it cannot represent, a
    type clash): the same batch would fail again. Nothing of the batch is stored (the write is rolled back).
    Ingest then writes its messages one by one and dead-letters the ones that still fail, with this reason;
    a store that can tell the bad points apart itself (per chunk) dead-letters them in `write` instead."""


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    """Sums of one meter's points in one bucket of a series."""

    start: datetime           # bucket start, UTC (1d buckets start at the site's local midnight)
    meter: str
    area: str
    carrier: str
    scope: str
    energy: float             # in energy_unit
    energy_unit: str
    co2e_kg: float
    points: int
    estimated_energy: float = 0.0     # of `energy` and `co2e_kg`, what is estimated (flag "estimated")
    estimated_co2e_kg: float = 0.0


@dataclass(frozen=True, slots=True)
class VariableTotal:
    """A production counter's or driver variable's figure over a period (never a CO2e): a counter's sum, a gauge's
    time-weighted mean. `start` is the bucket's start in a series, None for a period's total."""

    variable: str             # its id (the meter id of its readings)
    site: str
    area: str
    line: str                 # "" when it belongs to no line
    kind: str                 # production | driver
    quantity: str             # the device point that carries it
    unit: str                 # of total, held and mean
    measure: str              # counter | gauge
    total: float | None       # counter: sum of its deltas (None for a gauge)
    held: float               # counter: deltas the edge held as implausible (flag "held"), not in `total`
    mean: float | None        # gauge: time-weighted mean (None for a counter, or a gauge without timed samples)
    weight_s: float           # gauge: seconds its samples stand for (the weight of `mean`)
    points: int               # samples of its quantity
    start: datetime | None = None


@dataclass(frozen=True, slots=True)
class EnergyFlow:
    """A meter's energy by direction over a period, or one bucket of a series (`start` set): import is its counted
    energy (the one with CO2e, as in `totals`), export and generation come from `*_export` and `*_generation`
    counters (calc.generation) and never carry CO2e. Group by area or site with `group_flows`."""

    meter: str
    site: str
    area: str
    carrier: str
    energy_unit: str
    import_energy: float
    export_energy: float
    generation_energy: float
    start: datetime | None = None

    @property
    def net_import(self) -> float:
        """Import − export (negative: more sold than bought)."""
        return self.import_energy - self.export_energy


def group_flows(flows: Sequence[EnergyFlow], by: Literal["area", "site"]) -> list[EnergyFlow]:
    """Flows summed per bucket and area (by="area") or site (by="site"), named in `meter`; flows of other units
    (another carrier) are summed apart, and `carrier` is "" where carriers mix. Sorted by (start, meter, unit)."""
    acc: dict[tuple[datetime | None, str, str], EnergyFlow] = {}
    for f in flows:
        name = f.area if by == "area" else f.site
        key = (f.start, name, f.energy_unit)
        prev = acc.get(key)
        acc[key] = replace(f, meter=name, area=f.area if by == "area" else "") if prev is None else replace(
            prev, carrier=prev.carrier if prev.carrier == f.carrier else "",
            import_energy=prev.import_energy + f.import_energy, export_energy=prev.export_energy + f.export_energy,
            generation_energy=prev.generation_energy + f.generation_energy)
    return [acc[k] for k in sorted(acc, key=lambda k: (k[0] or datetime.min.replace(tzinfo=UTC), k[1], k[2]))]


@dataclass(frozen=True, slots=True)
class FactorUse:
    """One emission factor (id and version) and when it made the CO2e of stored points."""

    factor_id: str
    factor_version: str
    first: datetime
    last: datetime            # start of the last hour bucket that used it
    points: int


@dataclass(frozen=True, slots=True)
class Pruned:
    """What one retention pass deleted."""

    points: int = 0
    minute_rollups: int = 0
    dead_letters: int = 0
    done: bool = True  # False: the time budget ran out first; call again (soon) to go on


class SeriesError(IngestError, ValueError):
    """A series request the store will not answer as asked (too many buckets for it): ask for a coarser step or a
    shorter range."""


class StoreReader(Protocol):
    """Read side of a store, as the API and SCADA use it."""

    def meter_summaries(self, site: str) -> list[MeterSummary]: ...

    def totals(self, site: str, start: datetime, end: datetime) -> list[MeterTotal]:
        """Per-meter sums of points with start <= ts < end (UTC)."""
        ...

    def latest_values(self, site: str) -> list[LatestValue]:
        """The latest stored sample of each meter's quantities (live power, latest counter)."""
        ...

    def dead_letters(self, site: str, limit: int = 100) -> list[DeadLetterRecord]:
        """Newest first."""
        ...

    def series(self, site: str, start: datetime, end: datetime, step: str, tz: str) -> list[SeriesPoint]:
        """Per meter and bucket of `step` (a key of `buckets.STEPS_S`: 1m, 15m, 1h, 1d) sums over [start, end);
        buckets without points left out; 1d buckets cut at local midnight in `tz`, shorter ones on UTC
        multiples of the step. Sorted by (start, meter). May raise SeriesError."""
        ...

    def factor_usage(self, site: str, start: datetime, end: datetime) -> list[FactorUse]:
        """Each factor (id, version) used by points in [start, end), with the first and last hour it was used."""
        ...

    def variable_totals(self, site: str, start: datetime, end: datetime) -> list[VariableTotal]:
        """Per production counter and driver variable, over start <= ts < end (UTC): counters summed, gauges
        time-weighted (sample i stands for its interval_s). Variables without points in the period left out.
        Group them by area, line or site with ingest.store.variables.combine."""
        ...

    def variable_series(self, site: str, start: datetime, end: datetime, step: str,
                        tz: str) -> list[VariableTotal]:
        """The same per variable and bucket of `step` (buckets as `series` cuts them; `start` set), buckets
        without points left out; sorted by (start, variable). May raise SeriesError."""
        ...

    def energy_flows(self, site: str, start: datetime, end: datetime) -> list[EnergyFlow]:
        """Per meter over [start, end): import (its counted energy), export and generation (calc.generation), so
        net import per meter, area or site (`group_flows`). Export and generation are cut at whole minutes."""
        ...

    def energy_flow_series(self, site: str, start: datetime, end: datetime, step: str,
                           tz: str) -> list[EnergyFlow]:
        """The same per meter and bucket of `step` (buckets as `series` cuts them; `start` set), buckets without
        energy left out; sorted by (start, meter). May raise SeriesError."""
        ...

    def close(self) -> None: ...


class HeldStatus(StrEnum):
    """Where held energy stands: waiting for an engineer, released (counted at `counted_ts`), or rejected."""

    OPEN = "open"
    RELEASED = "released"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class HeldRecord:
    """Energy that was measured but not counted, with why: a confirmed implausible jump (edge flag "held"), a
    delta above the meter's max power, a sample whose time cannot be placed. Never dropped: an engineer
    releases it (it then counts as a point at `counted_ts`, flag "released") or rejects it, both audited."""

    id: int                     # the store's, stable for the record's life
    site: str
    meter: str
    area: str
    carrier: str
    ts: datetime                # the sample's time (may be unplaceable: in the future, before the plant's start)
    quantity: str
    delta: float                # as the sample said, in `unit`
    unit: str
    interval_s: float | None
    energy: float               # in `energy_unit`, the meter's factor unit
    energy_unit: str
    co2e_kg: float | None       # with the factor valid at `ts`; None when no factor could be applied there
    factor_id: str | None
    factor_version: str | None
    reason: str
    status: HeldStatus
    received: datetime
    seq: int
    agent: str | None
    decided: datetime | None = None
    decided_by: str | None = None
    note: str | None = None
    counted_ts: datetime | None = None  # released: where the energy counts (its own `ts` unless placed elsewhere)


@dataclass(frozen=True, slots=True)
class HeldTotal:
    """Open held energy of one meter (what a balance says is held)."""

    meter: str
    site: str
    area: str
    carrier: str
    energy: float
    energy_unit: str
    co2e_kg: float   # of the records that have a CO2e
    records: int


class HeldError(IngestError, ValueError):
    """A decision the store refuses: no such record, already decided, or a release it cannot place."""


class HeldNotFoundError(HeldError, LookupError):
    """No held record with this id on this site."""


class HeldDecidedError(HeldError):
    """The record was released or rejected already (a decision is final)."""


class HeldReader(Protocol):
    """Held energy, as the API reads and decides it (the SQLite and InfluxDB stores implement it)."""

    def held(self, site: str, status: HeldStatus | None = None, meter: str | None = None,
             limit: int = 1000) -> list[HeldRecord]:
        """Newest first."""
        ...

    def held_record(self, site: str, held_id: int) -> HeldRecord | None:
        """One record by its id, or None."""
        ...

    def held_totals(self, site: str, start: datetime | None = None, end: datetime | None = None) -> list[HeldTotal]:
        """Open held energy per meter, of records with start <= ts < end when given."""
        ...

    def decide_held(self, site: str, held_id: int, status: HeldStatus, actor: str, note: str | None = None,
                    counted_ts: datetime | None = None, co2e_kg: float | None = None,
                    factor_id: str | None = None, factor_version: str | None = None) -> HeldRecord:
        """Release (store a counted point at `counted_ts` or the record's ts, with the record's CO2e unless
        `co2e_kg` and the factor are given) or reject an open record, in one transaction; raises HeldNotFoundError,
        HeldDecidedError, or HeldError when the release cannot be placed."""
        ...


class StoreWriter(Protocol):
    """Write side of a store, as ingest uses it."""

    def write(self, batch: Batch) -> WriteResult:
        """Store a batch (points, held records, dead letters); duplicates skipped, conflicts dead-lettered. Raises
        only StoreError (retry the batch later) or StoreDataError (the batch's content)."""
        ...

    def apply_retention(self, now: datetime, chunk_rows: int = CHUNK_ROWS, budget_s: float | None = None) -> Pruned:
        """Delete what the store's retention settings say is old (a store whose database does that itself, as
        InfluxDB's retention policies do, deletes nothing here). Raises only StoreError."""
        ...


class Store(StoreReader, HeldReader, StoreWriter, Protocol):
    """The whole contract: what `ingest.store.open_store` and `open_reader` return."""
