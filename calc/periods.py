"""Accounting periods (today, this month, this year, custom) as UTC bounds, cut in the site's time zone.

Shared by the API and the SCADA gateway so that both answer for the same instants."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from calc.errors import CalcError

NAMED = ("today", "month", "year")


class PeriodError(CalcError):
    """A period that cannot be understood; `where` names the query parameter."""

    def __init__(self, message: str, where: str = "period") -> None:
        super().__init__(message)
        self.where = where


@dataclass(frozen=True)
class AccountingPeriod:
    """A named accounting period (today, month, year or custom) and its UTC bounds."""

    name: str
    start: datetime  # UTC, inclusive
    end: datetime    # UTC, exclusive


def resolve(name: str | None, start: datetime | None, end: datetime | None, tz: str, now: datetime) -> AccountingPeriod:
    """Bounds of a named period containing `now`, or of an explicit [start, end)."""
    if start is not None or end is not None:
        if start is None or end is None:
            raise PeriodError("give both 'from' and 'to', or a period name", "from" if start is None else "to")
        if start.tzinfo is None or end.tzinfo is None:
            raise PeriodError("'from' and 'to' need a time zone offset, e.g. 2026-11-29T00:00:00Z", "from")
        if end <= start:
            raise PeriodError("'to' must be after 'from'", "to")
        return AccountingPeriod("custom", start.astimezone(UTC), end.astimezone(UTC))
    name = name or "today"
    local = now.astimezone(ZoneInfo(tz))
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if name == "today":
        first, after = midnight, midnight + timedelta(days=1)
    elif name == "month":
        first = midnight.replace(day=1)
        after = first.replace(year=first.year + (first.month == 12), month=first.month % 12 + 1)
    elif name == "year":
        first = midnight.replace(month=1, day=1)
        after = first.replace(year=first.year + 1)
    else:
        raise PeriodError(f"unknown period {name!r}; use one of {', '.join(NAMED)} or from/to")
    return AccountingPeriod(name, first.astimezone(UTC), after.astimezone(UTC))
