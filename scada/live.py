"""The live feed: subscribes (paho-mqtt 2.x, MQTT 3.1.1) to ingest's derived CO2e stream and to the API's alert
events of the site; keeps each meter's latest stored point time, and signals that the figures must be recomputed
(the CO2e rate itself comes from the store, calc.rate, as the API's does). Client: link.mqtt.
A message that does not parse is counted and named in `last_error`; it never stops the feed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import paho.mqtt.client as mqtt
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from calc import topics
from link.mqtt import connect_args, make_client
from scada.config import MqttSettings
from scada.figures import MeterLive

log = logging.getLogger("carbonwatch.scada")


class Co2eMessage(BaseModel):
    """Payload of carbonwatch/v1/{site}/{area}/{meter}/co2e as ingest publishes it (ingest/service.py, README):
    the energy and CO2e of one stored batch's new points of a meter, from `from` to `to`."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False, populate_by_name=True)

    v: int = 1
    site: str
    area: str
    meter: str
    first: AwareDatetime = Field(alias="from")
    last: AwareDatetime = Field(alias="to")
    points: int = Field(ge=0)
    co2e_kg: float


@dataclass
class FeedCounters:
    co2e_messages: int = 0
    alert_messages: int = 0
    bad_messages: int = 0
    other_site: int = 0


class LiveTimes:
    """Per meter: the time of its latest point ingest stored (a late batch never moves it back)."""

    def __init__(self) -> None:
        self._last: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def apply(self, message: Co2eMessage) -> None:
        with self._lock:
            prev = self._last.get(message.meter)
            if prev is None or message.last > prev:
                self._last[message.meter] = message.last

    def snapshot(self) -> dict[str, MeterLive]:
        with self._lock:
            return {meter: MeterLive(ts) for meter, ts in self._last.items()}


class LiveFeed:
    """One MQTT client; `on_change` is called from paho's network thread after each useful message."""

    def __init__(self, mqtt_settings: MqttSettings, site: str, client_id: str, on_change: Callable[[], None]) -> None:
        self.settings = mqtt_settings
        self.site = site
        self.times = LiveTimes()
        self.counters = FeedCounters()
        self.on_change = on_change
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.last_error: str | None = None
        self.filters = [f"{topics.ROOT}/{site}/+/+/co2e", f"{topics.ROOT}/{site}/alerts/+"]
        self.client = make_client(mqtt_settings, client_id)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def start(self) -> None:
        """Connect in the background: a broker that is not there yet is retried, never fatal."""
        self.client.connect_async(**connect_args(self.settings, self.settings.keepalive_s))
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self.last_error = f"broker {self.settings.effective_url} refused the connection: {reason}"
            log.error(self.last_error)
            return
        self.connected.set()
        client.subscribe([(f, 1) for f in self.filters])

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        if all(not r.is_failure for r in reasons):
            self.subscribed.set()
            self.on_change()   # anything missed while away is in the store: recompute now
        else:
            self.last_error = f"subscription to {self.filters} refused"
            log.error(self.last_error)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.connected.clear()
        self.subscribed.clear()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            self.handle(msg.topic, bytes(msg.payload))
        except Exception as exc:  # paho would lose its network thread: name it and go on
            self.counters.bad_messages += 1
            self.last_error = f"{msg.topic}: {type(exc).__name__}: {exc}"
            log.exception("live feed: message on %s", msg.topic)

    def handle(self, topic: str, payload: bytes) -> bool:
        """One message; True when it changes what SCADA shows. Bad input is counted, never raised."""
        parts = topic.split("/")
        if len(parts) == 5 and parts[3] == "alerts":
            if parts[2] != self.site:
                self.counters.other_site += 1
                return False
            self.counters.alert_messages += 1
            self.on_change()
            return True
        try:
            path = topics.parse_meter_topic(topic, "co2e")
            message = Co2eMessage.model_validate_json(payload)
        except (topics.TopicError, ValidationError) as exc:
            self.counters.bad_messages += 1
            self.last_error = f"{topic}: not a co2e message: {str(exc).splitlines()[0]}"
            log.warning(self.last_error)
            return False
        if path.site != self.site or message.site != self.site:
            self.counters.other_site += 1
            return False
        if message.meter != path.meter:
            self.counters.bad_messages += 1
            self.last_error = f"{topic}: payload is about meter {message.meter!r}, the topic about {path.meter!r}"
            log.warning(self.last_error)
            return False
        self.counters.co2e_messages += 1
        self.times.apply(message)
        self.on_change()
        return True

