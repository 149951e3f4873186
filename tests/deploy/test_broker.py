"""The embedded amqtt broker keeps persistent sessions: QoS 1 messages published while a clean_session=false
subscriber is away reach it when it comes back (what ingest relies on across a restart)."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from deploy.services import free_port, wait_for_port
from tests.deploy.harness import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def amqtt_port() -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "deploy.cli", "broker", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port("127.0.0.1", port, 20, proc)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def _client(port: int, client_id: str, clean: bool) -> tuple[mqtt.Client, list[bytes], threading.Event]:
    got: list[bytes] = []
    connected = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311,
                         clean_session=clean)
    client.on_message = lambda c, u, m: got.append(m.payload)
    client.on_connect = lambda c, u, f, rc, p: connected.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    assert connected.wait(10)
    return client, got, connected


def test_session_survives_a_disconnect(amqtt_port: int) -> None:
    sub, _, _ = _client(amqtt_port, "ingest-like", clean=False)
    subscribed = threading.Event()
    sub.on_subscribe = lambda c, u, mid, rc, p: subscribed.set()
    sub.subscribe("carbonwatch/v1/#", qos=1)
    assert subscribed.wait(10), "no SUBACK"
    sub.disconnect()
    sub.loop_stop()

    pub, _, _ = _client(amqtt_port, "edge-like", clean=True)
    for i in range(5):
        pub.publish("carbonwatch/v1/s/a/m/reading", f"while-away-{i}".encode(), qos=1).wait_for_publish(5)
    pub.disconnect()
    pub.loop_stop()

    back, got, _ = _client(amqtt_port, "ingest-like", clean=False)
    try:
        wait_until("the messages queued while away", lambda: len(got) >= 5, 10)
        assert sorted(got) == [f"while-away-{i}".encode() for i in range(5)]
    finally:
        back.disconnect()
        back.loop_stop()
