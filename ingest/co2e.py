"""The derived CO2e stream: per meter and stored batch, the energy and CO2e of its new points, per factor.

Payload of `carbonwatch/v1/{site}/{area}/{meter}/co2e` (QoS 1): `{"v": 1, "site", "area", "meter", "from", "to",
"points", "co2e_kg", "by_factor": [{"energy", "energy_unit", "co2e_kg", "points", "scope", "factor_id",
"factor_version"}]}`. Only points the store reported new are in it, so a duplicate adds nothing downstream.
"""

from __future__ import annotations

import json

import numpy as np
import numpy.typing as npt

from ingest.points import CO2E, ENERGY, FACTOR, METER, QUANTITY, TS, Batch, us_to_iso
from ingest.store.base import WriteResult


def _groups(meters: list[str], refs: list[int]) -> dict[tuple[str, int], npt.NDArray[np.intp]]:
    """Row indexes of each (meter, factor ref) pair."""
    keys: dict[tuple[str, int], list[int]] = {}
    for i, key in enumerate(zip(meters, refs, strict=True)):
        keys.setdefault(key, []).append(i)
    return {k: np.asarray(v, dtype=np.intp) for k, v in keys.items()}


def co2e_messages(batch: Batch, result: WriteResult) -> list[tuple[str, bytes]]:
    """(meter, payload) per meter with new counted points in this stored batch."""
    sums: dict[tuple[str, int], list[float]] = {}  # (meter, factor ref) -> energy, co2e, points, first, last
    c = batch.counted
    if result.new_keys is None and c is not None:  # every point new: sum the columns
        for key, idx in _groups(c.meter.tolist(), c.factor_ref.tolist()).items():
            ts = c.ts_us[idx]
            sums[key] = [float(c.energy[idx].sum()), float(c.co2e_kg[idx].sum()), len(idx),
                         int(ts.min()), int(ts.max())]
    else:
        for p in batch.points:
            if p[CO2E] is None or (result.new_keys is not None
                                   and (p[METER], p[TS], p[QUANTITY]) not in result.new_keys):
                continue
            acc = sums.setdefault((p[METER], p[FACTOR]), [0.0, 0.0, 0, p[TS], p[TS]])
            acc[0] += p[ENERGY]
            acc[1] += p[CO2E]
            acc[2] += 1
            acc[3], acc[4] = min(acc[3], p[TS]), max(acc[4], p[TS])
    per_meter: dict[str, list[tuple[int, list[float]]]] = {}
    for (meter, ref), acc in sums.items():
        per_meter.setdefault(meter, []).append((ref, acc))
    out = []
    for meter, parts in per_meter.items():
        info = batch.meters[meter]
        by_factor = []
        for ref, (energy, co2e, n, _, _) in parts:
            f = batch.factors[ref]
            by_factor.append({"energy": energy, "energy_unit": f.energy_unit, "co2e_kg": co2e, "points": int(n),
                              "scope": f.scope, "factor_id": f.factor_id, "factor_version": f.factor_version})
        out.append((meter, json.dumps({
            "v": 1, "site": info.site, "area": info.area, "meter": meter,
            "from": us_to_iso(int(min(a[3] for _, a in parts))), "to": us_to_iso(int(max(a[4] for _, a in parts))),
            "points": int(sum(a[2] for _, a in parts)), "co2e_kg": sum(a[1] for _, a in parts),
            "by_factor": by_factor}).encode()))
    return out
