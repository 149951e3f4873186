"""Sending a manual entry's reading message to the broker (QoS 1, MQTT 3.1.1) and waiting until the broker has
it; a short-lived client per send (entries are rare), so a broker that is away costs the request, never the API."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

from api.settings import MqttSection
from link.mqtt import connect_args, make_client

Send = Callable[[str, bytes], "str | None"]   # (topic, payload) -> None once the broker has it, else why not


class EntrySender:
    """`send(topic, payload)`: None when the broker acknowledged the message (PUBACK), else the reason."""

    def __init__(self, settings: MqttSection, timeout_s: float = 10.0) -> None:
        self.settings = settings
        self.timeout_s = timeout_s

    def __call__(self, topic: str, payload: bytes) -> str | None:
        refused: list[str] = []
        ready = threading.Event()

        def on_connect(client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
            if reason.is_failure:
                refused.append(f"broker {self.settings.effective_url} refused the connection: {reason}")
            ready.set()

        client = make_client(self.settings, "", persistent=False, reconnect_delay_s=None)
        client.on_connect = on_connect
        try:
            client.connect(**connect_args(self.settings, keepalive_s=30))
        except (OSError, ValueError) as exc:
            return f"broker {self.settings.effective_url} not reachable: {exc}"
        client.loop_start()
        try:
            if not ready.wait(self.timeout_s) or refused:
                return refused[0] if refused else f"broker {self.settings.effective_url} did not answer"
            info = client.publish(topic, payload, qos=1)
            info.wait_for_publish(self.timeout_s)
            if not info.is_published():
                return f"broker {self.settings.effective_url} did not acknowledge within {self.timeout_s} s"
            return None
        except (RuntimeError, ValueError, OSError) as exc:   # paho raises RuntimeError when the link dropped
            return f"sending to {self.settings.effective_url} failed: {exc}"
        finally:
            client.disconnect()
            client.loop_stop()
