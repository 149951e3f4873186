"""Held energy and gap apportionment through a real ingest process behind a real Mosquitto: samples flagged held,
a delta above the meter's max power and a delta stamped a day ahead are held (never dead-lettered), acknowledged
to the edge, idempotent on replay; a gap across midnight is spread into the right days, and a replay of it is
an exact duplicate; per meter, counted + held = what the meter advanced."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from calc import topics
from ingest.store.base import HeldStatus
from ingest.store.sqlite import SqliteStore
from tests.ingest.helpers import SITE, T0, IngestProcess, Publisher, counter_sample, plant_file, wait_for
from tests.ingest.test_ingest_acks import AckListener, acks  # noqa: F401 (a fixture)

pytestmark = pytest.mark.integration


def body(meter: str, seq: int, samples: list[dict[str, Any]], agent: str = "line-1") -> bytes:
    return json.dumps({"v": 1, "meter": meter, "seq": seq, "agent": agent, "samples": samples}).encode()


def test_held_samples_are_stored_acknowledged_and_idempotent(mqtt_url: str, acks: AckListener,  # noqa: F811
                                                             tmp_path: Path) -> None:
    proc = IngestProcess(plant_file(tmp_path, mqtt_url, client_id="held", ingest_extra="ack_interval_s = 0.2"),
                         tmp_path / "metrics-held.json", tmp_path)
    proc.start()
    press1, press2 = topics.reading(SITE, "pressing", "press-1"), topics.reading(SITE, "pressing", "press-2")
    # press-2 (no max power): normal minutes, an edge-held jump of 40,000 kWh, normal again
    p2 = [counter_sample(T0 + timedelta(minutes=i), 1.0, 100.0 + i) for i in range(3)]
    jump = counter_sample(T0 + timedelta(minutes=3), 40_000.0, 40_102.0, quality="uncertain",
                          flags=["spike", "held"], reason="jump of 40000 kWh above the limit: awaits an engineer")
    p2b = [counter_sample(T0 + timedelta(minutes=4 + i), 1.0, 40_103.0 + i) for i in range(2)]
    # press-1 (max 500 kW): 20 kWh in a minute (1,200 kW) is quarantined, i.e. held
    p1 = [counter_sample(T0, 2.0, 10.0), counter_sample(T0 + timedelta(minutes=1), 20.0, 30.0),
          counter_sample(T0 + timedelta(minutes=2), 2.0, 32.0)]
    far = counter_sample(T0 + timedelta(days=3650), 3.0, 35.0)  # a clock a decade ahead: held, not refused
    sent = [(press2, body("press-2", 0, [*p2, jump, *p2b])), (press1, body("press-1", 0, p1)),
            (press1, body("press-1", 1, [far]))]
    pub = Publisher(mqtt_url)
    try:
        pub.publish(sent)
        wait_for(lambda: acks.of("line-1") == {"press-1": {0, 1}, "press-2": {0}}, what="acks of held samples")
        pub.publish(sent)  # replayed: duplicates, held once
        metrics: dict[str, Any] = wait_for(lambda: m if (m := proc.read_metrics())["duplicates"] >= 10 else {},
                                           what="the replay seen")
    finally:
        pub.close()
    store = SqliteStore(tmp_path / "store.sqlite")
    try:
        held = {(h.meter, h.ts): h for h in store.held(SITE)}
        assert len(held) == 3 and all(h.status is HeldStatus.OPEN for h in held.values())
        edge = held[("press-2", T0 + timedelta(minutes=3))]
        assert edge.delta == 40_000.0 and "held by the edge" in edge.reason and "awaits an engineer" in edge.reason
        assert "quarantined" in held[("press-1", T0 + timedelta(minutes=1))].reason
        assert "in the future" in held[("press-1", T0 + timedelta(days=3650))].reason
        assert store.dead_letters(SITE) == []
        assert (metrics["held_records"], metrics["held_energy_kwh"]) == (3, 40_023.0)
        assert (metrics["stored"], metrics["duplicates"]) == (7, 7 + 3)  # the replay: 7 points and 3 held
        # per meter: counted + held = what the counter advanced
        counted = {t.meter: t.energy for t in store.totals(SITE, T0, T0 + timedelta(days=4000))}
        open_held = {t.meter: t.energy for t in store.held_totals(SITE)}
        assert counted["press-2"] + open_held["press-2"] == 40_104.0 - 100.0 + 1.0
        assert counted["press-1"] + open_held["press-1"] == 35.0 - 10.0 + 2.0
    finally:
        store.close()
    assert proc.stop() == 0


def test_a_gap_across_midnight_is_spread_into_each_day_and_a_replay_is_a_duplicate(mqtt_url: str,
                                                                                 tmp_path: Path) -> None:
    proc = IngestProcess(plant_file(tmp_path, mqtt_url, client_id="gap"), tmp_path / "metrics-gap.json", tmp_path)
    proc.start()
    topic = topics.reading(SITE, "pressing", "press-2")
    midnight = T0 + timedelta(days=1)
    before = counter_sample(midnight - timedelta(minutes=45), 1.0, 500.0)
    # an hour offline from 23:15: 60 kWh, 45 minutes of it yesterday; the edge flags the gap
    after = counter_sample(midnight + timedelta(minutes=15), 60.0, 560.0, interval_s=3600.0, flags=["gap"])
    unflagged = counter_sample(midnight + timedelta(hours=2, minutes=15), 120.0, 680.0, interval_s=7200.0)
    sent = [(topic, body("press-2", 0, [before, after, unflagged]))]
    pub = Publisher(mqtt_url)
    try:
        pub.publish(sent)
        db = tmp_path / "store.sqlite"
        wait_for(lambda: (m := proc.read_metrics())["stored"] >= 1 + 60 + 120 and m, what="the spread gap stored")
        pub.publish(sent)
        metrics: dict[str, Any] = wait_for(lambda: m if (m := proc.read_metrics())["duplicates"] >= 181 else {},
                                           what="the replay seen")
    finally:
        pub.close()
    assert metrics["stored"] == 181 and metrics["duplicates"] == 181 and metrics["estimated_points"] == 180
    store = SqliteStore(db)
    try:
        (day1,) = store.totals(SITE, T0, midnight)
        (day2,) = store.totals(SITE, midnight, midnight + timedelta(days=1))
        assert (day1.energy, day1.estimated_energy) == (46.0, 45.0)
        assert (day2.energy, day2.estimated_energy) == (135.0, 135.0)
        assert day1.co2e_kg + day2.co2e_kg == pytest.approx((181.0 / 1.0) * day1.co2e_kg / day1.energy)
        rows = store._query("SELECT ts_us, delta, interval_s, value, flags FROM points WHERE meter = 'press-2' "
                            "ORDER BY ts_us")
        assert len(rows) == 181 and all(r[4] in ("gap,estimated", "estimated") for r in rows[1:])
        assert rows[60][2] == 60.0 and rows[60][3] == 560.0 and rows[-1][3] == 680.0  # own points keep their keys
        assert sum(r[1] for r in rows[1:61]) == 60.0 and sum(r[1] for r in rows[61:]) == 120.0
        assert store.dead_letters(SITE) == []
    finally:
        store.close()
    assert proc.stop() == 0
