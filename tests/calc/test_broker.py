"""The [mqtt] endpoint shared by the services: URL parsing, defaults, TLS and login precedence."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from calc.broker import DEFAULT_MQTT_URL, BrokerSettings


def test_empty_url_means_the_loopback_default() -> None:
    b = BrokerSettings()
    assert (b.effective_url, b.host, b.port, b.tls, b.login) == (DEFAULT_MQTT_URL, "127.0.0.1", 1883, False, None)


def test_mqtts_defaults_to_8883_and_tls() -> None:
    b = BrokerSettings(url="mqtts://broker.plant")
    assert (b.host, b.port, b.tls) == ("broker.plant", 8883, True)


def test_keys_win_over_the_urls_user_info() -> None:
    assert BrokerSettings(url="mqtt://u:p@h:1884").login == ("u", "p")
    assert BrokerSettings(url="mqtt://u:p@h:1884", username="k", password="s").login == ("k", "s")
    assert BrokerSettings(url="mqtt://u:p@h", username="k").login == ("k", "p")


def test_the_urls_user_info_is_percent_decoded() -> None:
    # a password with a space, an @ and a colon can only be written percent-encoded in a URL
    assert BrokerSettings(url="mqtts://edge%2D1:correct%20horse%40x%3Ay@h").login == ("edge-1", "correct horse@x:y")
    assert BrokerSettings(url="mqtt://u@h").login == ("u", None)


@pytest.mark.parametrize(("url", "why"), [("http://h:1883", "scheme"), ("mqtt://:1883", "no host"),
                                          ("mqtt://h:port", "bad port")])
def test_bad_urls_say_what_is_wrong(url: str, why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        BrokerSettings(url=url)
