"""The live stream at scale: per-flush aggregates of the site and each area equal the meters' CO2e, nothing is
lost between aggregates, and a client that names a meter gets each of its updates (and only it).

The engine is fed as over the broker (no broker: engine.handle, an injected clock): readings, and ingest's
per-site CO2e messages built by ingest's own publisher from batches its converter made and the store wrote.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.live.rule_runner import Engine
from calc import topics
from calc.plant import parse_plant
from calc.schema import ReadingMessage, encode
from ingest.co2e import publications
from ingest.convert import Converter
from tests.api.test_live_rate import AREAS, NOW, RateEnv, counter, drain, flow, plant

Events = list[tuple[str, dict[str, Any]]]


class Feed:
    """Stores each batch as ingest does, then hands the API its reading messages and ingest's CO2e messages."""

    def __init__(self, env: RateEnv, app: FastAPI, client: TestClient) -> None:
        self.env, self.app, self.client = env, app, client
        self.conv = Converter(parse_plant(plant()), clock=lambda: datetime(2030, 1, 1, tzinfo=UTC).timestamp())
        self.published: list[tuple[str, dict[str, Any]]] = []   # the CO2e messages, as sent

    def handle(self, topic: str, payload: bytes) -> None:
        engine: Engine = self.app.state.engine
        self.client.portal.call(engine.handle, topic, payload, 0.0)  # type: ignore[union-attr]

    def batch(self, messages: list[ReadingMessage], per_meter: bool = False) -> None:
        """One stored batch of several meters' readings: the readings, then what ingest publishes for it."""
        outs = [self.conv.convert(topics.reading("s1", AREAS[m.meter], m.meter), encode(m)) for m in messages]
        batch = self.conv.batch(outs)
        result = self.env.store.write(batch)
        for m in messages:
            self.handle(topics.reading("s1", AREAS[m.meter], m.meter), encode(m))
        for topic, body in publications(batch, result, per_meter):
            self.published.append((topic, json.loads(body)))
            if topic == topics.site_co2e("s1"):
                self.handle(topic, body)

    def flush(self) -> None:
        self.app.state.engine.flush()


def energy_batch(minute: int, kwh: dict[str, float]) -> list[ReadingMessage]:
    return [counter(m, 100 + minute, NOW - timedelta(minutes=30 - minute), "active_energy_import" if m != "g1"
                    else "volume", kwh[m], "kWh" if m != "g1" else "m^3", interval_s=60.0) for m in kwh]


def test_aggregates_equal_the_meters_co2e_and_nothing_is_lost_between_them(tmp_path: Path) -> None:
    env = RateEnv(tmp_path)
    env.clock.now = NOW
    app = env.app()
    with TestClient(app) as c:
        queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue(1000)
        app.state.hub.add(queue)
        feed = Feed(env, app, c)
        sent = 0
        for minute in range(6):
            feed.batch(energy_batch(minute, {"m1": 1.0 + minute, "m3": 2.0, "g1": 0.5 * minute + 1}))
            sent += 3
            if minute % 2:          # several batches between some aggregates, one between others
                feed.flush()
        feed.batch(energy_batch(6, {"m2": 4.0}))
        sent += 1
        feed.flush()
        feed.flush()                # nothing new: no event
        events = drain(queue)
        balance = c.get("/v1/balance", params={"period": "today"}, headers=env.h("viewer")).json()
        by_area = {a: c.get("/v1/balance", params={"period": "today", "area": a},
                            headers=env.h("viewer")).json()["co2e_kg"] for a in ("a", "b")}
    aggregates = [d for e, d in events if e == "aggregate"]
    balances = [d for e, d in events if e == "balance"]
    assert len(aggregates) == len(balances) == 4
    site_messages = [doc for topic, doc in feed.published if topic == topics.site_co2e("s1")]
    assert len(site_messages) == 7 and not [t for t, _ in feed.published if t != topics.site_co2e("s1")]
    sent_kg = sum(m["co2e_kg"] for doc in site_messages for m in doc["meters"])
    # nothing lost or counted twice between aggregates: the kg and readings they added are every kg and reading sent
    assert sum(a["total"]["added_co2e_kg"] for a in aggregates) == pytest.approx(sent_kg, rel=1e-12)
    assert sum(a["readings"] for a in aggregates) == sent
    assert sum(a["co2e_messages"] for a in aggregates) == 19        # one per meter part of the site messages
    for area in ("a", "b"):
        sent_area = sum(m["co2e_kg"] for doc in site_messages for m in doc["meters"] if AREAS[m["meter"]] == area)
        assert sum(a["areas"][area]["added_co2e_kg"] for a in aggregates) == pytest.approx(sent_area, rel=1e-12)
        assert sum(doc["areas"].get(area, {}).get("co2e_kg", 0.0) for doc in site_messages) == pytest.approx(
            sent_area, rel=1e-12)
    # each aggregate: the site is the sum of its areas; the last equals what the store holds, area by area
    for a in aggregates:
        assert a["total"]["today_co2e_kg"] == pytest.approx(sum(v["today_co2e_kg"] for v in a["areas"].values()))
        assert a["total"]["power_kw"] == pytest.approx(sum(v["power_kw"] for v in a["areas"].values()))
    last = aggregates[-1]
    assert last["total"]["today_co2e_kg"] == pytest.approx(balance["co2e_kg"], rel=1e-9) == pytest.approx(sent_kg)
    assert balances[-1]["today_co2e_kg"] == pytest.approx(balance["co2e_kg"], rel=1e-9)
    for area in ("a", "b"):
        assert last["areas"][area]["today_co2e_kg"] == pytest.approx(by_area[area], rel=1e-9)
    assert last["oldest_sample"] == last["newest_sample"] == (NOW - timedelta(minutes=24)).isoformat()


def test_a_client_that_names_a_meter_gets_each_of_its_updates_and_no_other(tmp_path: Path) -> None:
    env = RateEnv(tmp_path)
    env.clock.now = NOW
    app = env.app()
    with TestClient(app) as c:
        hub = app.state.hub
        watcher: asyncio.Queue[tuple[str, str]] = asyncio.Queue(1000)
        plain: asyncio.Queue[tuple[str, str]] = asyncio.Queue(1000)
        table: asyncio.Queue[tuple[str, str]] = asyncio.Queue(1000)
        hub.add(watcher, meters=("m1",))
        hub.add(plain)
        hub.add(table, meters=("*",))                                # ?meters=all
        feed = Feed(env, app, c)
        for seq, kw in enumerate((10.0, 20.0, 30.0)):
            feed.handle(topics.reading("s1", "a", "m1"),
                        encode(flow("m1", seq, NOW - timedelta(seconds=3 - seq), "active_power", kw, "kW")))
            feed.handle(topics.reading("s1", "b", "m3"),
                        encode(flow("m3", seq, NOW - timedelta(seconds=3 - seq), "active_power", 5.0, "kW")))
        feed.batch(energy_batch(0, {"m1": 1.0}))                     # its CO2e too, from the site message
        watched = [d for e, d in drain(watcher) if e == "meter"]
        assert [d["seq"] for d in watched] == [0, 1, 2, 100, None]   # every reading, then the CO2e update
        assert {d["meter"] for d in watched} == {"m1"} and watched[2]["power_kw"] == 30.0
        assert watched[-1]["added_co2e_kg"] > 0
        assert drain(plain) == [] and drain(table) == []             # before the flush: nothing for the others
        feed.flush()
        assert [e for e, _ in drain(plain)] == ["aggregate", "balance"]
        coalesced = [d for e, d in drain(table) if e == "meter"]
        assert sorted(d["meter"] for d in coalesced) == ["m1", "m3"]  # each changed meter once, its latest state
        assert {d["meter"]: d["power_kw"] for d in coalesced} == {"m1": 30.0, "m3": 5.0}
        assert drain(watcher) and not hub.watched("m3")
        unknown = c.get("/v1/stream", params={"meter": "nope"}, headers=env.h("viewer"))
        assert unknown.status_code == 404


def test_ingest_site_message_holds_every_meters_part_and_the_area_sums(tmp_path: Path) -> None:
    """ingest's publications: with per-meter messages on, the site message holds exactly their parts."""
    env = RateEnv(tmp_path)
    conv = Converter(parse_plant(plant()), clock=lambda: datetime(2030, 1, 1, tzinfo=UTC).timestamp())
    msgs = energy_batch(3, {"m1": 1.5, "m2": 2.5, "m3": 0.25, "g1": 3.0})
    batch = conv.batch([conv.convert(topics.reading("s1", AREAS[m.meter], m.meter), encode(m)) for m in msgs])
    out = publications(batch, env.store.write(batch), per_meter=True)
    per_meter = {t: json.loads(b) for t, b in out if t != topics.site_co2e("s1")}
    (site,) = [json.loads(b) for t, b in out if t == topics.site_co2e("s1")]
    assert set(per_meter) == {topics.co2e("s1", AREAS[m], m) for m in AREAS}
    parts = {p["meter"]: p for p in site["meters"]}
    for doc in per_meter.values():
        assert parts[doc["meter"]] == {k: v for k, v in doc.items() if k not in ("v", "site")}
    for area in ("a", "b"):
        assert site["areas"][area]["co2e_kg"] == pytest.approx(
            sum(d["co2e_kg"] for d in per_meter.values() if d["area"] == area), rel=1e-12)
    assert site["co2e_kg"] == pytest.approx(sum(d["co2e_kg"] for d in per_meter.values()), rel=1e-12)
    assert site["points"] == 4 and site["from"] == site["to"] == min(d["from"] for d in per_meter.values())
    # written again: nothing new, nothing published
    assert publications(batch, env.store.write(batch), per_meter=True) == []
