"""The SQLite store's errors by cause: StoreDataError for a batch it cannot store for what it holds, StoreError
when it is not working; either way the transaction is rolled back and nothing of the batch is left behind."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from calc import topics
from ingest.points import AGENT, SEQ, TS, Batch, DeadLetter, Point
from ingest.store.base import StoreDataError, StoreError
from ingest.store.sqlite import SqliteStore
from tests.ingest.helpers import SITE, STORE_NOW_US, T0, counter_batch, join_batches


def with_point(batch: Batch, index: int, column: int, value: Any) -> Batch:
    rows: list[Point] = [list(p) for p in batch.points]
    rows[index][column] = value
    return Batch(points=rows, dead=batch.dead, meters=batch.meters, factors=batch.factors, counted=batch.counted)


def nothing_stored(store: SqliteStore) -> bool:
    return all(store._query(f"SELECT COUNT(*) FROM {t}") == [(0,)] for t in
               ("points", "meters", "rollup_minute", "rollup_quarter", "rollup_hour", "latest", "deadletter",
                "factor_refs"))


@pytest.mark.parametrize(("column", "value", "why"), [
    (SEQ, 2**63, "OverflowError"),             # sqlite3 raises OverflowError, not an sqlite3.Error
    (TS, 2**64, "OverflowError"),
    (AGENT, {"not": "text"}, "ProgrammingError"),  # a value SQLite cannot bind
])
def test_a_value_sqlite_cannot_store_is_a_data_error_and_nothing_is_stored(tmp_path: Path, column: int, value: Any,
                                                                           why: str) -> None:
    store = SqliteStore(tmp_path / "s.sqlite")
    batch = counter_batch("m1", T0, 10, 60)
    batch.dead.append(DeadLetter(STORE_NOW_US, topics.reading(SITE, "a1", "m1"), b"{}", "a dead letter", "m1"))
    with pytest.raises(StoreDataError, match=why):
        store.write(with_point(batch, 4, column, value))
    assert nothing_stored(store)
    # the store goes on: the factor reference of the rolled-back batch is stored with the next one
    assert store.write(counter_batch("m1", T0, 10, 60)).stored == 10
    (total,) = store.totals(SITE, T0, T0 + timedelta(hours=1))
    assert (total.points, total.scope, len(total.factor_ids)) == (10, "scope2_location", 1)
    store.close()


def test_a_data_error_on_the_slow_path_rolls_back_the_conflicts_found_before_it(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite")
    store.write(counter_batch("m1", T0, 5, 60))
    before = store._query("SELECT COUNT(*) FROM deadletter"), store.point_count()
    mixed = join_batches(counter_batch("m1", T0, 5, 60, kwh=7.0), counter_batch("m1", T0 + timedelta(hours=1), 5, 60))
    with pytest.raises(StoreDataError, match="OverflowError"):
        store.write(with_point(mixed, 7, SEQ, 2**70))  # five conflicts first, then the bad point
    assert (store._query("SELECT COUNT(*) FROM deadletter"), store.point_count()) == before
    store.close()


def test_a_point_of_a_meter_the_batch_does_not_describe_is_a_data_error(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite")
    batch = counter_batch("m1", T0, 3, 60)
    batch.meters.clear()
    with pytest.raises(StoreDataError, match="KeyError"):
        store.write(batch)
    assert nothing_stored(store)
    store.close()


def test_a_closed_or_unusable_store_is_a_store_error(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite")
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.write(counter_batch("m1", T0, 3, 60))
    (tmp_path / "not-a-db.sqlite").write_bytes(b"this is not an SQLite file" * 100)
    with pytest.raises(StoreError, match="not a database"):
        SqliteStore(tmp_path / "not-a-db.sqlite")


def test_a_dead_letter_sqlite_cannot_store_rolls_back_the_points_and_their_factor_references(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite")
    batch = counter_batch("m1", T0, 10, 60)
    batch.dead.append(DeadLetter(STORE_NOW_US, topics.reading(SITE, "a1", "m1"), b"{}", "seq too big", "m1", 2**63))
    with pytest.raises(StoreDataError, match="OverflowError"):
        store.write(batch)  # fails after the points, rollups and factor references went in: all rolled back
    assert nothing_stored(store)
    assert store.write(counter_batch("m1", T0, 10, 60)).stored == 10
    (total,) = store.totals(SITE, T0, T0 + timedelta(hours=1))
    assert (total.scope, len(total.factor_ids)) == ("scope2_location", 1)  # its factor reference is there
    store.close()
