"""Buckets of a series, the same for every store: their lengths, where each starts (a day at the site's local
midnight, shorter steps on UTC multiples), and which SQLite rollup is fine enough for them."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

STEPS_S = {"1m": 60, "15m": 900, "1h": 3600, "1d": 86400}  # series steps, in seconds
DAY_S = 86400


def bucket_start(ts: datetime, step_s: int, tz: str) -> datetime:
    """Start (UTC) of the bucket of `step_s` that holds `ts`; day buckets start at local midnight in `tz`."""
    if step_s == DAY_S:
        local = ts.astimezone(ZoneInfo(tz))
        return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)
    epoch = int(ts.timestamp())
    return datetime.fromtimestamp(epoch - epoch % step_s, UTC)


def rollup_for(step_s: int, tz: str, start: datetime, end: datetime) -> str:
    """The coarsest SQLite rollup whose buckets fit the step's: hours, unless the step or the time zone's days
    are cut at quarter hours (e.g. Asia/Kolkata, +05:30); minutes for 1m steps (kept for the store's minute-rollup
    retention only: older 1m series are empty, 15m ones come from quarter hours, which stay)."""
    if step_s < 900:
        return "rollup_minute"
    zone = ZoneInfo(tz)
    offsets = {zone.utcoffset(t.replace(tzinfo=None)) for t in (start, end)} if step_s == DAY_S else set()
    if step_s % 3600 or any(o is not None and o.total_seconds() % 3600 for o in offsets):
        return "rollup_quarter"
    return "rollup_hour"
