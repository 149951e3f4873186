"""A malformed production reading costs only itself, through a real ingest process behind a real Mosquitto: its bad
samples and an unreadable message on a production counter's topic are dead-lettered with their reasons, every good
sample of it and of its neighbours is stored, the sender is acknowledged, a replay is stored once, and ingest goes
on."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from calc import topics
from ingest.store.sqlite import SqliteStore
from tests.ingest.helpers import SITE, T0, IngestProcess, Publisher, counter_sample, iso, plant_file, wait_for
from tests.ingest.test_ingest_acks import AckListener, acks  # noqa: F401 (a fixture)

pytestmark = pytest.mark.integration

VARIABLES = """ack_interval_s = 0.2

[[variables]]
id = "press-out"
area = "pressing"
kind = "production"
quantity = "production"
unit = "count"
"""


def body(meter: str, seq: int, samples: list[Any], agent: str = "line-1") -> bytes:
    return json.dumps({"v": 1, "meter": meter, "seq": seq, "agent": agent, "samples": samples}).encode()


def pieces(minute: int, delta: float, value: float, **extra: Any) -> dict[str, Any]:
    return {"ts": iso(T0 + timedelta(minutes=minute)), "quantity": "production", "value": value, "unit": "count",
            "delta": delta, "interval_s": 60.0, **extra}


def test_a_malformed_production_reading_costs_only_itself(mqtt_url: str, acks: AckListener,  # noqa: F811
                                                           tmp_path: Path) -> None:
    proc = IngestProcess(plant_file(tmp_path, mqtt_url, client_id="variables", ingest_extra=VARIABLES),
                         tmp_path / "metrics-variables.json", tmp_path)
    proc.start()
    out, press = topics.reading(SITE, "pressing", "press-out"), topics.reading(SITE, "pressing", "press-1")
    good = [pieces(i, 3.0, 100.0 + 3 * i) for i in range(1, 5)]
    bad = [pieces(5, 3.0, 115.0, unit="kWh"), pieces(6, -40.0, 75.0), {**pieces(7, 3.0, 118.0), "delta": "x"}]
    energy = [counter_sample(T0 + timedelta(minutes=i), 2.0, 10.0 + 2 * i) for i in range(1, 4)]
    sent = [(out, body("press-out", 0, [*good[:2], *bad, *good[2:]])),
            (out, b'{"v": 1, "meter": "press-out", "seq": 1, "agent": "line-1", "samples": [{"ts": 7}'),
            (press, body("press-1", 0, energy)),
            (out, body("press-out", 2, [pieces(9, 5.0, 130.0)]))]
    pub = Publisher(mqtt_url)
    try:
        pub.publish(sent)
        wait_for(lambda: acks.of("line-1") == {"press-out": {0, 2}, "press-1": {0}}, what="acks of every reading")
        pub.publish(sent[:1])  # the same message again: stored once
        metrics: dict[str, Any] = wait_for(lambda: m if (m := proc.read_metrics())["duplicates"] >= 4 else {},
                                           what="the replay seen")
    finally:
        pub.close()
    assert proc.proc is not None and proc.proc.poll() is None, "ingest stopped"
    assert metrics["duplicates"] == 4
    store = SqliteStore(tmp_path / "store.sqlite")
    try:
        totals = {t.variable: t for t in store.variable_totals(SITE, T0, T0 + timedelta(hours=1))}
        assert totals["press-out"].total == 4 * 3.0 + 5.0 and totals["press-out"].unit == "count"
        assert totals["press-out"].points == 5
        assert [round(t.energy, 9) for t in store.totals(SITE, T0, T0 + timedelta(hours=1))] == [6.0]
        reasons = [d.reason for d in store.dead_letters(SITE) if d.meter == "press-out" or "press-out" in d.topic]
        assert len(reasons) == 7 and len(set(reasons)) == 4, reasons  # the replay's bad samples again
        assert any("cannot be converted to 'count'" in r for r in reasons)
        assert any("negative" in r for r in reasons)
        assert any(r.startswith("samples.4.delta") or "samples.4" in r for r in reasons)
    finally:
        store.close()
