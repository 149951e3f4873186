"""Live deviation rule over real parts: "actual exceeds expected by 10 % for 2 minutes" against a fitted baseline
(calc.baseline.Baseline injected through the engine's BaselineLookup, as the baselines store will give it).
Readings of a press meter, its production counter and the outdoor temperature reach the API through a real
Mosquitto (stored and turned into ingest's CO2e messages as ingest does); the press follows the model until
15 % of waste starts; the rule fires within window + for_s, with the value a hand computation gives from the
model's terms and the data sent, and the alert goes out on MQTT like any rule's.
"""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI

from api.auth import KeyRing
from api.live.rule_runner import Engine
from api.main import create_app
from api.settings import ApiSection, MqttSection, Settings
from calc import topics
from calc.baseline import Baseline, fit_baseline
from calc.plant import parse_plant
from calc.schema import ReadingMessage, Sample, encode
from ingest.co2e import publications
from ingest.convert import Converter
from ingest.store.sqlite import SqliteStore
from tests.api.conftest import START, Env, Server
from tests.api.test_live import mqtt_client, wait_until

AREAS = {"press": "a", "out": "a", "temp": "a"}
PIECES_PER_MIN = 2.0
TEMP_C = 6.0                                    # 12 K below 18 °C: 0.5 K·d per hour


def plant() -> dict[str, Any]:
    return {"site": {"id": "s1", "region": "CN", "timezone": "UTC", "start": START},
            "meters": [{"id": "press", "area": "a", "line": "L1", "carrier": "electricity", "interval_s": 60.0,
                        "max_power_kw": 10000.0}],
            "variables": [{"id": "out", "area": "a", "line": "L1", "kind": "production", "quantity": "production",
                           "unit": "count"},
                          {"id": "temp", "area": "a", "kind": "driver", "quantity": "temperature", "unit": "degC",
                           "measure": "gauge", "degree_day_base_c": 18.0}]}


def fitted() -> Baseline:
    """Hourly: energy = 60 + 1.2 × pieces + 60 × HDD (kWh), fitted on seeded data with a little noise."""
    rng = np.random.default_rng(3)
    pieces, hdd = rng.uniform(60, 180, 300), rng.uniform(0.0, 0.6, 300)
    energy = 60 + 1.2 * pieces + 60 * hdd + rng.normal(0, 1.0, 300)
    return fit_baseline(energy, {"out": pieces, "hdd": hdd}, energy_unit="kWh",
                        driver_units={"out": "count", "hdd": "K * day"}, resolution="hourly", subject="s1/a/press")


class DevEnv(Env):
    def settings(self, mqtt: MqttSection | None = None, **api: Any) -> Settings:
        api.setdefault("live", False)
        section = ApiSection(keys_file=str(self.keys_file), db_path=str(self.tmp / "api.sqlite"), **api)
        return Settings(plant=parse_plant(plant()), plant_data=plant(), base_dir=self.tmp, api=section,
                        mqtt=mqtt or MqttSection())

    def app(self, mqtt: MqttSection | None = None, **api: Any) -> FastAPI:
        return create_app(self.settings(mqtt, **api), SqliteStore(self.tmp / "store.sqlite"),
                          KeyRing.load(self.keys_file), clock=self.clock)


def minute(seq: int, ts: datetime, kwh: float) -> list[ReadingMessage]:
    """One minute of the press: its energy, the pieces pressed, the outdoor temperature."""
    return [ReadingMessage(meter="press", seq=seq, samples=(Sample(
                ts=ts, quantity="active_energy_import", value=1000.0 + seq * kwh, unit="kWh", delta=kwh,
                interval_s=60.0),)),
            ReadingMessage(meter="out", seq=seq, samples=(Sample(
                ts=ts, quantity="production", value=seq * PIECES_PER_MIN, unit="count", delta=PIECES_PER_MIN,
                interval_s=60.0),)),
            ReadingMessage(meter="temp", seq=seq, samples=(Sample(
                ts=ts, quantity="temperature", value=TEMP_C, unit="degC", interval_s=60.0),))]


def test_waste_makes_the_deviation_rule_fire_within_window_plus_duration(tmp_path: Path, mqtt_url: str) -> None:
    model = fitted()
    env = DevEnv(tmp_path)
    base = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=45)
    env.clock.now = base + timedelta(minutes=45)
    app = env.app(mqtt=MqttSection(url=mqtt_url), live=True, client_id=f"api-test-{uuid.uuid4().hex[:8]}")
    engine: Engine = app.state.engine
    engine.baselines = lambda baseline_id: model if baseline_id == "press-baseline" else None
    conv = Converter(parse_plant(plant()), clock=lambda: datetime(2030, 1, 1, tzinfo=UTC).timestamp())
    got: list[dict[str, Any]] = []
    sub, pub = mqtt_client(mqtt_url), mqtt_client(mqtt_url)
    subscribed = threading.Event()
    sub.on_message = lambda c, u, m: got.append(json.loads(m.payload))
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.subscribe(f"{topics.ROOT}/s1/alerts/#", qos=1)
    assert subscribed.wait(10)

    def send(msg: ReadingMessage) -> None:
        topic = topics.reading("s1", AREAS[msg.meter], msg.meter)
        out = conv.convert(topic, encode(msg))
        assert not out.dead, out.dead
        batch = conv.batch([out])
        result = env.store.write(batch)
        pub.publish(topic, encode(msg), qos=1).wait_for_publish()
        for co2e_topic, body in publications(batch, result):   # what ingest publishes (the API reads per site)
            pub.publish(co2e_topic, body, qos=1).wait_for_publish()

    # per minute as the model expects it: (60 + 1.2 × 120 + 60 × 0.5) / 60 kWh; from minute 20 on, 15 % more
    normal_kwh = (60 + 1.2 * PIECES_PER_MIN * 60 + 60 * (18 - TEMP_C) / 24) / 60
    waste_from, window_s, for_s = 20, 600.0, 120.0
    sent: list[tuple[datetime, float]] = []
    try:
        with Server(app) as server:
            api = httpx.Client(base_url=server.url, headers=env.h("engineer"), timeout=10)
            wait_until("the API to subscribe", lambda: api.get("/v1/status").json()["mqtt_subscribed"])
            rule = {"id": "press-waste", "name": "press uses more than its output explains", "metric": "deviation",
                    "threshold": 10.0, "for_s": for_s, "window_s": window_s, "scope": "line", "target": "L1",
                    "baseline_id": "press-baseline", "drivers": {"hdd": "temp"}, "severity": "warning"}
            made = api.post("/v1/rules", json=rule)
            assert made.status_code == 201, made.text
            wait_until("the model to be read", lambda: engine.live.deviation.models.get("press-baseline"))
            for i in range(1, 41):
                kwh = normal_kwh * (1.15 if i > waste_from else 1.0)
                ts = base + timedelta(minutes=i)
                sent.append((ts, kwh))
                for msg in minute(i, ts, kwh):
                    send(msg)
            fired = wait_until("the alert on MQTT", lambda: [g["alert"] for g in got if g["transition"] == "fire"])
            detail = api.get("/v1/rules/press-waste").json()
            api.close()
    finally:
        sub.loop_stop()
        sub.disconnect()
        pub.loop_stop()
        pub.disconnect()
    assert [a["rule"] for a in fired] == ["press-waste"] and fired[0]["unit"] == "%"
    at = datetime.fromisoformat(fired[0]["fired_at"])
    waste_start = base + timedelta(minutes=waste_from)
    assert waste_start < at <= waste_start + timedelta(seconds=window_s + for_s + 60)
    # by hand at the firing time: the 10 minutes (at − 600 s, at] hold 10 points of energy, 20 pieces and
    # 10 minutes at 6 °C (HDD = 12 K × 10/1440 d); expected = intercept/6 + b × 20 + c × HDD
    actual = sum(kwh for ts, kwh in sent if at - timedelta(seconds=window_s) < ts <= at)
    expected = (model.term("intercept").value / 6 + model.term("out").value * 10 * PIECES_PER_MIN
                + model.term("hdd").value * 12 * 10 / 1440)
    assert fired[0]["value"] == pytest.approx(100 * (actual - expected) / expected, rel=1e-9)
    assert fired[0]["value"] > 10.0
    assert detail["phase"] == "firing"
