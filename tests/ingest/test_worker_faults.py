"""The worker's own fault paths, without a broker: a store that refuses a batch for its content, a store with a
bug, a dead letter the store refuses too, and housekeeping that fails. A real SQLite store underneath; the
refusals are injected by a wrapper (the real stores are shown refusing data in their own tests)."""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from calc import topics
from ingest.config import load_config
from ingest.points import METER, Batch
from ingest.service import IngestWorker
from ingest.store.base import StoreDataError, StoreError, WriteResult
from ingest.store.sqlite import SqliteStore
from ingest.store.sqlite_retention import Pruned
from tests.ingest.helpers import METERS, SITE, T0, counter_sample, plant_file


class Picky:
    """A real SQLite store that refuses any batch holding a point of `bad_meter` (as `error`)."""

    def __init__(self, path: Path, bad_meter: str, error: Exception, dead_too: bool = False) -> None:
        self.inner = SqliteStore(path)
        self.bad_meter, self.error, self.dead_too = bad_meter, error, dead_too
        self.writes = 0

    def write(self, batch: Batch) -> WriteResult:
        self.writes += 1
        if any(p[METER] == self.bad_meter for p in batch.points):
            raise self.error
        if self.dead_too and any(d.meter == self.bad_meter for d in batch.dead):
            raise StoreDataError("cannot store that dead letter either")
        return self.inner.write(batch)

    def close(self) -> None:
        self.inner.close()


def worker(tmp_path: Path, store: Any) -> IngestWorker:
    config = load_config(plant_file(tmp_path, "mqtt://127.0.0.1:9", client_id="unit"), base_dir=tmp_path)
    return IngestWorker(config, store=store)


def item(meter: str, seq: int) -> tuple[str, bytes, int]:
    body = {"v": 1, "meter": meter, "seq": seq, "agent": "line-1",
            "samples": [counter_sample(T0 + timedelta(minutes=seq), 1.0, 10.0 + seq)]}
    return topics.reading(SITE, METERS[meter], meter), json.dumps(body).encode(), int(T0.timestamp() * 1e6) + 10**9


def rows(store: Picky, sql: str) -> list[Any]:
    return store.inner._query(sql)


@pytest.mark.parametrize("error", [StoreDataError("value out of range"), KeyError("a bug in the store")])
def test_a_batch_refused_for_its_content_costs_only_the_message_that_causes_it(tmp_path: Path,
                                                                               error: Exception) -> None:
    store = Picky(tmp_path / "s.sqlite", "press-2", error)
    w = worker(tmp_path, store)
    items = [item("press-1", 1), item("press-2", 2), item("press-1", 3)]
    assert w._store_batch(items)
    assert rows(store, "SELECT meter, seq FROM points ORDER BY seq") == [("press-1", 1), ("press-1", 3)]
    ((meter, seq, reason),) = rows(store, "SELECT meter, seq, reason FROM deadletter")
    assert (meter, seq) == ("press-2", 2) and reason.startswith("store: refused the message's points:")
    assert str(error).strip("'") in reason
    assert w.acks.waiting == 3  # all three are handled: the sender may forget them
    assert w.metrics.stored == 2 and w.metrics.dead_lettered == 1
    w.store.close()
    w.buffer.close()


def test_a_dead_letter_the_store_refuses_too_is_still_not_a_crash(tmp_path: Path) -> None:
    store = Picky(tmp_path / "s.sqlite", "press-2", StoreDataError("no"), dead_too=True)
    w = worker(tmp_path, store)
    assert w._store_batch([item("press-2", 7), item("press-1", 8)])
    assert rows(store, "SELECT meter, seq FROM points") == [("press-1", 8)]
    assert w.metrics.dead_letters_unstored == 1
    w.store.close()
    w.buffer.close()


def test_the_store_going_down_meanwhile_stops_the_one_by_one_pass_unacked(tmp_path: Path) -> None:
    class DownAfterFirst(Picky):
        def write(self, batch: Batch) -> WriteResult:
            if self.writes >= 2:
                raise StoreError("disk I/O error")
            return super().write(batch)

    store = DownAfterFirst(tmp_path / "s.sqlite", "press-2", StoreDataError("no"))
    w = worker(tmp_path, store)
    assert not w._store_batch([item("press-2", 1), item("press-1", 2)])  # not kept: the broker sends it again
    assert w.acks.waiting == 0 and w.metrics.store_errors == 1
    w.store.close()
    w.buffer.close()


def test_failed_retention_is_logged_and_tried_again_later_never_raised(tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    class FullDisk(SqliteStore):
        calls = 0

        def apply_retention(self, now: datetime, chunk_rows: int = 0, budget_s: float | None = None) -> Any:
            FullDisk.calls += 1
            raise sqlite3.OperationalError("database or disk is full")

    w = worker(tmp_path, FullDisk(tmp_path / "s.sqlite"))
    with caplog.at_level(logging.ERROR, logger="ingest.service"):
        w._housekeeping()
        w._housekeeping()  # too soon: not tried again at once
    assert FullDisk.calls == 1 and w.metrics.housekeeping_errors == 1
    assert "retention failed (OperationalError: database or disk is full); trying again in 60 s" in caplog.text
    w._retention_at = 0.0  # the delay has passed
    w._housekeeping()
    assert FullDisk.calls == 2 and "trying again in 120 s" in caplog.text  # and the delay grows
    w.store.close()
    w.buffer.close()


def test_a_long_retention_pass_goes_on_in_steps_between_batches(tmp_path: Path) -> None:
    budgets: list[float | None] = []

    class Slow(SqliteStore):
        def apply_retention(self, now: datetime, chunk_rows: int = 0, budget_s: float | None = None) -> Pruned:
            budgets.append(budget_s)
            return Pruned(points=1000, done=len(budgets) >= 3)

    w = worker(tmp_path, Slow(tmp_path / "s.sqlite"))
    for _ in range(2):
        w._housekeeping()
        assert w._retention_at - time.monotonic() <= 1.0  # not done: the next step a second later
        w._retention_at = 0.0  # that second has passed
    w._housekeeping()
    assert len(budgets) == 3 and all(b is not None and b < 1 for b in budgets)  # each step bounded
    assert w._retention_at - time.monotonic() > 3000  # done: the next pass is an hour away
    w.store.close()
    w.buffer.close()
