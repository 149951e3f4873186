"""Held energy in both stores (SQLite, and a real influxd): written idempotently, listed, totalled, released into
the counted figures (rollups included) or rejected, each once; estimated sums in totals."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from ingest.config import InfluxStoreSettings
from ingest.points import CO2E, ENERGY, FACTOR, FLAGS, Batch, HeldRow, ts_to_us
from ingest.store.base import HeldError, HeldStatus
from ingest.store.influx import InfluxStore
from ingest.store.sqlite import SqliteStore
from tests.ingest.helpers import SITE, STORE_CONVERTER, STORE_NOW_US, T0, counter_batch


@pytest.fixture(params=["sqlite", pytest.param("influxdb", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "sqlite":
        s: Any = SqliteStore(tmp_path / "s.sqlite")
    else:
        url = request.getfixturevalue("influx_url")
        s = InfluxStore(InfluxStoreSettings(kind="influxdb", url=url, database=f"t{uuid.uuid4().hex[:12]}"))
    yield s
    s.close()


def held_batch(meter: str = "m1", minute: int = 30, delta: float = 5000.0, reason: str = "delta: held") -> Batch:
    """One held row of `meter` at T0 + `minute` minutes (its factor as a counted point of that time would have)."""
    ref = counter_batch(meter, T0, 1, 60)
    p = ref.points[0]
    co2e = p[CO2E] / p[ENERGY] * delta
    row = HeldRow(meter=meter, ts_us=ts_to_us(T0 + timedelta(minutes=minute)), quantity="active_energy_import",
                  value=100.0 + delta, unit="kWh", delta=delta, interval_s=60.0, energy=delta, energy_unit="kWh",
                  co2e_kg=co2e, factor_ref=p[FACTOR], quality="uncertain", flags="spike,held", reason=reason,
                  seq=7, agent="edge-1", received_us=STORE_NOW_US)
    return Batch(held=[row], meters=ref.meters, factors=STORE_CONVERTER.factor_info)


def test_held_is_stored_once_listed_and_totalled(store: Any) -> None:
    store.write(counter_batch("m1", T0, 20, 60, kwh=1.0))
    first = store.write(held_batch())
    assert (first.stored, first.held, first.duplicates) == (0, 1, 0)
    again = store.write(held_batch(reason="a replay, another reason"))  # same key and content: a duplicate
    assert (again.held, again.duplicates, again.conflicts) == (0, 1, 0)
    other = store.write(held_batch(delta=6000.0))  # same key, other content: a conflict, never overwritten
    assert (other.held, other.conflicts, other.dead_lettered) == (0, 1, 1)
    (rec,) = store.held(SITE)
    assert (rec.meter, rec.area, rec.carrier, rec.delta, rec.energy, rec.status) == ("m1", "a1", "electricity",
                                                                                   5000.0, 5000.0, HeldStatus.OPEN)
    assert rec.ts == T0 + timedelta(minutes=30) and rec.reason == "delta: held" and rec.agent == "edge-1"
    assert rec.factor_id and rec.co2e_kg and rec.co2e_kg > 0 and rec.seq == 7
    (tot,) = store.held_totals(SITE)
    assert (tot.meter, tot.energy, tot.records, tot.energy_unit) == ("m1", 5000.0, 1, "kWh")
    assert tot.co2e_kg == pytest.approx(rec.co2e_kg)
    assert store.held_totals(SITE, T0, T0 + timedelta(minutes=30)) == []
    assert store.held(SITE, status=HeldStatus.REJECTED) == [] and store.held(SITE, meter="m2") == []
    assert store.held("elsewhere") == []
    (counted,) = store.totals(SITE, T0, T0 + timedelta(days=1))
    assert counted.energy == 20.0  # held energy is not counted


def test_release_counts_the_energy_once_where_it_belongs(store: Any) -> None:
    store.write(counter_batch("m1", T0, 20, 60, kwh=1.0))
    store.write(held_batch())
    (rec,) = store.held(SITE)
    done = store.decide_held(SITE, rec.id, HeldStatus.RELEASED, "eng@plant", note="real load")
    assert (done.status, done.decided_by, done.note, done.counted_ts) == (HeldStatus.RELEASED, "eng@plant",
                                                                          "real load", rec.ts)
    (t,) = store.totals(SITE, T0, T0 + timedelta(days=1))
    assert t.energy == 5020.0 and t.points == 21
    (t,) = store.totals(SITE, T0 + timedelta(minutes=30), T0 + timedelta(minutes=31))  # in its own minute
    assert t.energy == 5000.0 and t.co2e_kg == pytest.approx(rec.co2e_kg)
    assert store.held_totals(SITE) == []
    with pytest.raises(HeldError):
        store.decide_held(SITE, rec.id, HeldStatus.REJECTED, "eng@plant", note="again")
    with pytest.raises(HeldError):
        store.decide_held(SITE, 12345, HeldStatus.RELEASED, "eng@plant", note="none such")
    replay = store.write(held_batch())  # the held sample sent again: a duplicate, never counted twice
    assert (replay.held, replay.duplicates) == (0, 1)
    assert store.totals(SITE, T0, T0 + timedelta(days=1))[0].energy == 5020.0


def test_release_elsewhere_with_its_own_co2e_and_reject(store: Any) -> None:
    store.write(held_batch(minute=30))
    store.write(held_batch(meter="m2", minute=40, delta=70.0))
    by_meter = {r.meter: r for r in store.held(SITE)}
    where = T0 + timedelta(hours=5)
    done = store.decide_held(SITE, by_meter["m1"].id, HeldStatus.RELEASED, "eng", note="placed", counted_ts=where,
                             co2e_kg=1234.5, factor_id="cn-grid-test", factor_version="v9")
    assert done.counted_ts == where
    (t,) = store.totals(SITE, where, where + timedelta(minutes=1))
    assert (t.energy, t.co2e_kg, t.factor_ids, t.factor_versions) == (5000.0, 1234.5, ("cn-grid-test",), ("v9",))
    gone = store.decide_held(SITE, by_meter["m2"].id, HeldStatus.REJECTED, "eng", note="meter swapped")
    assert gone.status is HeldStatus.REJECTED and gone.counted_ts is None
    assert [t.meter for t in store.totals(SITE, T0, T0 + timedelta(days=1))] == ["m1"]
    assert store.held_totals(SITE) == []
    assert {r.status for r in store.held(SITE)} == {HeldStatus.RELEASED, HeldStatus.REJECTED}


def test_a_release_onto_a_counted_point_is_refused(store: Any) -> None:
    store.write(counter_batch("m1", T0, 20, 60, kwh=1.0))
    store.write(held_batch())
    (rec,) = store.held(SITE)
    with pytest.raises(HeldError, match="stored already"):
        store.decide_held(SITE, rec.id, HeldStatus.RELEASED, "eng", note="x", counted_ts=T0 + timedelta(minutes=3))
    assert store.held(SITE)[0].status is HeldStatus.OPEN


def test_estimated_points_are_summed_apart(store: Any) -> None:
    batch = counter_batch("m1", T0, 60, 60, kwh=2.0)
    marked: list[list[Any]] = [list(p) for p in batch.points]
    for p in marked[10:20]:
        p[FLAGS] = "gap,estimated"
    est = Batch(points=[*marked], meters=batch.meters, factors=batch.factors)
    assert est.counted is None  # the slow path; the vectorized one is tested through the converter
    store.write(est)
    (t,) = store.totals(SITE, T0, T0 + timedelta(days=1))
    assert (t.energy, t.estimated_energy) == (120.0, 20.0)
    assert t.estimated_co2e_kg == pytest.approx(t.co2e_kg / 6)
    (t,) = store.totals(SITE, T0 + timedelta(minutes=15, seconds=30), T0 + timedelta(minutes=40))  # ragged edges
    assert t.estimated_energy == 8.0


def test_held_rows_and_points_in_one_batch(store: Any) -> None:
    batch = counter_batch("m1", T0, 10, 60)
    held = held_batch(minute=300)
    both = replace(batch, held=held.held)
    result = store.write(both)
    assert (result.stored, result.held) == (10, 1)
