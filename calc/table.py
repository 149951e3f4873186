"""The vectorized path: a FactorTable folds every meter's recipe for every factor-validity segment into one
coefficient grid, so a batch of samples costs a segment lookup, a gather and a multiply.

    table = FactorTable.build(plant_factors(default_factor_set(), plant, raw_toml), plant)
    co2e_kg, row = table.co2e_kg(meter_idx, quantities, timestamps)
    table.rows[row[i]]  # factor id, version, source, scope, fallback of sample i (row -1: meter unusable)

Quantities are in each meter's table unit (`table.units[m]`; `table.scale(m, unit)` converts); timestamps
are numpy datetime64 (any resolution, UTC) or epoch seconds. Results equal the scalar `carrier_co2e`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from calc.carriers import Carrier
from calc.conditions import ConditionError
from calc.emissions import result_version
from calc.factors import FactorError
from calc.plant import Plant
from calc.plant_factors import PlantFactors
from calc.recipes import Recipe, recipe
from calc.units import conversion_factor

DEFAULT_UNITS: dict[str, str] = {c.value: c.default_unit for c in Carrier}  # a meter's unit when none is given
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PER_DAY = {"D": 1, "h": 24, "m": 1440, "s": 86_400, "ms": 86_400_000, "us": 86_400_000_000,
            "ns": 86_400_000_000_000}


@dataclass(frozen=True, slots=True)
class TableRow:
    """Provenance of one distinct coefficient: what a stored point records next to its kg CO2e."""

    co2e_per_unit: float
    unit: str
    carrier: str
    method: str
    scope: str
    factor_id: str
    factor_version: str
    source: str
    fallback: bool
    factor_ids: tuple[str, ...]
    gas_per_unit: tuple[tuple[str, float], ...]


def _day_seconds(day: date) -> int:
    return int((datetime(day.year, day.month, day.day, tzinfo=UTC) - _EPOCH).total_seconds())


class FactorTable:
    """Coefficient grid [meter, segment] -> row, built once per merged factor set and plant."""

    def __init__(self, meters: tuple[str, ...], units: tuple[str, ...], bounds_s: npt.NDArray[np.int64],
                 lut: npt.NDArray[np.int64], rows: tuple[TableRow, ...], problems: Mapping[str, str]) -> None:
        self.meters = meters
        self.meter_index = {m: i for i, m in enumerate(meters)}
        self.units = units
        self.bounds_s = bounds_s                      # segment s covers [bounds[s-1], bounds[s]); day starts, UTC
        self.lut = lut                                # [meter, segment] -> row index, -1 when unusable
        self.rows = rows
        self.problems = dict(problems)                # meter id -> why its samples cannot be converted
        coef = np.array([r.co2e_per_unit for r in rows] + [np.nan], dtype=np.float64)
        self.coef = coef[lut]                         # [meter, segment] kg CO2e per unit; -1 picks the NaN
        n_meters, self._segments = lut.shape
        # Segment-major flat copies: index = segment × meters + meter, so a day table can hold segment × meters.
        self._flat_coef = np.ascontiguousarray(self.coef.T.ravel())
        self._flat_lut = np.ascontiguousarray(lut.T.ravel())
        days = bounds_s // 86_400
        self._day0 = int(min(0, int(days[0]) - 1)) if len(days) else 0
        n_days = (int(days[-1]) + 1 - self._day0) if len(days) else 1
        day_starts = (np.arange(n_days, dtype=np.int64) + self._day0) * 86_400
        self._day_offset = np.searchsorted(bounds_s, day_starts, side="right").astype(np.intp) * n_meters
        self._bounds_cache: dict[np.dtype[Any], npt.NDArray[Any]] = {}

    @classmethod
    def build(cls, pf: PlantFactors, plant: Plant, units: Mapping[str, str] | None = None) -> FactorTable:
        """Evaluate every meter's recipe once per validity segment of the merged factor set."""
        edges: set[int] = set()
        for f in pf.factors.factors.values():
            if f.valid_from is not None:
                edges.add(_day_seconds(f.valid_from))
            if f.valid_to is not None:
                edges.add(_day_seconds(f.valid_to + timedelta(days=1)))
        bounds = np.array(sorted(edges), dtype=np.int64)
        starts = [int(bounds[0]) - 86_400 if len(bounds) else 0, *(int(b) for b in bounds)]
        meters = tuple(m.id for m in plant.meters)
        meter_units = tuple((units or {}).get(m.id, DEFAULT_UNITS[m.carrier]) for m in plant.meters)
        lut = np.full((len(meters), len(starts)), -1, dtype=np.int64)
        rows: list[TableRow] = []
        row_of: dict[TableRow, int] = {}
        problems: dict[str, str] = {}
        done: dict[tuple[Any, ...], npt.NDArray[np.int64] | str] = {}  # meters configured alike share the work
        for mi, meter in enumerate(plant.meters):
            pins = pf.pins_for(meter, plant.site.id)
            region, method, cond = plant.region_of(meter), pf.method_for(meter.carrier), pf.conditions.get(meter.id)
            key = (meter.carrier, meter_units[mi], region, method, cond, tuple(sorted(pins.items())))
            if key not in done:
                cells = np.full(len(starts), -1, dtype=np.int64)
                try:
                    for si, start in enumerate(starts):
                        at = (_EPOCH + timedelta(seconds=start)).date()
                        rec = recipe(pf.factors, meter.carrier, meter_units[mi], region=region, at=at, method=method,
                                     conditions=cond, pins=pins)
                        row = _row(rec)
                        if row not in row_of:
                            row_of[row] = len(rows)
                            rows.append(row)
                        cells[si] = row_of[row]
                    done[key] = cells
                except (FactorError, ConditionError) as exc:
                    done[key] = str(exc)
            outcome = done[key]
            if isinstance(outcome, str):
                problems[meter.id] = f"meter {meter.id!r} ({meter.carrier}): {outcome}"
            else:
                lut[mi] = outcome
        return cls(meters, meter_units, bounds, lut, tuple(rows), problems)

    def scale(self, meter_idx: int, unit: str) -> float:
        """Multiplier from `unit` to the meter's table unit (cached pint conversion; raises UnitError)."""
        return conversion_factor(unit, self.units[meter_idx])

    def _search_bounds(self, dtype: np.dtype[Any]) -> npt.NDArray[Any]:
        if dtype.kind != "M":
            return self.bounds_s
        bounds = self._bounds_cache.get(dtype)
        if bounds is None:
            bounds = self.bounds_s.astype("datetime64[s]").astype(dtype).view(np.int64)
            self._bounds_cache[dtype] = bounds
        return bounds

    def batch_segment(self, timestamps: npt.NDArray[np.generic]) -> int | None:
        """The one validity segment every timestamp of the batch lies in, or None when they span several."""
        if timestamps.size == 0:
            return 0
        values = timestamps.view(np.int64) if timestamps.dtype.kind == "M" else timestamps
        lo, hi = np.searchsorted(self._search_bounds(timestamps.dtype), [values.min(), values.max()], side="right")
        return int(lo) if lo == hi else None

    def segments(self, timestamps: npt.NDArray[np.generic]) -> npt.NDArray[np.intp]:
        """Segment index of each timestamp (a helper for inspection; co2e_kg does not binary-search)."""
        values = timestamps.view(np.int64) if timestamps.dtype.kind == "M" else timestamps
        return np.searchsorted(self._search_bounds(timestamps.dtype), values, side="right")

    def co2e_kg(self, meter_idx: npt.NDArray[np.integer], quantities: npt.NDArray[np.float64],
                timestamps: npt.NDArray[np.generic]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
        """kg CO2e of each sample and the index of its row in `rows` (-1 and NaN for unusable meters).

        A batch within one validity segment (live data) costs two gathers and a multiply; a batch across
        segments adds a day number per sample and one lookup in a per-day table (no binary search).
        """
        seg = self.batch_segment(timestamps)
        if seg is not None:
            n = self.lut.shape[0]
            coef = self._flat_coef[seg * n:(seg + 1) * n].take(meter_idx)
            coef *= quantities
            return coef, self._flat_lut[seg * n:(seg + 1) * n].take(meter_idx)
        flat = self._day_offset.take(self._day_numbers(timestamps), mode="clip")
        flat += meter_idx
        return self._flat_coef.take(flat) * quantities, self._flat_lut.take(flat)

    def _day_numbers(self, timestamps: npt.NDArray[np.generic]) -> npt.NDArray[np.intp]:
        """Days since the table's first day (floor, UTC) of each timestamp."""
        if timestamps.dtype.kind == "M":
            unit, count = np.datetime_data(cast(Any, timestamps.dtype))
            if unit not in _PER_DAY or _PER_DAY[unit] % count:
                raise ValueError(f"timestamps of dtype {timestamps.dtype} are not supported; use s, ms, us or ns")
            per_day = _PER_DAY[unit] // count
            days: npt.NDArray[np.intp] = timestamps.view(np.int64) // per_day
        else:
            days = np.floor_divide(timestamps, 86_400).astype(np.intp)
        if self._day0:
            days -= self._day0
        return days


def _row(rec: Recipe) -> TableRow:
    return TableRow(rec.co2e_per_unit, rec.unit, rec.carrier, rec.method, rec.scope, rec.primary.factor_id,
                    result_version(rec), rec.primary.factor.source, rec.fallback,
                    tuple(dict.fromkeys(c.factor_id for c in rec.choices)), tuple(sorted(rec.gas_per_unit.items())))
