"""Every part's MQTT client, built by link.mqtt, connects to a real Mosquitto: anonymous, with a login, and over TLS
both ways the rule allows (`mqtts://` with a CA, and `mqtt://` with a CA file, which switches TLS on by itself).
A client with no TLS setting against the TLS listener, and a wrong password, are refused."""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from api.live.mqtt_feed import MqttLink
from api.settings import MqttSection
from deploy.services import Mosquitto, find_binary
from edge.config import MqttSettings as EdgeMqtt
from edge.publisher import Publisher
from ingest.config import MqttSettings as IngestMqtt
from ingest.mqtt import MqttError, Subscriber
from link.mqtt import V5
from scada.config import MqttSettings as ScadaMqtt
from scada.config import SparkplugSettings
from scada.live import LiveFeed
from scada.sparkplug import SparkplugSink
from tests.edge.test_mqtt import make_pki

pytestmark = pytest.mark.integration

USER, PASSWORD = "plant", "correct horse"
TIMEOUT_S = 20.0


class LoginMosquitto(Mosquitto):
    """Mosquitto that wants a user name and password; over TLS (no client certificate) when given `pki`."""

    def __init__(self, workdir: Path, passwords: Path, pki: dict[str, Path] | None = None) -> None:
        super().__init__(workdir)
        self.passwords, self.pki = passwords, pki

    def command(self) -> list[str]:
        lines = [f"listener {self.port} {self.host}", "allow_anonymous false", f"password_file {self.passwords}",
                 "max_queued_messages 0", "persistence false", "log_dest stdout"]
        if self.pki is not None:
            lines += [f"cafile {self.pki['ca']}", f"certfile {self.pki['server_crt']}",
                      f"keyfile {self.pki['server_key']}", "require_certificate false"]
        if os.geteuid() == 0:
            lines.append("user root")
        conf = self.workdir / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n")
        return ["-c", str(conf)]


@pytest.fixture(scope="module")
def brokers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LoginMosquitto, LoginMosquitto, Path]]:
    """A login-only broker and a TLS + login broker, and the CA file that signed the latter's certificate."""
    work = tmp_path_factory.mktemp("link-brokers")
    pki_dir = work / "pki"
    pki_dir.mkdir()
    pki = make_pki(pki_dir)
    for path in pki.values():
        path.chmod(0o644)
    passwords = work / "passwd"
    passwords.write_text("")
    tool = find_binary("mosquitto_passwd")
    assert tool, "mosquitto_passwd comes with the test services (deploy/test.sh)"
    subprocess.run([tool, "-b", str(passwords), USER, PASSWORD], check=True, capture_output=True)
    passwords.chmod(0o600)
    login, tls = LoginMosquitto(work / "login", passwords), LoginMosquitto(work / "tls", passwords, pki)
    try:
        login.start()
        tls.start()
        yield login, tls, pki["ca"]
    finally:
        login.stop()
        tls.stop()


@dataclass(frozen=True)
class Endpoint:
    name: str
    keys: dict[str, object]  # what [mqtt] says


@pytest.fixture(params=["anonymous", "login", "tls-mqtts", "tls-ca-on-mqtt-url"])
def endpoint(request: pytest.FixtureRequest, mqtt_url: str) -> Endpoint:
    if request.param == "anonymous":
        return Endpoint("anonymous", {"url": mqtt_url})
    login, tls, ca = request.getfixturevalue("brokers")
    auth = {"username": USER, "password": PASSWORD}
    if request.param == "login":
        return Endpoint("login", {"url": login.url, **auth})
    if request.param == "tls-mqtts":
        return Endpoint("tls-mqtts", {"url": f"mqtts://127.0.0.1:{tls.port}", "ca_file": str(ca), **auth})
    # the URL says mqtt://, the CA file switches TLS on (the one rule: mqtts:// or a CA/certificate configured)
    return Endpoint("tls-ca-on-mqtt-url", {"url": f"mqtt://127.0.0.1:{tls.port}", "ca_file": str(ca), **auth})


def client_id(part: str) -> str:
    return f"link-{part}-{uuid.uuid4().hex[:8]}"


def wait(event: threading.Event, what: str, last_error: Callable[[], str | None]) -> None:
    assert event.wait(TIMEOUT_S), f"{what} within {TIMEOUT_S} s; last error: {last_error()}"


async def test_edge_publisher_connects(endpoint: Endpoint) -> None:
    settings = EdgeMqtt.model_validate(endpoint.keys)
    site = f"t{uuid.uuid4().hex[:8]}"
    states: list[bool] = []
    changed = asyncio.Event()

    def on_connection(up: bool) -> None:  # called on this loop: the publisher runs paho on it
        states.append(up)
        changed.set()

    publisher = Publisher(settings, site, "edge-1", f"carbonwatch/v1/{site}/edge/edge-1/status",
                          on_puback=lambda gen, mid: None, on_connection=on_connection)
    publisher.start()
    try:
        try:
            await asyncio.wait_for(changed.wait(), TIMEOUT_S)
        except TimeoutError:
            pytest.fail(f"edge publisher not connected within {TIMEOUT_S} s: {publisher.last_error}")
        assert states == [True] and publisher.protocol_name == "5", "Mosquitto takes MQTT 5: no fallback"
    finally:
        await publisher.stop()


def test_ingest_subscriber_connects(endpoint: Endpoint) -> None:
    subscriber = Subscriber(IngestMqtt.model_validate(endpoint.keys), client_id("ingest"), "link-test/#")
    try:
        subscriber.start(timeout_s=TIMEOUT_S)  # returns once subscribed
        assert subscriber.connected.is_set() and subscriber.protocol == V5
    finally:
        subscriber.stop()


def test_api_link_connects(endpoint: Endpoint) -> None:
    link = MqttLink(MqttSection.model_validate(endpoint.keys), client_id("api"), lambda t, p, r: None,
                    topic_filter="link-test/#", clean_session=True)
    link.start()
    try:
        wait(link.subscribed, "API link subscribed", lambda: link.last_error)
    finally:
        link.stop()


def test_scada_live_feed_connects(endpoint: Endpoint) -> None:
    feed = LiveFeed(ScadaMqtt.model_validate(endpoint.keys), "site-x", client_id("scada"), lambda: None)
    feed.start()
    try:
        wait(feed.subscribed, "SCADA live feed subscribed", lambda: feed.last_error)
    finally:
        feed.stop()


async def test_sparkplug_node_connects(endpoint: Endpoint, tmp_path: Path) -> None:
    sink = SparkplugSink(SparkplugSettings(client_id=client_id("spb")), ScadaMqtt.model_validate(endpoint.keys),
                         "site-x", tmp_path / "bdseq.json")
    await sink.start(None)  # type: ignore[arg-type]  # no figures yet: connect (and subscribe) without a birth
    try:
        assert await asyncio.to_thread(sink.connected.wait, TIMEOUT_S), "Sparkplug node connected"
    finally:
        await sink.stop()


def test_no_tls_setting_against_the_tls_listener_is_refused(brokers: tuple[LoginMosquitto, LoginMosquitto, Path]
                                                              ) -> None:
    _, tls, _ = brokers
    plain = Subscriber(IngestMqtt(url=f"mqtt://127.0.0.1:{tls.port}", username=USER, password=PASSWORD),
                       client_id("plain"), "link-test/#")
    try:
        with pytest.raises(MqttError):
            plain.start(timeout_s=4.0)
    finally:
        plain.stop()


def test_a_wrong_password_is_refused_over_tls(brokers: tuple[LoginMosquitto, LoginMosquitto, Path]) -> None:
    _, tls, ca = brokers
    wrong = Subscriber(IngestMqtt(url=f"mqtts://127.0.0.1:{tls.port}", ca_file=str(ca), username=USER,
                                  password="nope"), client_id("wrong"), "link-test/#")
    try:
        with pytest.raises(MqttError, match="refused"):
            wrong.start(timeout_s=TIMEOUT_S)
    finally:
        wrong.stop()
