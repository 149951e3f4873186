"""The live cumulative CO2e counts every carrier: the period sums behind cumulative-CO2e, intensity and
allowance rules and the stream's today_co2e_kg add the kg CO2e of ingest's derived co2e stream (what the store
holds, each point once), so a natural gas meter's CO2e counts against a budget as electricity's does.

No broker: messages are handed to the engine on the app's loop with an injected clock. Expected values are
computed by hand from the factor set's input values (GB/T 32150: volume × NCV × carbon content × oxidation ×
44/12, the plant's gas meter giving no metering conditions so its m³ are taken as normal; electricity: kWh ×
the grid factor).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from paho.mqtt.client import topic_matches_sub

from api.live.co2e_feed import CO2E_FILTER
from api.live.live_sums import LiveState
from api.live.rule_runner import Engine
from calc import topics
from calc.factors import default_factor_set
from calc.plant import parse_plant
from calc.schema import ReadingMessage, encode
from calc.topics import READING_FILTER
from ingest.co2e import co2e_messages
from ingest.convert import Converter
from tests.api.test_live_rate import AREAS, NOW, TODAY, RateEnv, counter, drain, plant

FS = default_factor_set()
V = {fid: f.value for fid, f in FS.factors.items()}
GAS_KG_PER_NM3 = V["cn_fuel_natural_gas_ncv"] * V["cn_fuel_natural_gas_cc"] * V["cn_fuel_natural_gas_of"] * 44 / 12


def grid_f() -> float:
    """kg CO2e per kWh of the CN grid on the day (an input value of the factor set)."""
    return FS.grid_factor("CN", NOW.date()).value


def co2e_payload(meter: str, first: datetime, last: datetime, kg: float, points: int = 1) -> bytes:
    """A message of ingest's derived CO2e stream (ingest/README.md, "Derived CO2e stream")."""
    return json.dumps({"v": 1, "site": "s1", "area": AREAS[meter], "meter": meter, "from": first.isoformat(),
                       "to": last.isoformat(), "points": points, "co2e_kg": kg, "by_factor": []}).encode()


def send_co2e(app: FastAPI, client: TestClient, meter: str, payload: bytes) -> None:
    engine: Engine = app.state.engine
    client.portal.call(engine.handle, topics.co2e("s1", AREAS[meter], meter), payload, 0.0)  # type: ignore[union-attr]


def test_the_api_subscribes_to_the_topics_ingest_publishes_co2e_on() -> None:
    assert topic_matches_sub(CO2E_FILTER, topics.site_co2e("s1"))        # one message per site and batch
    assert not topic_matches_sub(CO2E_FILTER, topics.co2e("s1", "b", "g1"))   # per meter: SCADA's, not the API's
    assert not topic_matches_sub(CO2E_FILTER, topics.reading("s1", "b", "g1"))
    assert not topic_matches_sub(READING_FILTER, topics.co2e("s1", "b", "g1"))


def test_a_gas_meter_makes_a_cumulative_budget_rule_fire(tmp_path: Path) -> None:
    """Pure (empty store, injected clock): 100 kWh of electricity stays under a 400 kg daily budget; 120 Nm³ of
    natural gas carries the area over it, and the alert's value is the hand-computed sum."""
    env = RateEnv(tmp_path)
    env.clock.now = NOW
    f = grid_f()
    gas_kg = 120 * GAS_KG_PER_NM3                       # 120 Nm³ × 0.038931 GJ/Nm³ × 15.3 kg C/GJ × 0.99 × 44/12
    elec_kg = 100 * f
    budget = elec_kg + 0.5 * gas_kg                     # electricity alone stays below; with the gas it is above
    assert elec_kg < budget < elec_kg + gas_kg
    app = env.app()
    with TestClient(app) as c:
        engine: Engine = app.state.engine
        c.post("/v1/rules", json={"id": "b-budget", "name": "area b budget", "metric": "cumulative_co2e",
                                  "threshold": budget, "scope": "area", "target": "b", "period": "today"},
               headers=env.h("engineer"))
        send_co2e(app, c, "m3", co2e_payload("m3", TODAY + timedelta(hours=1), TODAY + timedelta(hours=2),
                                             elec_kg, points=2))
        assert c.get("/v1/alerts", headers=env.h("viewer")).json()["alerts"] == []
        send_co2e(app, c, "g1", co2e_payload("g1", NOW - timedelta(minutes=30), NOW - timedelta(minutes=1),
                                             gas_kg, points=30))
        fired = c.get("/v1/alerts", headers=env.h("viewer")).json()["alerts"]
        rule = next(r.spec for r in engine.rules if r.id == "b-budget")
        site_today = engine.snapshot(NOW)["today_co2e_kg"]
        value = engine.live.value(rule, NOW)
    assert [a["rule"] for a in fired] == ["b-budget"]
    assert fired[0]["value"] == pytest.approx(elec_kg + gas_kg)
    assert fired[0]["fired_at"] == (NOW - timedelta(minutes=1)).isoformat()   # at the gas batch's newest point
    assert value == pytest.approx(elec_kg + gas_kg) == site_today


def test_bad_and_stale_co2e_messages_count_nothing_and_never_raise(tmp_path: Path) -> None:
    env = RateEnv(tmp_path)
    env.clock.now = NOW
    app = env.app()
    with TestClient(app) as c:
        engine: Engine = app.state.engine
        for topic, payload in [
            (topics.co2e("s1", "b", "g1"), b"{not json"),
            (topics.co2e("s1", "b", "g1"), co2e_payload("g1", NOW, NOW, 5.0).replace(b'"v": 1', b'"v": 2')),
            (topics.co2e("s1", "b", "g1"), co2e_payload("g1", NOW, NOW, 5.0).replace(b"5.0", b"NaN")),
            (topics.co2e("s1", "b", "g1"), co2e_payload("m3", NOW, NOW, 5.0)),         # payload names another meter
            (topics.co2e("s1", "b", "g1"), co2e_payload("g1", NOW, NOW, 5.0).replace(b"+00:00", b"")),  # naive
        ]:
            c.portal.call(engine.handle, topic, payload, 0.0)  # type: ignore[union-attr]
        status = c.get("/v1/status", headers=env.h("viewer")).json()
        today = engine.snapshot(NOW)["today_co2e_kg"]
    assert (status["messages"], status["bad_messages"], today) == (5, 5, 0.0)
    live = LiveState(parse_plant(plant()))
    live.set_hwm("g1", NOW)
    assert not live.apply_co2e("g1", NOW - timedelta(minutes=1), NOW, 5.0)          # already in the baseline
    assert live.apply_co2e("g1", NOW, NOW + timedelta(seconds=1), 2.0)
    assert not live.apply_co2e("nope", NOW, NOW + timedelta(seconds=1), 2.0)
    assert live.period_kg(list(live.meters.values()), "today", NOW) == 2.0


def test_periods_follow_the_sites_time_zone() -> None:
    data = plant()
    data["site"]["timezone"] = "Asia/Shanghai"                   # UTC+8: the local day starts at 16:00 UTC
    live = LiveState(parse_plant(data))
    evening = datetime(2026, 3, 10, 15, 30, tzinfo=UTC)          # 23:30 local, March 10
    live.apply_co2e("g1", evening, evening, 3.0)
    live.apply_co2e("g1", evening + timedelta(hours=1), evening + timedelta(hours=1), 4.0)   # 00:30 local, March 11
    meters = list(live.meters.values())
    assert live.period_kg(meters, "today", evening + timedelta(hours=1)) == 4.0
    assert live.period_kg(meters, "month", evening + timedelta(hours=1)) == 7.0


class Ingest:
    """Stores each message as ingest does and hands ingest's derived co2e messages (its own builder) to the API."""

    def __init__(self, env: RateEnv) -> None:
        self.env = env
        self.conv = Converter(parse_plant(plant()), clock=lambda: datetime(2030, 1, 1, tzinfo=UTC).timestamp())
        self.build = co2e_messages  # ingest's real payload builder, without a broker

    def send(self, app: FastAPI, client: TestClient, msg: ReadingMessage) -> int:
        out = self.conv.convert(topics.reading("s1", AREAS[msg.meter], msg.meter), encode(msg))
        assert not out.dead, out.dead
        batch = self.conv.batch([out])
        result = self.env.store.write(batch)
        sent = 0
        for meter, body in self.build(batch, result):
            send_co2e(app, client, meter, body)
            sent += 1
        engine: Engine = app.state.engine
        client.portal.call(engine.handle, topics.reading("s1", AREAS[msg.meter], msg.meter),  # type: ignore[union-attr]
                           encode(msg), 0.0)
        return sent


def test_stream_today_co2e_equals_the_balance_at_a_still_moment(tmp_path: Path) -> None:
    """Start-up baseline from the store, then electricity and gas through ingest's store and co2e stream; a
    replayed message adds nothing; at a still moment the stream's today_co2e_kg is /v1/balance's co2e_kg."""
    env = RateEnv(tmp_path)
    env.clock.now = NOW
    ingest = Ingest(env)
    before = env.app()                                         # the store gets points before the API starts
    with TestClient(before) as c:
        for hour in range(3):
            ingest.send(before, c, counter("m1", hour, TODAY + timedelta(hours=hour), "active_energy_import",
                                           1.0, "kWh"))
    f = grid_f()
    app = env.app()
    with TestClient(app) as c:
        queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue(1000)
        app.state.hub.subscribers.add(queue)
        for hour in range(3, 6):
            ingest.send(app, c, counter("m1", hour, TODAY + timedelta(hours=hour), "active_energy_import",
                                        2.0, "kWh"))
        for minute in range(4):
            ingest.send(app, c, counter("g1", minute, NOW - timedelta(minutes=10 - minute), "volume", 25.0, "m^3",
                                            interval_s=60.0))
        replay = counter("g1", 3, NOW - timedelta(minutes=7), "volume", 25.0, "m^3", interval_s=60.0)
        assert ingest.send(app, c, replay) == 0                 # a duplicate: ingest publishes nothing for it
        app.state.engine.flush()                                # the stream's once-a-second aggregates, now
        balances = [d for e, d in drain(queue) if e == "balance"]
        balance = c.get("/v1/balance", params={"period": "today"}, headers=env.h("viewer")).json()
    expected = (3 * 1.0 + 3 * 2.0) * f + 4 * 25.0 * GAS_KG_PER_NM3
    assert balance["co2e_kg"] == pytest.approx(expected, rel=1e-9)
    assert balances[-1]["today_co2e_kg"] == pytest.approx(balance["co2e_kg"], rel=1e-12)
