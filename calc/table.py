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
from typing import Any

import numpy as np
import numpy.typing as npt

from calc.conditions import ConditionError
from calc.emissions import result_version
from calc.factors import FactorError
from calc.plant import Plant
from calc.plant_factors import PlantFactors
from calc.recipes import Recipe, recipe
from calc.units import conversion_factor

DEFAULT_UNITS: dict[str, str] = {"electricity": "kWh", "natural_gas": "m^3", "raw_coal": "t", "diesel": "t",
                                 "gasoline": "t", "lpg": "t", "fuel_oil": "t", "heat": "GJ", "steam": "t",
                                 "hot_water": "t"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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
        self.bounds_s = bounds_s                      # segment s covers [bounds[s-1], bounds[s])
        self.lut = lut                                # [meter, segment] -> row index, -1 when unusable
        self.rows = rows
        self.problems = dict(problems)                # meter id -> why its samples cannot be converted
        coef = np.array([r.co2e_per_unit for r in rows] + [np.nan], dtype=np.float64)
        self.coef = coef[lut]                         # -1 picks the trailing NaN
        self._flat_coef = np.ascontiguousarray(self.coef.ravel())
        self._flat_lut = np.ascontiguousarray(lut.ravel())
        self._segments = lut.shape[1]
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
        for mi, meter in enumerate(plant.meters):
            pins = pf.pins_for(meter, plant.site.id)
            for si, start in enumerate(starts):
                at = (_EPOCH + timedelta(seconds=start)).date()
                try:
                    rec = recipe(pf.factors, meter.carrier, meter_units[mi], region=plant.region_of(meter), at=at,
                                 method=pf.method_for(meter.carrier), conditions=pf.conditions.get(meter.id),
                                 pins=pins)
                except (FactorError, ConditionError) as exc:
                    problems[meter.id] = f"meter {meter.id!r} ({meter.carrier}): {exc}"
                    lut[mi, :] = -1
                    break
                row = _row(rec)
                if row not in row_of:
                    row_of[row] = len(rows)
                    rows.append(row)
                lut[mi, si] = row_of[row]
        return cls(meters, meter_units, bounds, lut, tuple(rows), problems)

    def scale(self, meter_idx: int, unit: str) -> float:
        """Multiplier from `unit` to the meter's table unit (cached pint conversion; raises UnitError)."""
        return conversion_factor(unit, self.units[meter_idx])

    def segments(self, timestamps: npt.NDArray[np.generic]) -> npt.NDArray[np.intp] | int:
        """Segment index of each timestamp (one int when the whole batch lies in one segment)."""
        ts: npt.NDArray[np.generic] = timestamps
        if ts.dtype.kind == "M":
            bounds = self._bounds_cache.get(ts.dtype)
            if bounds is None:
                bounds = self.bounds_s.astype("datetime64[s]").astype(ts.dtype)
                self._bounds_cache[ts.dtype] = bounds
            search: npt.NDArray[np.generic] = bounds
        else:
            search = self.bounds_s
        if ts.size == 0:
            return 0
        lo, hi = np.searchsorted(search, [ts.min(), ts.max()], side="right")
        if lo == hi:
            return int(lo)
        return np.searchsorted(search, ts, side="right")

    def co2e_kg(self, meter_idx: npt.NDArray[np.integer], quantities: npt.NDArray[np.float64],
                timestamps: npt.NDArray[np.generic]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
        """kg CO2e of each sample and the index of its row in `rows` (-1 and NaN for unusable meters)."""
        seg = self.segments(timestamps)
        if isinstance(seg, int):
            coef = self.coef[:, seg]
            return coef[meter_idx] * quantities, self.lut[:, seg][meter_idx]
        flat = meter_idx * self._segments + seg
        return self._flat_coef[flat] * quantities, self._flat_lut[flat]


def _row(rec: Recipe) -> TableRow:
    return TableRow(rec.co2e_per_unit, rec.unit, rec.carrier, rec.method, rec.scope, rec.primary.factor_id,
                    result_version(rec), rec.primary.factor.source, rec.fallback,
                    tuple(dict.fromkeys(c.factor_id for c in rec.choices)), tuple(sorted(rec.gas_per_unit.items())))
