"""An entry whose send fails (no broker there) is stored and says so (`sent` false, with the reason); sending it
again once a broker answers delivers exactly calc.entries' message for it (received by a real subscriber on a
real Mosquitto), and a void delivers the void's message (the entry's samples and the void's)."""

from __future__ import annotations

import queue
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion

from api.entry_sender import EntrySender
from api.settings import MqttSection
from calc import topics
from calc.entries import Entry, message
from calc.schema import ReadingMessage, decode
from deploy.services import free_port
from tests.api.baseline_data import SITE, T0, BaselineEnv

pytestmark = pytest.mark.integration

DAY = T0 + timedelta(days=2)
ENTRY = {"start": DAY.isoformat(), "end": (DAY + timedelta(hours=8)).isoformat(), "value": 4200, "unit": "piece"}


class Subscriber:
    def __init__(self, url: str, topic: str) -> None:
        parts = urlsplit(url)
        self.got: queue.Queue[ReadingMessage] = queue.Queue()
        self.subscribed = queue.Queue[bool]()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        self.client.on_message = lambda c, u, msg: self.got.put(decode(msg.payload))
        self.client.on_subscribe = lambda *a: self.subscribed.put(True)
        self.client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
        self.client.subscribe(topic, qos=1)
        self.client.loop_start()
        self.subscribed.get(timeout=20)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_a_failed_send_is_kept_and_sent_again(tmp_path: Path, mqtt_url: str) -> None:
    env = BaselineEnv(tmp_path)
    env.clock.now = datetime(2026, 4, 1, tzinfo=UTC)
    nowhere = MqttSection(url=f"mqtt://127.0.0.1:{free_port()}")
    sub = Subscriber(mqtt_url, topics.reading(SITE, "press", "out-1"))
    try:
        with TestClient(env.app(nowhere)) as c:
            made = c.post("/v1/variables/out-1/entries", json=ENTRY, headers=env.h("engineer"))
            assert made.status_code == 201, made.text
            doc = made.json()
            assert doc["sent"] is False and "not reachable" in doc["send_error"], doc
            listed = c.get("/v1/variables/out-1/entries", headers=env.h("viewer")).json()
            assert [(e["id"], e["sent"]) for e in listed] == [(doc["id"], False)]
            c.app.state.entry_sender = EntrySender(MqttSection(url=mqtt_url))  # type: ignore[attr-defined]
            again = c.post(f"/v1/variables/out-1/entries/{doc['id']}/send", headers=env.h("engineer"))
            assert again.status_code == 200 and again.json()["sent"] is True, again.text
            plant = env.settings().plant
            entry = Entry(doc["id"], plant.variables_by_id["out-1"], DAY, DAY + timedelta(hours=8), 4200.0, 0)
            assert sub.got.get(timeout=20) == message(entry, voided=False)
            void = c.post(f"/v1/variables/out-1/entries/{doc['id']}/void", json={"reason": "typo"},
                          headers=env.h("engineer"))
            assert void.status_code == 200 and void.json()["sent"] is True, void.text
            assert sub.got.get(timeout=20) == message(entry, voided=True)
            twice = c.post(f"/v1/variables/out-1/entries/{doc['id']}/void", json={"reason": "typo"},
                           headers=env.h("engineer"))
            assert twice.status_code == 409
    finally:
        sub.close()
