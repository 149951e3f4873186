"""The derived CO2e stream: per stored batch, the energy and CO2e of its new points, per meter and factor.

Per meter (`[ingest] co2e_per_meter`, on by default: SCADA and outside dashboards read it), the payload of
`carbonwatch/v1/{site}/{area}/{meter}/co2e` (QoS 1): `{"v": 1, "site", "area", "meter", "from", "to", "points",
"co2e_kg", "by_factor": [{"energy", "energy_unit", "co2e_kg", "points", "scope", "factor_id",
"factor_version"}]}`. Per site, always, one message per stored batch on `carbonwatch/v1/{site}/co2e`:
`{"v": 1, "site", "from", "to", "points", "co2e_kg", "areas": {area: {"co2e_kg", "points"}}, "meters": [the
per-meter payloads without v and site]}` (the API's live sums read this one: a plant of 10,000 meters sends a
few of these a second instead of 10,000). Only points the store reported new are in either, so a duplicate adds
nothing downstream.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from calc import topics
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
    return [(doc["meter"], json.dumps(doc).encode()) for doc in co2e_docs(batch, result)]


def publications(batch: Batch, result: WriteResult, per_meter: bool = True) -> list[tuple[str, bytes]]:
    """(topic, payload) of every CO2e message ingest publishes for this stored batch: each meter's (when
    `per_meter`) and each site's."""
    docs = co2e_docs(batch, result)
    out = [(topics.co2e(d["site"], d["area"], d["meter"]), json.dumps(d).encode()) for d in docs] if per_meter else []
    return out + [(topics.site_co2e(site), body) for site, body in site_messages(docs)]


def site_messages(docs: list[dict[str, Any]]) -> list[tuple[str, bytes]]:
    """(site, payload) per site of the per-meter documents of one stored batch (co2e_docs)."""
    by_site: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        by_site.setdefault(doc["site"], []).append(doc)
    out = []
    for site, members in by_site.items():
        areas: dict[str, dict[str, float]] = {}
        for d in members:
            a = areas.setdefault(d["area"], {"co2e_kg": 0.0, "points": 0})
            a["co2e_kg"] += d["co2e_kg"]
            a["points"] += d["points"]
        meters = [{k: v for k, v in d.items() if k not in ("v", "site")} for d in members]
        out.append((site, json.dumps({
            "v": 1, "site": site, "from": min((d["from"] for d in members), key=datetime.fromisoformat),
            "to": max((d["to"] for d in members), key=datetime.fromisoformat),
            "points": sum(d["points"] for d in members), "co2e_kg": sum(d["co2e_kg"] for d in members),
            "areas": areas, "meters": meters}).encode()))
    return out


def co2e_docs(batch: Batch, result: WriteResult) -> list[dict[str, Any]]:
    """The per-meter payload, as a document, of each meter with new counted points in this stored batch."""
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
        out.append({
            "v": 1, "site": info.site, "area": info.area, "meter": meter,
            "from": us_to_iso(int(min(a[3] for _, a in parts))), "to": us_to_iso(int(max(a[4] for _, a in parts))),
            "points": int(sum(a[2] for _, a in parts)), "co2e_kg": sum(a[1] for _, a in parts),
            "by_factor": by_factor})
    return out
