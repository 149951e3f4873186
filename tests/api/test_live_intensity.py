"""Live intensity rules over real parts: a production variable's readings (plant file [[variables]], kind
production) and ingest's derived CO2e stream reach the API through a real Mosquitto; an "intensity above Z kg
CO2e per piece" rule on a line fires and clears with the same alerts, MQTT notifications and stream events as
any rule. The readings are stored and the CO2e messages built as ingest does (its converter, store and payload
builder), then published; expected values are hand computations from the kWh and pieces sent.
"""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from api.auth import KeyRing
from api.live.production import Production
from api.main import create_app
from api.settings import ApiSection, MqttSection, Settings
from calc import topics
from calc.factors import default_factor_set
from calc.plant import parse_plant
from calc.rules import Metric, RuleSpec, ScopeKind
from calc.schema import ReadingMessage, Sample, encode
from ingest.co2e import publications
from ingest.convert import Converter
from ingest.store.sqlite import SqliteStore
from tests.api.conftest import START, Env, Server
from tests.api.test_live import mqtt_client, wait_until

AREAS = {"m1": "a", "m2": "a", "m3": "b", "out1": "a", "out2": "a"}


def plant() -> dict[str, Any]:
    return {"site": {"id": "s1", "region": "CN", "timezone": "UTC", "start": START},
            "meters": [{"id": "m1", "area": "a", "line": "L1", "carrier": "electricity", "interval_s": 60.0,
                        "max_power_kw": 10000.0},
                       {"id": "m2", "area": "a", "carrier": "electricity", "interval_s": 60.0,
                        "max_power_kw": 10000.0},
                       {"id": "m3", "area": "b", "carrier": "electricity", "interval_s": 60.0}],
            "variables": [{"id": "out1", "area": "a", "line": "L1", "kind": "production", "quantity": "production",
                           "unit": "count", "product": "housings"},
                          {"id": "out2", "area": "a", "line": "L2", "kind": "production", "quantity": "production",
                           "unit": "count", "product": "covers"}]}


class LineEnv(Env):
    def settings(self, mqtt: MqttSection | None = None, **api: Any) -> Settings:
        api.setdefault("live", False)
        section = ApiSection(keys_file=str(self.keys_file), db_path=str(self.tmp / "api.sqlite"), **api)
        return Settings(plant=parse_plant(plant()), plant_data=plant(), base_dir=self.tmp, api=section,
                        mqtt=mqtt or MqttSection())

    def app(self, mqtt: MqttSection | None = None, **api: Any) -> FastAPI:
        return create_app(self.settings(mqtt, **api), SqliteStore(self.tmp / "store.sqlite"),
                          KeyRing.load(self.keys_file), clock=self.clock)


def energy(meter: str, seq: int, ts: datetime, kwh: float) -> ReadingMessage:
    return ReadingMessage(meter=meter, seq=seq, samples=(
        Sample(ts=ts, quantity="active_energy_import", value=1000.0 + seq * kwh, unit="kWh", delta=kwh,
               interval_s=60.0),))


def pieces(variable: str, seq: int, ts: datetime, n: float) -> ReadingMessage:
    return ReadingMessage(meter=variable, seq=seq, samples=(
        Sample(ts=ts, quantity="production", value=seq * n, unit="count", delta=n, interval_s=60.0),))


class Ingest:
    """Stores each reading as ingest does and publishes it, then ingest's derived CO2e messages, to the broker."""

    def __init__(self, env: LineEnv, url: str) -> None:
        self.env = env
        self.conv = Converter(parse_plant(plant()), clock=lambda: datetime(2030, 1, 1, tzinfo=UTC).timestamp())
        self.pub = mqtt_client(url)

    def send(self, msg: ReadingMessage) -> None:
        topic = topics.reading("s1", AREAS[msg.meter], msg.meter)
        out = self.conv.convert(topic, encode(msg))
        assert not out.dead, out.dead
        batch = self.conv.batch([out])
        result = self.env.store.write(batch)
        self.pub.publish(topic, encode(msg), qos=1).wait_for_publish()
        for co2e_topic, body in publications(batch, result):   # what ingest publishes (the API reads per site)
            self.pub.publish(co2e_topic, body, qos=1).wait_for_publish()

    def close(self) -> None:
        self.pub.loop_stop()
        self.pub.disconnect()


def test_intensity_rule_on_a_line_fires_and_clears_over_the_broker(tmp_path: Path, mqtt_url: str) -> None:
    env = LineEnv(tmp_path)
    now = datetime.now(UTC).replace(microsecond=0)
    env.clock.now = now
    f = default_factor_set().grid_factor("CN", now.date()).value
    app = env.app(mqtt=MqttSection(url=mqtt_url), live=True, client_id=f"api-test-{uuid.uuid4().hex[:8]}")
    got: list[dict[str, Any]] = []
    sub = mqtt_client(mqtt_url)
    subscribed = threading.Event()
    sub.on_message = lambda c, u, m: got.append(json.loads(m.payload))
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.subscribe(f"{topics.ROOT}/s1/alerts/#", qos=1)
    assert subscribed.wait(10)
    ingest = Ingest(env, mqtt_url)
    try:
        with Server(app) as server:
            api = httpx.Client(base_url=server.url, headers=env.h("engineer"), timeout=10)
            wait_until("the API to subscribe", lambda: api.get("/v1/status").json()["mqtt_subscribed"])
            limit = 1.5 * f                                            # kg CO2e per piece
            rule = {"id": "l1-intensity", "name": "line 1 kg CO2e per housing", "metric": "intensity",
                    "threshold": limit, "scope": "line", "target": "L1", "product_quantity": "production",
                    "period": "today", "severity": "warning"}
            made = api.post("/v1/rules", json=rule)
            assert made.status_code == 201, made.text
            t = now - timedelta(minutes=10)
            # 100 kWh on line 1 (m1), 150 kWh elsewhere in area a (m2, not on the line), no production yet:
            # no intensity to speak of, nothing fires
            ingest.send(energy("m1", 1, t, 100.0))
            ingest.send(energy("m2", 1, t, 150.0))
            ingest.send(pieces("out2", 1, t, 1000.0))                    # line 2's output: not line 1's
            wait_until("the CO2e in the rule's value", lambda: api.get("/v1/rules/l1-intensity").json()["phase"]
                       and app.state.engine.live.period_kg(
                           app.state.engine.live.in_scope(ScopeKind.LINE, "L1"), "today", now) > 0)
            assert api.get("/v1/rules/l1-intensity").json()["value"] is None
            # 50 housings: 100 f kg / 50 = 2 f kg per piece > 1.5 f: fires at the production reading's time
            ingest.send(pieces("out1", 1, t + timedelta(minutes=1), 50.0))
            fired = wait_until("the alert on MQTT", lambda: [g for g in got if g["transition"] == "fire"])
            assert fired[0]["alert"]["rule"] == "l1-intensity"
            assert fired[0]["alert"]["value"] == pytest.approx(2 * f)
            assert fired[0]["alert"]["unit"] == "kg/unit"
            assert fired[0]["alert"]["fired_at"] == (t + timedelta(minutes=1)).isoformat()
            # a replayed production reading counts nothing (still 50 pieces)
            ingest.pub.publish(topics.reading("s1", "a", "out1"),
                               encode(pieces("out1", 1, t + timedelta(minutes=1), 50.0)), qos=1).wait_for_publish()
            # 100 more: 100 f / 150 < 1.5 f: it clears, and that is notified too
            ingest.send(pieces("out1", 2, t + timedelta(minutes=2), 100.0))
            wait_until("the resolve on MQTT", lambda: [g for g in got if g["transition"] == "resolve"])
            detail = api.get("/v1/rules/l1-intensity").json()
            assert detail["value"] == pytest.approx(100 * f / 150)
            alerts = api.get("/v1/alerts").json()["alerts"]
            assert [(a["rule"], a["state"]) for a in alerts] == [("l1-intensity", "resolved")]
            # by the variable's id, over area a: (100 + 150) f kg of the area / 150 housings
            by_id = {**rule, "id": "a-out1", "scope": "area", "target": "a", "product_quantity": None,
                     "product_variable": "out1", "threshold": 1000.0}
            assert api.post("/v1/rules", json=by_id).status_code == 201
            assert api.get("/v1/rules/a-out1").json()["value"] == pytest.approx(250 * f / 150)
            refused = api.post("/v1/rules", json={**by_id, "id": "x", "product_variable": "m1"})
            assert refused.status_code == 422 and "production variable" in refused.text
            api.close()
    finally:
        ingest.close()
        sub.loop_stop()
        sub.disconnect()


def test_production_counts_once_in_the_variables_unit() -> None:
    """Pure: a replay and an older sample add nothing; bad and held samples and other quantities are not product;
    kg converts to t; periods roll at the site's midnight."""
    data = plant()
    data["variables"][0]["unit"] = "t"
    prod = Production(parse_plant(data).variables, "UTC")
    t = datetime(2026, 3, 10, 23, 0, tzinfo=UTC)
    rule = RuleSpec(name="i", metric=Metric.INTENSITY, threshold=1.0, scope=ScopeKind.LINE, target="L1",
                    product_quantity="production", period="today")

    def sample(ts: datetime, kg: float, **kw: Any) -> ReadingMessage:
        return ReadingMessage(meter="out1", seq=1, samples=(
            Sample(ts=ts, quantity=kw.pop("quantity", "production"), value=0.0, unit="kg", delta=kg, **kw),))

    assert prod.apply(sample(t, 500.0)) is not None
    assert prod.apply(sample(t, 500.0)) is None                                          # the same again
    assert prod.apply(sample(t - timedelta(minutes=1), 500.0)) is None                   # older
    prod.apply(sample(t + timedelta(minutes=1), 200.0, quality="bad"))
    prod.apply(sample(t + timedelta(minutes=2), 200.0, flags=("held",)))
    prod.apply(sample(t + timedelta(minutes=3), 200.0, quantity="scrap"))
    prod.apply(sample(t + timedelta(minutes=4), 250.0))
    assert prod.amount(rule, t + timedelta(minutes=5)) == pytest.approx(0.75)            # t
    prod.apply(sample(t + timedelta(hours=1, minutes=1), 100.0))                         # the next day
    assert prod.amount(rule, t + timedelta(hours=1, minutes=2)) == pytest.approx(0.1)
    month = rule.model_copy(update={"period": "month"})
    assert prod.amount(month, t + timedelta(hours=1, minutes=2)) == pytest.approx(0.85)
    other_line = rule.model_copy(update={"target": "L2"})
    assert prod.amount(other_line, t + timedelta(hours=1, minutes=2)) == 0.0
