"""The SQLite store on a real file: idempotent writes, conflicts, rollups, a reader in another process
(retention: test_store_retention.py; sites: test_store_two_sites.py; old files: test_store_migration.py)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calc import topics
from ingest.convert import Converter
from ingest.points import POINT_COLUMNS, Batch, ts_to_us
from ingest.store import open_reader
from ingest.store.sqlite import SqliteStore
from ingest.store.sqlite_rows import RUN_MAX
from ingest.store.sqlite_schema import plan
from tests.ingest.helpers import (
    REPO,
    SITE,
    STORE_CONVERTER,
    STORE_NOW_US,
    STORE_PLANT,
    T0,
    counter_batch,
    counter_sample,
    join_batches,
    message,
    power_sample,
)


def points(meter: str, start: datetime, n: int, step_s: float, kwh: float = 1.0, seq: int = 0) -> Batch:
    return counter_batch(meter, start, n, step_s, kwh, seq)  # batch.counted: the vectorized rollup path


def part(batch: Batch, sl: slice) -> Batch:
    return Batch(points=batch.points[sl], meters=batch.meters, factors=batch.factors)


join = join_batches  # point rows only: the row-wise rollup path


def test_same_point_twice_is_stored_once_and_a_changed_value_is_a_conflict(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite")
    batch = points("m1", T0, 10, 60)
    first = store.write(batch)
    assert (first.stored, first.duplicates, first.conflicts) == (10, 0, 0)
    again = store.write(join(part(batch, slice(0, 4)), points("m1", T0 + timedelta(hours=1), 2, 60)))
    assert (again.stored, again.duplicates, again.conflicts) == (2, 4, 0)
    assert again.new_keys is not None and len(again.new_keys) == 2
    changed = points("m1", T0, 1, 60, kwh=9.0)
    result = store.write(changed)
    assert (result.stored, result.duplicates, result.conflicts, result.dead_lettered) == (0, 0, 1, 1)
    (dead,) = store.dead_letters(SITE)
    assert dead.reason.startswith("conflict:") and "delta: stored 1.0, got 9.0" in dead.reason
    (total,) = store.totals(SITE, T0, T0 + timedelta(days=1))
    assert total.energy == pytest.approx(12.0) and total.points == 12  # the stored value was kept
    store.close()


def test_duplicate_inside_one_batch_counts_once(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite")
    batch = points("m2", T0, 3, 60)
    result = store.write(join(batch, part(batch, slice(0, 1))))
    assert (result.stored, result.duplicates) == (3, 1)
    (total,) = store.totals(SITE, T0, T0 + timedelta(days=1))
    assert total.points == 3
    store.close()


@pytest.mark.parametrize("n", [5, RUN_MAX - 1, RUN_MAX, 2 * RUN_MAX + 7])
def test_batches_around_the_insert_chunk_store_every_point_once(tmp_path: Path, n: int) -> None:
    """A message's points go in runs of up to RUN_MAX a statement: every one lands, once, with its values."""
    store = SqliteStore(tmp_path / "s.sqlite")
    batch = points("m1", T0, n, 1, kwh=0.5)
    assert store.write(batch).stored == n
    rows = store._query("SELECT ts_us, value, delta FROM points WHERE meter = 'm1' ORDER BY ts_us")
    assert rows == [(p[1], p[3], p[5]) for p in batch.points]
    assert (store.write(batch).stored, store.write(batch).duplicates) == (0, n)
    later = points("m1", T0 + timedelta(seconds=n - 3), n, 1, kwh=0.5)  # 3 known keys (other counter), then new
    result = store.write(later)
    assert (result.stored, result.duplicates, result.conflicts) == (n - 3, 0, 3)
    assert store.point_count() == 2 * n - 3
    store.close()


def test_points_whose_shared_columns_change_mid_message_keep_their_own(tmp_path: Path) -> None:
    """Runs break where quality, flags, quantity, unit or interval change: each point keeps its own columns."""
    store = SqliteStore(tmp_path / "s.sqlite")
    samples = []
    for i in range(40):
        ts = T0 + timedelta(seconds=i)
        if i % 7 == 3:
            samples.append(power_sample(ts, 5.0 + i, quality="uncertain" if i % 2 else "good"))
        else:
            samples.append(counter_sample(ts, 0.25, 100 + i, interval_s=1.0 if i < 20 else 2.0,
                                          **({"flags": ["gap"]} if i % 5 == 0 else {}),
                                          **({"quality": "bad"} if i in (10, 11) else {})))
    (out,), batch = STORE_CONVERTER.convert_to_batch([(topics.reading(SITE, "a1", "m1"), message("m1", 9, samples),
                                                       STORE_NOW_US)])
    assert out.dead == [] and len(batch.points) == 40
    assert store.write(batch).stored == 40
    rows = store._query(f"SELECT {', '.join(POINT_COLUMNS)} FROM points ORDER BY ts_us")
    assert rows == [tuple(p) for p in batch.points]
    store.close()


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> SqliteStore:
    store = SqliteStore(tmp_path_factory.mktemp("rollups") / "s.sqlite", synchronous="OFF")
    # 3 days of 20 s readings for m1 and 7 s readings for m2: buckets split unevenly
    for day in range(3):
        store.write(points("m1", T0 + timedelta(days=day), 4320, 20, kwh=0.25, seq=day))
        store.write(points("m2", T0 + timedelta(days=day, seconds=3), 12342, 7, kwh=0.1, seq=day))
    return store


def raw_totals(store: SqliteStore, start: datetime, end: datetime) -> dict[str, tuple[float, int]]:
    # straight from the raw points, bypassing the rollups
    rows = store._query("SELECT meter, SUM(energy), COUNT(*) FROM points WHERE ts_us >= ? AND ts_us < ? "
                        "AND energy IS NOT NULL GROUP BY meter", (ts_to_us(start), ts_to_us(end)))
    return {r[0]: (r[1], r[2]) for r in rows}


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=-3600, max_value=3 * 86400 + 3600), st.integers(min_value=0, max_value=3 * 86400))
def test_totals_from_rollups_equal_the_sum_of_raw_points(filled: SqliteStore, offset_s: int, length_s: int) -> None:
    start = T0 + timedelta(seconds=offset_s, microseconds=offset_s % 7 * 1000)
    end = start + timedelta(seconds=length_s)
    got = {t.meter: (t.energy, t.points) for t in filled.totals(SITE, start, end)}
    want = raw_totals(filled, start, end)
    assert set(got) == set(want)
    for meter, (energy, n) in want.items():
        assert got[meter][1] == n
        assert got[meter][0] == pytest.approx(energy)


def test_plan_uses_hours_in_the_middle() -> None:
    s = ts_to_us(datetime(2026, 3, 1, 0, 0, 30, tzinfo=UTC))
    e = ts_to_us(datetime(2026, 3, 1, 5, 10, 15, tzinfo=UTC))
    at = [ts_to_us(datetime(2026, 3, 1, h, m, tzinfo=UTC)) for h, m in ((0, 1), (0, 15), (1, 0), (5, 0), (5, 10))]
    assert sorted(plan(s, e), key=lambda p: p[1]) == [
        ("points", s, at[0]), ("rollup_minute", at[0], at[1]), ("rollup_quarter", at[1], at[2]),
        ("rollup_hour", at[2], at[3]), ("rollup_minute", at[3], at[4]), ("points", at[4], e)]


def test_latest_values_and_summaries(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite")
    conv = Converter(STORE_PLANT, clock=lambda: STORE_NOW_US / 1e6)
    out = conv.convert(topics.reading(SITE, "a1", "m1"), message("m1", 1, [
        power_sample(T0, 10.0), power_sample(T0 + timedelta(seconds=1), 12.0, quality="uncertain"),
        counter_sample(T0, 1.0, 5.0)]), STORE_NOW_US)
    batch = conv.batch([out])
    store.write(batch)
    store.write(part(batch, slice(0, 1)))  # an older duplicate must not move "latest" back
    (summary,) = store.meter_summaries(SITE)
    assert summary.samples == 3 and summary.last_quality == "uncertain"
    assert summary.last_ts == T0 + timedelta(seconds=1)
    latest = {v.quantity: v for v in store.latest_values(SITE)}
    assert latest["active_power"].value == 12.0 and latest["active_power"].quality == "uncertain"
    store.close()


def test_open_reader_reads_while_another_process_writes(tmp_path: Path) -> None:
    db = tmp_path / "var" / "live.sqlite"
    writer = SqliteStore(db)
    script = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(REPO)!r})
        from datetime import datetime, timedelta, UTC
        from pathlib import Path
        from ingest.store import open_reader
        reader = open_reader({{"store": {{"kind": "sqlite", "path": "var/live.sqlite"}}}}, Path({str(tmp_path)!r}))
        seen = 0
        for line in sys.stdin:
            t0 = datetime(2026, 3, 1, tzinfo=UTC)
            totals = reader.totals("demo", t0, t0 + timedelta(days=2))
            print(sum(t.points for t in totals), flush=True)
        reader.close()
    """)
    reader = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    assert reader.stdin is not None and reader.stdout is not None
    counts = []
    for i in range(5):
        writer.write(points("m1", T0 + timedelta(hours=i), 60, 60, seq=i))
        reader.stdin.write("go\n")
        reader.stdin.flush()
        counts.append(int(reader.stdout.readline()))
    reader.stdin.close()
    assert reader.wait(10) == 0
    assert counts == [60, 120, 180, 240, 300]
    writer.close()
    local = open_reader({"store": {"path": str(db)}}, tmp_path)
    assert sum(t.points for t in local.totals(SITE, T0, T0 + timedelta(days=1))) == 300
    local.close()
