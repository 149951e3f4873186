"""The live stream's per-flush aggregates: what arrived since the last flush (readings, CO2e kg per area), and at
each flush the site's and every area's power, CO2e rate and today's CO2e, built once from the live state.

The engine folds each message into `Pending` (a few additions, no event built); `flush` turns it into one
`aggregate` event, one `balance` event (the site snapshot) and, for `meters=all` subscribers, each changed
meter's latest state. Nothing is lost between flushes: `added_co2e_kg` of consecutive aggregates sums to every
kg the live sums took, and `readings` to every reading folded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from api.live.live_sums import LiveState, MeterLive


@dataclass
class Pending:
    """What arrived since the last flush."""

    readings: int = 0
    co2e_messages: int = 0
    added_kg: dict[str, float] = field(default_factory=dict)     # area -> kg CO2e counted since the last flush
    oldest_sample: datetime | None = None    # of the readings folded since the last flush
    newest_sample: datetime | None = None
    first_received: float | None = None      # epoch s, the earliest message folded since the last flush
    changed: set[str] = field(default_factory=set)   # meters whose live values changed
    dirty: bool = False                      # something to send (a rate refresh, a release, a message)

    def reading(self, meter: MeterLive, ts: datetime, received: float) -> None:
        self.readings += 1
        if self.oldest_sample is None or ts < self.oldest_sample:
            self.oldest_sample = ts
        if self.newest_sample is None or ts > self.newest_sample:
            self.newest_sample = ts
        if self.first_received is None:
            self.first_received = received
        self.changed.add(meter.meter)
        self.dirty = True

    def co2e(self, meter: MeterLive, co2e_kg: float, received: float | None) -> None:
        self.co2e_messages += 1
        self.added_kg[meter.area] = self.added_kg.get(meter.area, 0.0) + co2e_kg
        if self.first_received is None and received is not None:
            self.first_received = received
        self.changed.add(meter.meter)
        self.dirty = True


def meter_doc(m: MeterLive, seq: int | None, received: float | None, added_co2e_kg: float = 0.0) -> dict[str, Any]:
    """A `meter` event (the same fields whether sent per update or coalesced)."""
    return {"meter": m.meter, "area": m.area, "seq": seq, "ts": m.last_ts.isoformat() if m.last_ts else None,
            "power_kw": m.power_kw, "co2e_rate_kg_per_h": m.rate.rate_kg_per_h if m.rate else None,
            "added_co2e_kg": added_co2e_kg, "received": received}


def _zero() -> dict[str, float]:
    return {"power_kw": 0.0, "co2e_rate_kg_per_h": 0.0, "today_co2e_kg": 0.0, "added_co2e_kg": 0.0}


def sums(live: LiveState, now: datetime) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Power, CO2e rate and today's CO2e of the site and of each area (one pass over the meters)."""
    start = live.period_start("today", now)
    site = _zero()
    areas: dict[str, dict[str, float]] = {}
    for m in live.meters.values():
        a = areas.get(m.area)
        if a is None:
            a = areas[m.area] = _zero()
        power = m.power_kw or 0.0
        rate = m.rate.rate_kg_per_h if m.rate is not None else 0.0
        today = m.period_kg.get("today")
        kg = today[1] if today is not None and today[0] == start else 0.0
        a["power_kw"] += power
        a["co2e_rate_kg_per_h"] += rate
        a["today_co2e_kg"] += kg
        site["power_kw"] += power
        site["co2e_rate_kg_per_h"] += rate
        site["today_co2e_kg"] += kg
    return site, areas


def snapshot(site_id: str, live: LiveState, now: datetime) -> dict[str, Any]:
    """The `balance` event: the site's power, CO2e rate and today's CO2e."""
    site, _ = sums(live, now)
    return {"site": site_id, "at": now.isoformat(), "power_kw": site["power_kw"],
            "co2e_rate_kg_per_h": site["co2e_rate_kg_per_h"], "today_co2e_kg": site["today_co2e_kg"]}


def aggregate(site_id: str, live: LiveState, pending: Pending, now: datetime, interval_s: float,
              ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The `aggregate` event and the `balance` event of one flush."""
    site, areas = sums(live, now)
    for area, kg in pending.added_kg.items():
        if area in areas:
            areas[area]["added_co2e_kg"] += kg
        site["added_co2e_kg"] += kg
    balance = {"site": site_id, "at": now.isoformat(), "power_kw": site["power_kw"],
               "co2e_rate_kg_per_h": site["co2e_rate_kg_per_h"], "today_co2e_kg": site["today_co2e_kg"]}
    doc = {"site": site_id, "at": now.isoformat(), "interval_s": round(interval_s, 3),
           "readings": pending.readings, "co2e_messages": pending.co2e_messages,
           "oldest_sample": pending.oldest_sample.isoformat() if pending.oldest_sample else None,
           "newest_sample": pending.newest_sample.isoformat() if pending.newest_sample else None,
           "first_received": pending.first_received,
           "total": site, "areas": areas}
    return doc, balance
