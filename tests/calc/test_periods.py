"""Period bounds are cut in the site's time zone and returned in UTC."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from calc.periods import PeriodError, resolve

NOW = datetime(2026, 11, 29, 20, 30, tzinfo=UTC)  # 04:30 on 30 Nov in Shanghai (UTC+8)


def test_today_is_the_local_day() -> None:
    p = resolve("today", None, None, "Asia/Shanghai", NOW)
    assert p.start == datetime(2026, 11, 29, 16, 0, tzinfo=UTC)
    assert p.end == datetime(2026, 11, 30, 16, 0, tzinfo=UTC)


def test_month_rolls_over_the_year() -> None:
    p = resolve("month", None, None, "UTC", datetime(2026, 12, 31, 23, 0, tzinfo=UTC))
    assert (p.start, p.end) == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))


def test_year() -> None:
    p = resolve("year", None, None, "Asia/Shanghai", NOW)
    assert p.start == datetime(2025, 12, 31, 16, tzinfo=UTC)
    assert p.end == datetime(2026, 12, 31, 16, tzinfo=UTC)


@pytest.mark.parametrize(("name", "start", "end", "message"), [
    ("week", None, None, "unknown period"),
    (None, datetime(2026, 1, 2, tzinfo=UTC), None, "both"),
    (None, datetime(2026, 1, 2), datetime(2026, 1, 3), "time zone"),
    (None, datetime(2026, 1, 3, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC), "after"),
])
def test_bad_periods_say_what_is_wrong(name: str | None, start: datetime | None, end: datetime | None,
                                       message: str) -> None:
    with pytest.raises(PeriodError, match=message):
        resolve(name, start, end, "UTC", NOW)
