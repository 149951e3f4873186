"""link.mqtt's decisions, pure (no broker): the TLS rule, login, session and protocol version each part asks for,
the connect arguments, and the MQTT 5 → 3.1.1 fallback."""

from __future__ import annotations

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from calc.broker import BrokerSettings
from link.mqtt import (
    V5,
    V5_EARLY_CLOSES,
    V5_HANDSHAKE_TIMEOUT_S,
    V311,
    ProtocolChoice,
    TlsFiles,
    client_spec,
    connect_args,
    is_unsupported_protocol,
    uses_tls,
)


@pytest.mark.parametrize(("keys", "tls"), [
    ({}, False),
    ({"url": "mqtt://h:1883"}, False),
    ({"url": "mqtts://h"}, True),
    ({"url": "ssl://h:8883"}, True),
    ({"url": "mqtt://h:8883", "ca_file": "ca.pem"}, True),      # a CA alone switches TLS on (was edge-only: cert)
    ({"url": "mqtt://h:8883", "cert_file": "c.pem", "key_file": "k.pem"}, True),
    ({"url": "mqtt://h:1883", "key_file": "k.pem"}, False),     # a key without its certificate is no TLS setting
    ({"url": "mqtt://h:1883", "tls_insecure": True}, False),   # it relaxes TLS, it does not ask for it
])
def test_tls_is_on_for_mqtts_or_a_ca_or_client_certificate(keys: dict[str, object], tls: bool) -> None:
    assert uses_tls(BrokerSettings.model_validate(keys)) is tls


def test_the_port_comes_from_the_url_whatever_switched_tls_on() -> None:
    assert BrokerSettings(url="mqtt://h", ca_file="ca.pem").port == 1883
    assert BrokerSettings(url="mqtts://h").port == 8883


def test_the_spec_carries_the_tls_files_and_the_host_name_choice() -> None:
    spec = client_spec(BrokerSettings(url="mqtt://h:1", ca_file="ca", cert_file="c", key_file="k",
                                      tls_insecure=True), "id")
    assert spec.tls == TlsFiles("ca", "c", "k", insecure=True)
    assert client_spec(BrokerSettings(url="mqtt://h:1"), "id").tls is None
    assert client_spec(BrokerSettings(url="mqtts://h"), "id").tls == TlsFiles(None, None, None, insecure=False)


def test_the_spec_carries_the_login_from_keys_or_url() -> None:
    assert client_spec(BrokerSettings(url="mqtt://u:p%20w@h"), "id").login == ("u", "p w")
    assert client_spec(BrokerSettings(url="mqtt://u:p@h", username="k", password="s"), "id").login == ("k", "s")
    assert client_spec(BrokerSettings(), "id").login is None


@pytest.mark.parametrize(("protocol", "persistent", "clean_session"), [
    (V311, False, True),    # SCADA, Sparkplug, the edge on 3.1.1
    (V311, True, False),    # ingest on 3.1.1, the API's link
    (V5, False, None),      # MQTT 5 says it at connect time (clean_start, session expiry)
    (V5, True, None),
])
def test_session_per_protocol(protocol: int, persistent: bool, clean_session: bool | None) -> None:
    spec = client_spec(BrokerSettings(), "id", V5 if protocol == V5 else V311, persistent=persistent)
    assert (spec.protocol, spec.clean_session) == (protocol, clean_session)


def test_each_parts_own_knobs_pass_through() -> None:
    ingest = client_spec(BrokerSettings(), "ingest", V5, persistent=True, manual_ack=True, max_inflight=1000,
                         reconnect_delay_s=(1, 5))
    assert (ingest.manual_ack, ingest.max_inflight, ingest.reconnect_delay_s) == (True, 1000, (1, 5))
    edge = client_spec(BrokerSettings(), "edge", V5, max_inflight=264, reconnect_delay_s=None)
    assert (edge.manual_ack, edge.reconnect_delay_s) == (False, None)


def test_connect_args_resume_an_mqtt5_session_only_when_asked() -> None:
    s = BrokerSettings(url="mqtt://broker:1884")
    assert connect_args(s, 30) == {"host": "broker", "port": 1884, "keepalive": 30}
    assert connect_args(s, 30, V5) == {"host": "broker", "port": 1884, "keepalive": 30}
    assert connect_args(s, 30, V311, session_expiry_s=60) == {"host": "broker", "port": 1884, "keepalive": 30}
    v5 = connect_args(s, 20, V5, session_expiry_s=3600)
    assert (v5["clean_start"], v5["properties"].SessionExpiryInterval, v5["keepalive"]) == (False, 3600, 20)


def connack(name: str) -> ReasonCode:
    return ReasonCode(PacketTypes.CONNACK, name)


def test_only_a_protocol_refusal_reads_as_unsupported_protocol() -> None:
    assert is_unsupported_protocol(connack("Unsupported protocol version"))
    assert not is_unsupported_protocol(connack("Bad user name or password"))
    assert not is_unsupported_protocol(connack("Not authorized"))
    assert not is_unsupported_protocol(connack("Success"))


def test_auto_starts_with_5_and_falls_back_once_for_good() -> None:
    choice = ProtocolChoice("auto")
    assert (choice.protocol, choice.name) == (V5, "5")
    assert choice.refused(connack("Unsupported protocol version"))
    assert not choice.refused(connack("Bad user name or password"))
    assert choice.fall_back()
    assert (choice.protocol, choice.name) == (V311, "3.1.1")
    assert not choice.fall_back()
    assert not choice.refused(connack("Unsupported protocol version")), "nothing older to fall back to"


def test_5_and_311_never_change() -> None:
    five = ProtocolChoice("5")
    assert five.refused(connack("Unsupported protocol version")), "the sign is seen (and reported by the part)"
    assert not five.fall_back() and five.protocol == V5
    old = ProtocolChoice("3.1.1")
    assert old.protocol == V311 and not old.waited_for_connack(1e9) and not old.closed_before_connack()


def test_silence_and_early_closes_are_signs_of_a_311_only_broker() -> None:
    choice = ProtocolChoice("auto")
    assert not choice.waited_for_connack(V5_HANDSHAKE_TIMEOUT_S - 0.01)
    assert choice.waited_for_connack(V5_HANDSHAKE_TIMEOUT_S)
    signs = [choice.closed_before_connack() for _ in range(V5_EARLY_CLOSES)]
    assert signs == [False] * (V5_EARLY_CLOSES - 1) + [True]
    choice.connected()  # a CONNACK in between: the count starts again
    assert not choice.closed_before_connack()
