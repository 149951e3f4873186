"""The allowance projection shared by /v1/balance (api.accounting.allowance_status) and the live allowance rule
(api.live): along the boundary's hour-of-week profile of the last 28 days, else the recent burn rate.

Both sides build the profile from the same store read (`hourly_history`: hourly sums of the boundary over the
whole hours in [floor(now) − 28 d, floor(now))) and project with the same function (`project_allowance`), so the
dashboard and the alert agree within an hour. While the boundary has no history they fall back to the burn rate
they always used (24 h for the API, 1 h for the live rule) and say so in `method`.
"""

from __future__ import annotations

import threading
import weakref
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from calc.balance import AllowanceCheck, TimeRange, allowance_check
from calc.performance import HourOfWeekProfile, PerformanceError, allowance_check_expected, hour_of_week_profile
from ingest.store.base import StoreReader

PROFILE_WINDOW = timedelta(days=28)   # history behind the expected profile: four of each weekday
API_BURN_WINDOW = timedelta(hours=24)  # fallback of /v1/balance while there is no history (as before)
LIVE_BURN_WINDOW = timedelta(hours=1)  # fallback of the live rule while there is no history (as before)


class ProjectionMethod(StrEnum):
    """How a projection to the period's end was made."""

    PROFILE = "hour_of_week_profile"   # expected kg of each remaining hour: its hour of the week, last 28 days
    BURN_RATE = "burn_rate"            # no history yet: the recent mean rate, flat to the period's end


@dataclass(frozen=True, slots=True)
class AllowanceProjection:
    check: AllowanceCheck
    method: ProjectionMethod
    burn_window: timedelta | None      # the burn rate's window when method is BURN_RATE


def in_boundary(row: Any, scope: str, target: str | None) -> bool:
    """Whether a store row (with .meter and .area) is inside the allowance's boundary."""
    return scope == "site" or (scope == "area" and row.area == target) or (scope == "meter" and row.meter == target)


def history_range(now: datetime) -> tuple[datetime, datetime]:
    """The whole UTC hours behind the profile at `now`: [floor(now) − 28 d, floor(now))."""
    end = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return end - PROFILE_WINDOW, end


_CACHE: weakref.WeakKeyDictionary[Any, dict[tuple[str, str, str | None, datetime], list[tuple[datetime, float]]]] \
    = weakref.WeakKeyDictionary()
_CACHE_KEYS = 64   # per store: boundaries × hours kept
_CACHE_LOCK = threading.Lock()   # routes run in worker threads


def hourly_history(history: StoreReader, site: str, now: datetime, scope: str,
                   target: str | None) -> list[tuple[datetime, float]]:
    """(hour end, kg CO2e) of the boundary for the profile's hours (blocking: a store read); hours without points
    are left out (they are not "zero", they are unknown). Kept per store until the hour turns, so /v1/balance
    reads 28 days once an hour per boundary, as the live engine does (late points of past hours count from the
    next hour on, in both)."""
    start, end = history_range(now)
    key = (site, scope, target, end)
    with _CACHE_LOCK:
        try:
            memo = _CACHE.setdefault(history, {})
        except TypeError:              # a reader that cannot be weakly referenced: read each time
            memo = {}
        if key in memo:
            return memo[key]
    hourly: dict[datetime, float] = defaultdict(float)
    for point in history.series(site, start, end, "1h", "UTC"):
        if in_boundary(point, scope, target):
            hourly[point.start + timedelta(hours=1)] += point.co2e_kg
    found = sorted(hourly.items())
    with _CACHE_LOCK:
        while len(memo) >= _CACHE_KEYS:
            del memo[next(iter(memo))]
        memo[key] = found
    return found


def expected_profile(hourly: Sequence[tuple[datetime, float]], timezone: str) -> HourOfWeekProfile | None:
    """The hour-of-week profile of those hours in the site's time zone; None while there is no history."""
    try:
        return hour_of_week_profile(hourly, timezone)
    except PerformanceError:
        return None


def project_allowance(used_kg: float, allowance_kg: float, now: datetime, period: TimeRange,
                      profile: HourOfWeekProfile | None, recent: Sequence[tuple[datetime, float]],
                      burn_window: timedelta, ccer_kg: float = 0.0,
                      ccer_cap_fraction: float = 0.05) -> AllowanceProjection:
    """Used + expected kg to the period's end along `profile`; without one, used + the burn rate of `recent`
    ((interval end, kg) pairs) over `burn_window` × the hours left."""
    if profile is not None:
        check = allowance_check_expected(used_kg, allowance_kg, profile, now, period, ccer_kg=ccer_kg,
                                         ccer_cap_fraction=ccer_cap_fraction)
        return AllowanceProjection(check, ProjectionMethod.PROFILE, None)
    check = allowance_check(used_kg, allowance_kg, recent, now, period, window=burn_window, ccer_kg=ccer_kg,
                            ccer_cap_fraction=ccer_cap_fraction)
    return AllowanceProjection(check, ProjectionMethod.BURN_RATE, burn_window)
