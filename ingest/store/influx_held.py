"""Held energy in the InfluxDB store: measurement `held`, one point per held record, its status rewritten in place.

Tags `site, meter, quantity` and the sample's time make the key (so a replay lands on the same point); fields
`hid` (a stable id from the key, below 2**52), `area, carrier, value, unit, delta, interval_s, energy,
energy_unit, co2e_kg, scope, factor_id, factor_version, quality, flags, reason, seq, agent, received_us` and
the decision: `status` ("open", "released", "rejected"), `decided_us, decided_by, note, counted_us`, written
again at the same series and time when an engineer decides (InfluxDB merges the fields of a point written
twice). Retention is the retention policy's: give `held` a policy that keeps it (see ingest/README.md).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from ingest.points import Batch, HeldRow, us_to_dt
from ingest.store.base import HeldRecord, HeldStatus, HeldTotal
from ingest.store.influx_lines import quoted, tag, text

CONTENT = ("value", "unit", "delta", "interval_s", "quality", "flags")


def held_id(site: str, meter: str, ts_us: int, quantity: str) -> int:
    """A record's id: stable for its key, in every process, exact in JSON (below 2**52)."""
    digest = hashlib.sha256("\x1f".join((site, meter, str(ts_us), quantity)).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 12


def series(site: str, meter: str, quantity: str) -> str:
    return f"held,meter={tag(meter)},quantity={tag(quantity)},site={tag(site)}"


def held_line(h: HeldRow, batch: Batch) -> str:
    """The line of a new held record (status open)."""
    info = batch.meters[h.meter]
    factor = batch.factors.get(h.factor_ref) if h.factor_ref is not None else None
    fields = [f"hid={held_id(info.site, h.meter, h.ts_us, h.quantity)}i", f"area={quoted(text(info.area))}",
              f"carrier={quoted(text(info.carrier))}", f"value={float(h.value)!r}", f"unit={quoted(text(h.unit))}",
              f"delta={float(h.delta)!r}", f"energy={float(h.energy)!r}",
              f"energy_unit={quoted(text(h.energy_unit))}", f"quality={quoted(text(h.quality))}",
              f"flags={quoted(text(h.flags))}", f"reason={quoted(text(h.reason))}", f"seq={int(h.seq)}i",
              f"received_us={int(h.received_us)}i", 'status="open"']
    if h.interval_s is not None:
        fields.append(f"interval_s={float(h.interval_s)!r}")
    if h.co2e_kg is not None:
        fields.append(f"co2e_kg={float(h.co2e_kg)!r}")
    if factor is not None:
        fields += [f"scope={quoted(text(factor.scope))}", f"factor_id={quoted(text(factor.factor_id))}",
                   f"factor_version={quoted(text(factor.factor_version))}"]
    if h.agent is not None:
        fields.append(f"agent={quoted(text(h.agent))}")
    return f"{series(info.site, h.meter, h.quantity)} {','.join(fields)} {int(h.ts_us)}"


def decision_line(row: Mapping[str, Any], status: HeldStatus, actor: str, note: str | None, now_us: int,
                  counted_us: int | None) -> str:
    """The status fields written again at the record's series and time."""
    fields = [f"status={quoted(status.value)}", f"decided_us={int(now_us)}i", f"decided_by={quoted(text(actor))}"]
    if note is not None:
        fields.append(f"note={quoted(text(note))}")
    if counted_us is not None:
        fields.append(f"counted_us={int(counted_us)}i")
    return f"{series(row['site'], row['meter'], row['quantity'])} {','.join(fields)} {int(row['time'])}"


def _float(v: Any) -> float | None:
    return float(v) if v is not None else None


def _int(v: Any) -> int | None:
    return int(v) if v is not None else None


def record(row: Mapping[str, Any]) -> HeldRecord:
    """A held record from a row of `SELECT * FROM held` (tags and fields as columns)."""
    decided, counted = _int(row.get("decided_us")), _int(row.get("counted_us"))
    return HeldRecord(id=int(row["hid"]), site=row["site"], meter=row["meter"], area=row.get("area") or "",
                      carrier=row.get("carrier") or "", ts=us_to_dt(int(row["time"])), quantity=row["quantity"],
                      delta=float(row["delta"]), unit=row.get("unit") or "", interval_s=_float(row.get("interval_s")),
                      energy=float(row["energy"]), energy_unit=row.get("energy_unit") or "",
                      co2e_kg=_float(row.get("co2e_kg")), factor_id=row.get("factor_id"),
                      factor_version=row.get("factor_version"), reason=row.get("reason") or "",
                      status=HeldStatus(row.get("status") or "open"), received=us_to_dt(int(row["received_us"])),
                      seq=int(row["seq"]), agent=row.get("agent"),
                      decided=us_to_dt(decided) if decided is not None else None, decided_by=row.get("decided_by"),
                      note=row.get("note"), counted_ts=us_to_dt(counted) if counted is not None else None)


def totals(records: list[HeldRecord], site: str) -> list[HeldTotal]:
    """Open held energy per meter, of the records given."""
    acc: dict[tuple[str, str, str, str], list[float]] = {}
    for r in sorted(records, key=lambda r: (r.meter, r.ts)):
        if r.status is not HeldStatus.OPEN:
            continue
        a = acc.setdefault((r.meter, r.area, r.carrier, r.energy_unit), [0.0, 0.0, 0])
        a[0] += r.energy
        a[1] += r.co2e_kg or 0.0
        a[2] += 1
    return [HeldTotal(meter=m, site=site, area=area, carrier=carrier, energy=e, energy_unit=unit, co2e_kg=c,
                      records=int(n)) for (m, area, carrier, unit), (e, c, n) in sorted(acc.items())]
