"""Data completeness: the counter samples a meter should have sent in a period at its configured interval, counted
from the period's start or, for a meter that began in the period, from its first stored reading (so a plant that
started minutes ago is not 0 % complete)."""

from __future__ import annotations

import weakref
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from api.settings import Settings
from ingest.store.base import StoreReader

_INTERVALS: dict[int, tuple[weakref.ref[Any], dict[str, float | None]]] = {}   # id(plant) -> (plant, intervals)


def interval_of(settings: Settings, meter: str) -> float | None:
    """The meter's configured reporting interval (plant file `interval_s`), or None (read once per plant, found
    by identity: a search of the plant file per meter made a balance of N meters cost N² steps, and hashing a
    frozen plant model costs as much)."""
    plant = settings.plant
    cached = _INTERVALS.get(id(plant))
    if cached is None or cached[0]() is not plant:
        intervals: dict[str, float | None] = {}
        for raw in settings.plant_data.get("meters", []):
            interval = raw.get("interval_s")
            intervals.setdefault(raw.get("id"), float(interval) if isinstance(interval, int | float)
                                 and interval > 0 else None)
        key = id(plant)
        cached = _INTERVALS[key] = (weakref.ref(plant, lambda _: _INTERVALS.pop(key, None)),
                                    intervals)
    return cached[1].get(meter)


def expected_points(settings: Settings, meter: str, start: datetime, end: datetime, now: datetime,
                    first: datetime | None = None) -> int | None:
    """Counter samples the meter should have sent in [start, min(end, now)) at its configured interval, counted
    from `first` (its first stored reading, when it began in the period: see first_readings) if later."""
    interval = interval_of(settings, meter)
    if interval is None:
        return None
    lo, hi = max(start, settings.plant.site.start, first or start), min(end, now)
    return max(0, int((hi - lo).total_seconds() // interval))


#: how first_readings narrows a meter's first reading: the steps it descends through, coarse to fine
_DESCENT = (("1d", timedelta(days=1)), ("1h", timedelta(hours=1)), ("1m", timedelta(minutes=1)))


def first_readings(settings: Settings, store: StoreReader, site: str, start: datetime, end: datetime,
                   now: datetime) -> dict[str, datetime | None]:
    """For each meter without stored points before `start`: its first stored reading in [start, min(end, now)),
    or None when it has none (its completeness cannot be said yet). Meters with earlier points are left out
    (they count from the period's start). Found by descending the store's series, day, hour, minute (a
    handful of reads, and none at all once every meter has history); within the first minute the reading is
    placed `points × interval_s` before the minute's end, never before it."""
    hi = min(end, now)
    site_start = settings.plant.site.start
    known = _begun_of(store, site)     # meter -> it has points before this time (never changes back)
    begun = {m for m, before in known.items() if before <= start}
    if start > site_start and any(m.id not in begun for m in settings.plant.meters):
        for t in store.totals(site, site_start, start):
            if t.points:
                begun.add(t.meter)
                known[t.meter] = min(known.get(t.meter, start), start)
    todo = [m.id for m in settings.plant.meters if m.id not in begun]
    if not todo or hi <= start:
        return dict.fromkeys(todo)
    span = hi - start   # start at the step that cuts the span into few buckets (≤ 120 minutes, ≤ 48 hours)
    steps = _DESCENT[2:] if span <= timedelta(hours=2) else _DESCENT[1:] if span <= timedelta(days=2) else _DESCENT
    tz = settings.plant.site.timezone
    window: dict[str, tuple[datetime, datetime, int]] = {m: (start, hi, 0) for m in todo}
    for step, width in steps:
        by_window: dict[tuple[datetime, datetime], set[str]] = defaultdict(set)
        for m, (lo, up, _) in window.items():
            by_window[(lo, up)].add(m)
        narrowed: dict[str, tuple[datetime, datetime, int]] = {}
        for (lo, up), meters in by_window.items():
            for p in store.series(site, lo, up, step, tz):
                if p.meter in meters and p.points and p.meter not in narrowed:
                    narrowed[p.meter] = (max(lo, p.start), min(up, p.start + width), p.points)
        window = narrowed
    out: dict[str, datetime | None] = dict.fromkeys(todo)
    for m, (lo, up, points) in window.items():
        interval = interval_of(settings, m)
        out[m] = max(lo, up - timedelta(seconds=points * interval)) if interval else lo
        known[m] = min(known.get(m, up), up)    # it has a point before the end of its first minute
    return out


#: per store and site, the meters known to have points before a time: a meter that has begun stays begun, so a
#: balance reads the store's history for it once, not on every request (weak keys: a closed store drops out)
_BEGUN: weakref.WeakKeyDictionary[object, dict[str, dict[str, datetime]]] = weakref.WeakKeyDictionary()


def _begun_of(store: StoreReader, site: str) -> dict[str, datetime]:
    try:
        per_site = _BEGUN.setdefault(store, {})
    except TypeError:      # a store that cannot be weakly referenced: nothing is remembered
        return {}
    return per_site.setdefault(site, {})
