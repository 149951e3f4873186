"""Gap apportionment in the converter: which samples are spread (flagged gap or stuck past a few minutes, any
past gap_after_s), the shares as points (keys, values, flags, CO2e each with its own time's factor), the
vectorized columns' estimated mask, quarter hours above the bound, and the start clamped at the plant's."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from calc import topics
from calc.plant import parse_plant
from ingest.convert import Converter
from ingest.points import CO2E, DELTA, ENERGY, FLAGS, INTERVAL, TS, VALUE, ts_to_us
from ingest.store.sqlite import SqliteStore
from tests.ingest.helpers import counter_sample, message

START = datetime(2026, 1, 1, tzinfo=UTC)
PLANT = parse_plant({
    "site": {"id": "demo", "region": "CN", "start": "2026-01-01T00:00:00Z", "timezone": "Asia/Shanghai"},
    "meters": [{"id": "m1", "area": "a1", "carrier": "electricity"}],
})
NOW_US = ts_to_us(datetime(2027, 6, 1, tzinfo=UTC))
TOPIC = topics.reading("demo", "a1", "m1")


def conv(**kw: float) -> Converter:
    return Converter(PLANT, clock=lambda: NOW_US / 1e6, **kw)  # type: ignore[arg-type]


def convert(c: Converter, *samples: dict[str, Any]) -> list[list[Any]]:
    (out,), _ = c.convert_to_batch([(TOPIC, message("m1", 1, samples), NOW_US)])
    assert out.dead == [] and out.held == []
    return [list(p) for p in out.points]


@pytest.mark.parametrize(("interval_s", "flags", "spread"), [
    (120.0, ["gap"], False),    # flagged, but within gap_flagged_after_s (180 s)
    (240.0, ["gap"], True),     # flagged and past it
    (240.0, ["stuck"], True),   # a stuck counter catching up: spread over the stuck span
    (240.0, [], False),         # unflagged: only past gap_after_s (900 s)
    (901.0, [], True),
    (60.0, [], False),
])
def test_which_samples_are_spread(interval_s: float, flags: list[str], spread: bool) -> None:
    end = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    points = convert(conv(), counter_sample(end, 10.0, 110.0, interval_s=interval_s, flags=flags))
    assert (len(points) > 1) is spread
    if spread:
        assert all("estimated" in p[FLAGS].split(",") for p in points)
        assert math.fsum(p[DELTA] for p in points) == 10.0 and sum(p[ENERGY] for p in points) == 10.0


def test_shares_are_points_at_minute_ends_with_the_counter_interpolated() -> None:
    end = datetime(2026, 3, 1, 12, 3, 30, tzinfo=UTC)  # 4 minutes from 11:59:30: 30 s, 60, 60, 60, 30 s
    c = conv()
    points = convert(c, counter_sample(end, 8.0, 108.0, interval_s=240.0, flags=["gap"]))
    stamps = [p[TS] for p in points]
    minute = ts_to_us(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    assert stamps == [minute - 1, minute + 60_000_000 - 1, minute + 120_000_000 - 1, minute + 180_000_000 - 1,
                      ts_to_us(end)]
    assert [p[INTERVAL] for p in points] == [30.0, 60.0, 60.0, 60.0, 30.0]
    assert [p[DELTA] for p in points] == [1.0, 2.0, 2.0, 2.0, 1.0]
    assert [p[VALUE] for p in points] == [101.0, 103.0, 105.0, 107.0, 108.0]
    assert [p[FLAGS] for p in points] == ["gap,estimated"] * 5
    again = convert(c, counter_sample(end, 8.0, 108.0, interval_s=240.0, flags=["gap"]))
    assert again == points  # deterministic: a replay is an exact duplicate


def test_each_share_takes_the_co2e_of_a_sample_at_its_own_time() -> None:
    # across a year boundary each share goes through the factor table at its own time, like a sample there
    # (the default set has the same CN grid factor both years: this pins the path, not a change of factor)
    end = datetime(2027, 1, 1, 0, 30, tzinfo=UTC)
    c = conv()
    points = convert(c, counter_sample(end, 60.0, 160.0, interval_s=3600.0, flags=["gap"]))
    new_year = ts_to_us(datetime(2027, 1, 1, tzinfo=UTC))
    kg_per_kwh = {p[TS] < new_year: p[CO2E] / p[ENERGY] for p in points}
    single = [convert(c, counter_sample(t, 1.0, 1.0)) for t in (datetime(2026, 12, 31, 23, 59, tzinfo=UTC),
                                                               datetime(2027, 1, 1, 0, 1, tzinfo=UTC))]
    assert kg_per_kwh[True] == pytest.approx(single[0][0][CO2E])
    assert kg_per_kwh[False] == pytest.approx(single[1][0][CO2E])


def test_the_vectorized_columns_mark_the_estimated_points() -> None:
    c = conv()
    normal = counter_sample(datetime(2026, 3, 1, 10, 0, tzinfo=UTC), 1.0, 100.0)
    gap = counter_sample(datetime(2026, 3, 1, 11, 0, tzinfo=UTC), 59.0, 159.0, interval_s=3540.0, flags=["gap"])
    _, batch = c.convert_to_batch([(TOPIC, message("m1", 1, [normal, gap]), NOW_US)])
    assert batch.counted is not None and batch.counted.estimated is not None
    assert batch.counted.estimated.tolist() == [False] + [True] * 59
    assert np.array_equal(batch.counted.energy, np.asarray([p[ENERGY] for p in batch.points]))


def test_totals_of_a_gap_in_the_store_vectorized(tmp_path: Path) -> None:
    c = conv()
    store = SqliteStore(tmp_path / "s.sqlite")
    try:
        midnight_cn = datetime(2026, 3, 1, 16, 0, tzinfo=UTC)  # local midnight in Asia/Shanghai
        gap = counter_sample(midnight_cn + timedelta(minutes=20), 100.0, 200.0, interval_s=6000.0, flags=["gap"])
        (_,), batch = c.convert_to_batch([(TOPIC, message("m1", 1, [gap]), NOW_US)])
        assert store.write(batch).stored == 100
        (before,) = store.totals("demo", midnight_cn - timedelta(days=1), midnight_cn)
        (after,) = store.totals("demo", midnight_cn, midnight_cn + timedelta(days=1))
        assert (before.energy, after.energy) == (80.0, 20.0)
        assert (before.estimated_energy, after.estimated_energy) == (80.0, 20.0)
    finally:
        store.close()


def test_quarter_hours_above_the_bound_and_the_start_clamped() -> None:
    end = datetime(2026, 3, 3, 0, 0, tzinfo=UTC)
    points = convert(conv(gap_max_segments=1000), counter_sample(end, 96.0, 196.0, interval_s=86_400.0))
    assert len(points) == 96 and {p[INTERVAL] for p in points} == {900.0}
    assert sum(p[DELTA] for p in points) == 96.0
    # an interval reaching back before the plant's start is spread from the start
    early = convert(conv(), counter_sample(START + timedelta(minutes=2), 10.0, 10.0, interval_s=3600.0, flags=["gap"]))
    assert [p[DELTA] for p in early] == [5.0, 5.0] and early[0][TS] == ts_to_us(START + timedelta(minutes=1)) - 1
