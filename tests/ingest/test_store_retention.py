"""SQLite retention on real files: what it deletes, what totals still say, late readings, chunks, disk errors."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from calc import topics
from ingest.config import SqliteStoreSettings, store_settings
from ingest.points import Batch, DeadLetter, ts_to_us
from ingest.store import open_store
from ingest.store.base import StoreError
from ingest.store.sqlite import SqliteStore
from ingest.store.sqlite_retention import Pruned, Retention
from tests.ingest.helpers import REPO, SITE, STORE_CONVERTER, STORE_NOW_US, T0, counter_batch, message, power_sample

NOW = T0 + timedelta(days=400)
RETENTION = Retention(raw_days=30, minute_days=45, deadletter_days=60)


def totals(store: SqliteStore, start: datetime, end: datetime) -> dict[str, tuple[int, float, float]]:
    return {t.meter: (t.points, round(t.energy, 9), round(t.co2e_kg, 9)) for t in store.totals(SITE, start, end)}


def dead(received: datetime, reason: str) -> DeadLetter:
    return DeadLetter(ts_to_us(received), topics.reading(SITE, "a1", "m1"), b"{}", reason, "m1", 1)


@pytest.fixture
def aged(tmp_path: Path) -> SqliteStore:
    """m1: two hours of minute readings at T0 and at T0+20 d, one hour at T0+60 d; m2 the same hour at T0+60 d;
    two dead letters received 100 and 10 days before NOW."""
    store = SqliteStore(tmp_path / "s.sqlite", retention=RETENTION)
    for i, (day, n) in enumerate(((0, 120), (20, 120), (60, 60))):
        store.write(counter_batch("m1", T0 + timedelta(days=day), n, 60, kwh=0.5 + i, seq=i))
    store.write(counter_batch("m2", T0 + timedelta(days=60), 60, 60, kwh=2.0))
    store.write(Batch(dead=[dead(NOW - timedelta(days=100), "old"), dead(NOW - timedelta(days=10), "recent")]))
    return store


def test_retention_deletes_old_detail_and_every_quarter_hour_figure_stays(aged: SqliteStore) -> None:
    day20 = T0 + timedelta(days=20)
    periods = [(T0, T0 + timedelta(hours=2)), (day20, day20 + timedelta(hours=2)),
               (T0 - timedelta(hours=5, minutes=30), T0 + timedelta(hours=18, minutes=30)),  # a day in Kolkata
               (T0 + timedelta(minutes=30), T0 + timedelta(hours=1, minutes=45)),             # half and quarter hours
               (day20 + timedelta(minutes=7), day20 + timedelta(hours=1)),                     # whole minutes
               (T0, T0 + timedelta(days=100))]
    before = [totals(aged, *p) for p in periods]
    assert before[3]["m1"][:2] == (75, 37.5) and before[2]["m1"][:2] == (120, 60.0)

    pruned = aged.apply_retention(NOW)

    # newest reading T0+60d 00:59: raw points before T0+30d and minute rollups before T0+15d go
    assert pruned == Pruned(points=240, minute_rollups=120, dead_letters=1)
    assert aged.point_count() == 120
    assert [d.reason for d in aged.dead_letters(SITE)] == ["recent"]
    assert [totals(aged, *p) for p in periods] == before
    assert aged.apply_retention(NOW) == Pruned()  # nothing more to do, and done


def test_bounds_inside_deleted_detail_are_floored_so_adjacent_periods_still_add_up(aged: SqliteStore) -> None:
    day20 = T0 + timedelta(days=20)
    cut_early = T0 + timedelta(minutes=7, seconds=30)   # raw and minute detail gone: the quarter hour
    cut_mid = day20 + timedelta(minutes=7, seconds=30)  # raw gone, minutes kept: the minute
    assert totals(aged, cut_early, T0 + timedelta(hours=1))["m1"][0] == 52
    assert totals(aged, cut_mid, day20 + timedelta(hours=1))["m1"][0] == 52
    aged.apply_retention(NOW)
    assert totals(aged, cut_early, T0 + timedelta(hours=1))["m1"][0] == 60       # from T0 00:00
    assert totals(aged, cut_mid, day20 + timedelta(hours=1))["m1"][0] == 53      # from 00:07
    assert totals(aged, T0, cut_early) == {}                                       # [00:00, 00:00): empty
    whole = totals(aged, T0, T0 + timedelta(hours=2))["m1"]
    left, right = totals(aged, T0, cut_early + timedelta(minutes=20)), totals(aged, cut_early + timedelta(
        minutes=20), T0 + timedelta(hours=2))
    assert left["m1"][0] + right["m1"][0] == whole[0] == 120


def test_a_late_reading_older_than_the_raw_points_kept_is_held_not_counted(aged: SqliteStore) -> None:
    aged.apply_retention(NOW)
    day61 = T0 + timedelta(days=61)
    # one message: a reading at T0+10d (its twin, if any, is deleted) and one at T0+61d, on the vectorized path
    batch = counter_batch("m1", T0 + timedelta(days=10), 2, 51 * 86400, kwh=3.0, seq=9)
    result = aged.write(batch)
    assert (result.stored, result.held, result.dead_lettered) == (1, 1, 0)
    assert result.new_keys is None and len(batch.points) == 1 and batch.counted is None
    (held,) = aged.held(SITE)
    assert "older than the raw points kept" in held.reason and held.energy == 3.0 and held.ts == T0 + timedelta(
        days=10)
    assert totals(aged, day61, day61 + timedelta(hours=1))["m1"][:2] == (1, 3.0)
    assert totals(aged, T0 + timedelta(days=10), T0 + timedelta(days=11)) == {}
    again = aged.write(counter_batch("m1", T0 + timedelta(days=10), 2, 51 * 86400, kwh=3.0, seq=9))
    assert (again.stored, again.held, again.duplicates) == (0, 0, 2)  # a replay: a duplicate, held once


def test_retention_that_deleted_nothing_records_nothing_so_a_backfill_is_stored(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite", retention=RETENTION)
    assert store.apply_retention(NOW) == Pruned()  # an empty store: its cutoff is 30 days before NOW
    old = counter_batch("m1", T0, 60, 60)          # 400 days before NOW: older than any cutoff, and new here
    assert store.write(old).stored == 60 and store.dead_letters(SITE) == []
    assert store.apply_retention(NOW) == Pruned()  # counted back from the newest reading: nothing is old yet
    assert store._query("SELECT * FROM kept_from") == []
    store.close()


def test_retention_deletes_in_short_transactions(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite", retention=Retention(raw_days=1))
    samples = []
    for i in range(300):  # two quantities at each time: chunks of one row must still move forward
        ts = T0 + timedelta(minutes=i)
        samples += [power_sample(ts, 5.0), {"ts": ts.isoformat().replace("+00:00", "Z"),
                                            "quantity": "active_energy_import", "value": 100.0 + i, "unit": "kWh",
                                            "delta": 1.0, "interval_s": 60.0}]
    (out,), batch = STORE_CONVERTER.convert_to_batch([(topics.reading(SITE, "a1", "m1"), message("m1", 1, samples),
                                                       STORE_NOW_US)])
    assert out.dead == []
    store.write(batch)
    store.write(counter_batch("m2", T0 + timedelta(days=3), 10, 60))
    commits: list[str] = []
    store._db.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
    assert store.apply_retention(NOW, chunk_rows=1).points == 600
    assert len(commits) >= 300  # one time (two rows) a transaction, never the whole deletion at once
    assert store.point_count() == 10 and totals(store, T0, T0 + timedelta(hours=5))["m1"][:2] == (300, 300.0)
    store.close()


def test_a_time_budget_trims_in_steps_that_end_where_one_pass_ends(aged: SqliteStore, tmp_path: Path) -> None:
    """budget_s=0: each call does one transaction and says it is not done; the calls add up to one whole pass."""
    calls: list[Pruned] = []
    while not calls or not calls[-1].done:
        calls.append(aged.apply_retention(NOW, chunk_rows=25, budget_s=0.0))
        assert len(calls) < 100
    assert len(calls) > 10 and not any(c.done for c in calls[:-1])
    assert sum(c.points for c in calls) == 240 and sum(c.minute_rollups for c in calls) == 120
    assert sum(c.dead_letters for c in calls) == 1 and aged.point_count() == 120


def test_defaults_bound_every_kind_of_detail_and_keep_the_figures() -> None:
    s = store_settings({"store": {}})
    assert isinstance(s, SqliteStoreSettings)
    assert (s.retention_days, s.minute_rollup_retention_days, s.deadletter_retention_days) == (90, 400, 550)
    with pytest.raises(Exception, match="minute_rollup_retention_days"):
        store_settings({"store": {"retention_days": 500}})
    forever = store_settings({"store": {"retention_days": 0, "minute_rollup_retention_days": 0}})
    assert isinstance(forever, SqliteStoreSettings) and forever.retention_days == 0


def test_open_store_passes_the_retention_on(tmp_path: Path) -> None:
    store = open_store(SqliteStoreSettings(retention_days=0, minute_rollup_retention_days=0), tmp_path)
    assert store.retention == Retention(None, None, 550)
    store.close()


FULL_DISK = """
import resource, signal, sys
sys.path.insert(0, {repo!r})
from datetime import datetime, timedelta, UTC
from pathlib import Path
from ingest.store.base import StoreError, StoreDataError
from ingest.store.sqlite import SqliteStore
from ingest.store.sqlite_retention import Retention
from tests.ingest.helpers import counter_batch, T0

store = SqliteStore(Path({path!r}), retention=Retention(raw_days=30, minute_days=45, deadletter_days=60))
store.point_count()
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing us
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))  # no file of ours may grow past 4 KiB: a full disk
for name, call in (("retention", lambda: store.apply_retention(datetime.fromisoformat({now!r}))),
                   ("write", lambda: store.write(counter_batch("m2", T0 + timedelta(days=61), 500, 1)))):
    try:
        call()
        print(name, "no error")
    except StoreDataError as exc:
        print(name, "StoreDataError", exc)
    except StoreError as exc:
        print(name, "StoreError", exc)
resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))  # space again: the same calls now work
print("retry", store.apply_retention(datetime.fromisoformat({now!r})).points, store.write(
    counter_batch("m2", T0 + timedelta(days=61), 500, 1)).stored)
"""


def test_a_full_disk_during_retention_or_a_write_is_a_store_error_and_nothing_is_lost(aged: SqliteStore) -> None:
    path = aged.path
    points = aged.point_count()
    aged.close()  # its WAL is checkpointed away: the next write starts a new one, which cannot grow
    out = subprocess.run([sys.executable, "-c", FULL_DISK.format(repo=str(REPO), path=str(path),
                                                                  now=NOW.isoformat())],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    for line, call in zip(lines[:2], ("retention", "write"), strict=True):  # EFBIG: SQLite says I/O error or full
        assert line.startswith(f"{call} StoreError") and line.endswith(("disk I/O error", "disk is full")), lines
    assert lines[2] == "retry 240 500", lines
    again = SqliteStore(path)
    assert again.point_count() == points - 240 + 500
    again.close()


def test_retention_on_a_closed_store_is_a_store_error(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite", retention=RETENTION)
    store.close()
    with pytest.raises(StoreError, match="retention"):
        store.apply_retention(NOW)
