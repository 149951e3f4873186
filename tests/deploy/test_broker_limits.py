"""Every Mosquitto config the project ships caps packets (max_packet_size) above the largest message the contract
allows, and a real Mosquitto on those configs passes that message whole, refuses a bigger one by dropping its
sender's connection, and goes on serving everyone else (the subscriber's session, other publishers)."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from calc import topics
from calc.acks import MAX_RANGES, encode_acks
from calc.schema import MAX_SAMPLES, MAX_SEQ, Flag, Quality, ReadingMessage, Sample, encode
from deploy.broker import EMBEDDED_MOSQUITTO_CONF, mosquitto_command
from deploy.services import MAX_PACKET_BYTES, MOSQUITTO_CONF, Mosquitto, free_port, wait_for_port
from tests.deploy.harness import wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
TOPIC = topics.reading("limits", "area-51", "m" * 128)
WIDEST = "\x01"  # the character calc.schema.encode spends the most bytes on (escaped as \u0001)


def largest_reading() -> bytes:
    """The largest payload calc.schema accepts and encodes: MAX_SAMPLES samples, every text at its longest in
    the widest character, every number at its longest."""
    sample = Sample(ts=datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), quantity=WIDEST * 64,
                    value=-1.2345678901234567e-300, unit=WIDEST * 32, delta=-1.2345678901234567e-300,
                    interval_s=1.2345678901234567e300, quality=Quality.UNCERTAIN, reason=WIDEST * 200,
                    flags=tuple(Flag))
    return encode(ReadingMessage(meter="m" * 128, seq=MAX_SEQ, agent=WIDEST * 128, samples=(sample,) * MAX_SAMPLES))


def largest_ack() -> bytes:
    """An acknowledgement with MAX_RANGES ranges of the largest sequence numbers over 100 longest meter ids."""
    per_meter = MAX_RANGES // 100
    return encode_acks("a" * 128, {f"{i:0128d}": [MAX_SEQ - 2 * j for j in range(per_meter)] for i in range(100)})


def shipped_configs() -> list[tuple[str, str]]:
    found = [(str(p.relative_to(REPO)), p.read_text()) for p in sorted((REPO / "deploy").rglob("*.conf"))
             if re.search(r"^listener ", p.read_text(), re.M)]
    return [*found, ("deploy/services.py MOSQUITTO_CONF", MOSQUITTO_CONF),
            ("deploy/broker.py EMBEDDED_MOSQUITTO_CONF", EMBEDDED_MOSQUITTO_CONF)]


def test_the_limit_is_above_the_largest_legitimate_message() -> None:
    reading, ack = largest_reading(), largest_ack()
    print(f"largest reading {len(reading):,} B, largest ack {len(ack):,} B, max_packet_size {MAX_PACKET_BYTES:,} B")
    header_bytes = 5 + 2 + len(TOPIC.encode()) + 2 + 64  # fixed header, topic, packet id, MQTT 5 properties
    assert len(reading) + header_bytes < MAX_PACKET_BYTES
    assert len(ack) + header_bytes < MAX_PACKET_BYTES


@pytest.mark.parametrize(("name", "text"), shipped_configs())
def test_every_shipped_config_caps_packets(name: str, text: str) -> None:
    limits = re.findall(r"^max_packet_size\s+(\S+)\s*$", text, re.M)
    assert limits in (["{max_packet_bytes}"], [str(MAX_PACKET_BYTES)]), f"{name}: max_packet_size {limits}"
    # in Mosquitto 2.0.11 message_size_limit acks a dropped QoS 1 message as delivered to MQTT 3.1.1 clients
    assert not re.search(r"^message_size_limit", text, re.M), name


class Peer:
    """A paho client that records what arrives and whether it was disconnected."""

    def __init__(self, port: int, client_id: str, protocol: mqtt.MQTTProtocolVersion, clean: bool = True) -> None:
        self.got: list[bytes] = []
        self.disconnects = 0
        self.connected = threading.Event()
        self.lock = threading.Lock()
        kwargs = {"clean_session": clean} if protocol != mqtt.MQTTv5 else {}
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol, **kwargs)
        self.c.on_connect = lambda *a: self.connected.set()
        self.c.on_disconnect = self._gone
        self.c.on_message = self._message
        self.c.connect("127.0.0.1", port, keepalive=60)
        self.c.loop_start()
        assert self.connected.wait(10), f"{client_id} did not connect"

    def _gone(self, *args: object) -> None:
        with self.lock:
            self.disconnects += 1
        self.connected.clear()

    def _message(self, c: object, u: object, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.got.append(bytes(msg.payload))

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


@pytest.fixture(params=["test-services", "embedded"])
def broker_port(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[int]:
    """Mosquitto on the config of deploy/services.py, or on the one `carbonwatch run` writes."""
    if request.param == "test-services":
        with Mosquitto(tmp_path / "mosquitto") as server:
            yield server.port
        return
    import subprocess

    port = free_port()
    cmd = mosquitto_command(tmp_path / "broker", "127.0.0.1", port)
    assert cmd is not None, "mosquitto is not installed"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port("127.0.0.1", port, 15, proc)
        yield port
    finally:
        proc.terminate()
        proc.wait(15)


@pytest.mark.parametrize("protocol", [mqtt.MQTTv311, mqtt.MQTTv5], ids=["3.1.1", "5"])
def test_a_bigger_message_is_refused_and_everyone_else_goes_on(broker_port: int,
                                                               protocol: mqtt.MQTTProtocolVersion) -> None:
    subscriber = Peer(broker_port, "limits-ingest", protocol, clean=False)
    edge = Peer(broker_port, "limits-edge", protocol)
    rogue = Peer(broker_port, "limits-rogue", protocol)
    try:
        done = threading.Event()
        subscriber.c.on_subscribe = lambda *a: done.set()
        subscriber.c.subscribe(f"{topics.ROOT}/limits/#", qos=1)
        assert done.wait(10)
        largest = largest_reading()
        edge.c.publish(TOPIC, largest, qos=1).wait_for_publish(60)
        wait_until("the largest legitimate message", lambda: largest in subscriber.got, 60)
        # a packet whose remaining length alone is the limit: 5 bytes (its fixed header) too large
        rogue.c.reconnect_delay_set(30, 30)  # it would send the same message again on reconnecting
        variable_header = 2 + len(TOPIC.encode()) + 2 + (1 if protocol == mqtt.MQTTv5 else 0)
        rogue.c.publish(TOPIC, b"x" * (MAX_PACKET_BYTES - variable_header), qos=1)
        wait_until("the rogue client disconnected", lambda: rogue.disconnects > 0, 60)
        edge.c.publish(TOPIC, b"after the rogue", qos=1).wait_for_publish(30)
        wait_until("a normal message after the refused one", lambda: b"after the rogue" in subscriber.got, 30)
        assert subscriber.disconnects == 0 and edge.disconnects == 0, "only the sender pays for a too-large message"
        assert all(len(p) < MAX_PACKET_BYTES - 1000 for p in subscriber.got), "the too-large message was routed"
        assert len(subscriber.got) == 2
    finally:
        for peer in (rogue, edge, subscriber):
            peer.close()
