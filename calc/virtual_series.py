"""Virtual meters over series: a virtual meter's energy and CO2e per bucket from its inputs' (numpy, one pass per
input), with completeness, quality, estimated and held energy carried; and a main meter reconciled against its
submeters (losses or unmetered load in % of the main, per bucket and over the period)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import numpy as np
import numpy.typing as npt

from calc.units import conversion_factor
from calc.virtual_meters import Resolved, Term

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Series:
    """One meter's buckets (a real meter's from the store, or a virtual meter's): arrays of one length, sorted by
    `start_us` without repeats. A bucket missing from a series had no points (it is 0 % complete)."""

    start_us: I64                 # bucket starts, µs since the epoch, UTC
    energy: F64                   # in energy_unit (counted: held energy is not in it)
    energy_unit: str
    co2e_kg: F64
    points: I64                   # stored points behind the bucket
    completeness: F64             # 0..1: points over the points expected (a virtual meter: its least complete input)
    good_share: F64               # 0..1: share of the points of quality "good" (virtual: its worst input)
    estimated_energy: F64         # of the energy behind the figure, what is estimated (a gap spread), >= 0
    held_energy: F64              # energy behind the figure measured but held (not counted), >= 0
    negative: npt.NDArray[np.bool_]  # a virtual result below zero (submeters above the main): kept, flagged

    @classmethod
    def of_meter(cls, start_us: Sequence[int] | I64, energy: Sequence[float] | F64, energy_unit: str,
                 co2e_kg: Sequence[float] | F64, points: Sequence[int] | I64,
                 expected_points: Sequence[float] | F64, good_points: Sequence[int] | I64 | None = None,
                 estimated_energy: Sequence[float] | F64 | None = None,
                 held_energy: Sequence[float] | F64 | None = None) -> Series:
        """A real meter's series from the store's sums: completeness is points / expected points (capped at 1;
        a bucket that expects none is complete), quality the share of good points (all, when not given)."""
        start = np.asarray(start_us, dtype=np.int64)
        n = len(start)
        pts = np.asarray(points, dtype=np.int64)
        expected = np.asarray(expected_points, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            completeness = np.where(expected > 0, np.minimum(pts / expected, 1.0), 1.0)
            good = (np.ones(n) if good_points is None
                    else np.where(pts > 0, np.asarray(good_points, dtype=np.float64) / pts, 1.0))
        zeros = np.zeros(n)
        series = cls(start, np.asarray(energy, dtype=np.float64), energy_unit, np.asarray(co2e_kg, dtype=np.float64),
                     pts, completeness.astype(np.float64), good.astype(np.float64),
                     zeros if estimated_energy is None else np.asarray(estimated_energy, dtype=np.float64),
                     zeros if held_energy is None else np.asarray(held_energy, dtype=np.float64),
                     np.zeros(n, dtype=np.bool_))
        series.check()
        return series

    def check(self) -> None:
        """Raise ValueError unless the arrays have one length and the starts strictly rise."""
        n = len(self.start_us)
        for name in ("energy", "co2e_kg", "points", "completeness", "good_share", "estimated_energy",
                     "held_energy", "negative"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"series: {name} has {len(getattr(self, name))} buckets, start_us {n}")
        if n > 1 and not bool(np.all(np.diff(self.start_us) > 0)):
            raise ValueError("series: bucket starts must rise strictly (one row per bucket)")

    @property
    def estimated_share(self) -> F64:
        """Estimated energy relative to the figure, capped at 1 (a small difference of large inputs is soon all
        estimated: the estimate alone can move it that much); 0 where the figure is 0."""
        return _share(self.estimated_energy, np.abs(self.energy))

    def total(self) -> float:
        return float(self.energy.sum())


class BucketRow(Protocol):
    """One meter's sums in one bucket, as a store's series gives them (ingest.store.base.SeriesPoint)."""

    @property
    def start(self) -> datetime: ...
    @property
    def meter(self) -> str: ...
    @property
    def energy(self) -> float: ...
    @property
    def energy_unit(self) -> str: ...
    @property
    def co2e_kg(self) -> float: ...
    @property
    def points(self) -> int: ...
    @property
    def estimated_energy(self) -> float: ...


def from_rows(rows: Iterable[BucketRow], expected_points: Mapping[str, float]) -> dict[str, Series]:
    """Each meter's Series from a store's series rows (sorted by start, one row per meter and bucket);
    `expected_points[meter]` is the points a full bucket holds (bucket length / the meter's interval_s). A meter
    missing from `expected_points` is taken as complete wherever it has points."""
    by_meter: dict[str, list[BucketRow]] = {}
    for r in rows:
        by_meter.setdefault(r.meter, []).append(r)
    out: dict[str, Series] = {}
    for meter, rs in by_meter.items():
        points = [r.points for r in rs]
        expected = expected_points.get(meter)
        out[meter] = Series.of_meter([_us(r.start) for r in rs], [r.energy for r in rs], rs[0].energy_unit,
                                     [r.co2e_kg for r in rs], points,
                                     points if expected is None else [expected] * len(rs),
                                     estimated_energy=[r.estimated_energy for r in rs])
    return out


def _us(ts: datetime) -> int:
    delta = ts - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _share(part: F64, whole: F64) -> F64:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(whole > 0, np.minimum(part / whole, 1.0), 0.0).astype(np.float64)


def combine(terms: Sequence[tuple[int, Series]], unit: str) -> Series:
    """Σ sign × series over the union of their buckets, energy in `unit` (inputs converted; raises UnitError when
    one does not convert). Energy and CO2e add with their signs; points, estimated and held energy add (they are
    what stands behind the figure); completeness and quality are the least of the inputs' (a bucket missing from
    an input is 0 % complete there); a result below zero is flagged `negative`, never clipped."""
    if not terms:
        raise ValueError("combine: no terms")
    starts = np.unique(np.concatenate([s.start_us for _, s in terms]))
    n = len(starts)
    energy, co2e, est, held = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
    points = np.zeros(n, dtype=np.int64)
    completeness, good = np.ones(n), np.ones(n)
    for sign, s in terms:
        scale = conversion_factor(s.energy_unit, unit)
        at = np.searchsorted(starts, s.start_us)
        energy[at] += sign * scale * s.energy
        co2e[at] += sign * s.co2e_kg
        est[at] += scale * s.estimated_energy
        held[at] += scale * s.held_energy
        points[at] += s.points
        mine = np.zeros(n)
        mine[at] = s.completeness
        np.minimum(completeness, mine, out=completeness)
        mine_good = np.ones(n)
        mine_good[at] = s.good_share
        np.minimum(good, mine_good, out=good)
    return Series(starts.astype(np.int64), energy, unit, co2e, points, completeness, good, est, held, energy < 0)


def evaluate(resolved: Resolved, inputs: Mapping[str, Series]) -> Series:
    """One virtual meter from the series of the meters (and virtual meters) its expression names; a meter without
    a series (no points in the range) counts as empty, so every bucket is incomplete through it."""
    return combine([(t.sign, inputs.get(t.meter) or _empty(resolved.unit)) for t in resolved.meter.terms],
                   resolved.unit)


def evaluate_all(resolved: Mapping[str, Resolved], inputs: Mapping[str, Series]) -> dict[str, Series]:
    """Every virtual meter, in the order of `resolved` (calc.plant.Plant.virtual(): each after those it uses)."""
    known = dict(inputs)
    out: dict[str, Series] = {}
    for vid, r in resolved.items():
        out[vid] = known[vid] = evaluate(r, known)
    return out


def _empty(unit: str) -> Series:
    e = np.zeros(0)
    return Series(np.zeros(0, dtype=np.int64), e, unit, e, np.zeros(0, dtype=np.int64), e, e, e, e,
                  np.zeros(0, dtype=np.bool_))


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """A main meter against its submeters: per bucket and over the period, the main's energy, the submeters'
    sum, the difference (losses or unmetered load; negative: submeters above the main) and it in % of the main."""

    series: Series                # main − Σ submeters per bucket (with completeness and quality carried)
    main_energy: F64              # per bucket, in series.energy_unit
    submetered_energy: F64
    difference_pct: F64           # difference / main × 100; NaN where the main has no energy
    main_total: float
    submetered_total: float
    difference_total: float
    difference_pct_total: float   # over the period; NaN when the main has no energy
    completeness: float           # of the period: the least complete bucket (0 without buckets)


def reconcile(main: Series, submeters: Sequence[Series], unit: str | None = None) -> Reconciliation:
    """The reconciliation figure of a main meter against its submeters (`unit`: the main's by default)."""
    unit = unit or main.energy_unit
    diff = combine([(1, main), *((-1, s) for s in submeters)], unit)
    main_aligned = combine([(1, main)], unit)
    main_e = np.zeros(len(diff.start_us))
    main_e[np.searchsorted(diff.start_us, main_aligned.start_us)] = main_aligned.energy
    sub_e = main_e - diff.energy
    with np.errstate(divide="ignore", invalid="ignore"):
        pct = np.where(main_e != 0, diff.energy / main_e * 100.0, np.nan)
    main_total, diff_total = float(main_e.sum()), float(diff.energy.sum())
    return Reconciliation(diff, main_e, sub_e, pct.astype(np.float64), main_total, main_total - diff_total,
                          diff_total, diff_total / main_total * 100.0 if main_total != 0 else float("nan"),
                          float(diff.completeness.min()) if len(diff.completeness) else 0.0)


def reconcile_virtual(resolved: Resolved, inputs: Mapping[str, Series]) -> Reconciliation:
    """A virtual meter written `main - sub-1 - sub-2 ...` (one plus term, the main) read as a reconciliation."""
    plus = [t for t in resolved.meter.terms if t.sign > 0]
    if len(plus) != 1:
        raise ValueError(f"virtual meter {resolved.meter.id!r}: a reconciliation needs one main meter (one + term), "
                         f"it has {len(plus)}")
    subs = [inputs.get(t.meter) or _empty(resolved.unit) for t in resolved.meter.terms if t.sign < 0]
    return reconcile(inputs.get(plus[0].meter) or _empty(resolved.unit), subs, resolved.unit)


__all__ = ["BucketRow", "Reconciliation", "Series", "Term", "combine", "evaluate", "evaluate_all", "from_rows",
           "reconcile", "reconcile_virtual"]
