"""The live feed: subscribes (paho-mqtt 2.x, MQTT 3.1.1) to ingest's derived CO2e stream and to the API's alert
events of the site; keeps each meter's CO2e rate and latest sample time, and signals that the figures must be
recomputed. A message that does not parse is counted and named in `last_error`; it never stops the feed.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from calc import topics
from scada.config import MqttSettings
from scada.figures import MeterLive

log = logging.getLogger("carbonwatch.scada")


class Co2eSample(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    ts: AwareDatetime
    quantity: str
    co2e_kg: float


class Co2eMessage(BaseModel):
    """Payload of carbonwatch/v1/{site}/{area}/{meter}/co2e as ingest publishes it (ingest/service.py)."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    v: int = 1
    site: str
    area: str
    meter: str
    co2e_kg: float
    samples: list[Co2eSample] = Field(min_length=1)


@dataclass
class _Quantity:
    last_ts: datetime
    rate_kg_per_h: float | None = None


@dataclass
class FeedCounters:
    co2e_messages: int = 0
    alert_messages: int = 0
    bad_messages: int = 0
    other_site: int = 0


class LiveRates:
    """Per meter and quantity: the latest sample time and the CO2e rate of the interval it closed."""

    def __init__(self) -> None:
        self._by: dict[tuple[str, str], _Quantity] = {}
        self._lock = threading.Lock()

    def apply(self, message: Co2eMessage) -> None:
        with self._lock:
            for s in sorted(message.samples, key=lambda s: s.ts):
                key = (message.meter, s.quantity)
                prev = self._by.get(key)
                if prev is None:
                    self._by[key] = _Quantity(s.ts)
                    continue
                if s.ts <= prev.last_ts:
                    continue   # a late sample (spool replay): its interval is not the latest one
                hours = (s.ts - prev.last_ts).total_seconds() / 3600.0
                self._by[key] = _Quantity(s.ts, s.co2e_kg / hours)

    def snapshot(self) -> dict[str, MeterLive]:
        with self._lock:
            out: dict[str, MeterLive] = {}
            for (meter, _), q in self._by.items():
                have = out.get(meter)
                last = q.last_ts if have is None or have.last_ts is None else max(have.last_ts, q.last_ts)
                rate: float | None
                if q.rate_kg_per_h is None:
                    rate = have.rate_kg_per_h if have else None
                else:
                    rate = q.rate_kg_per_h + ((have.rate_kg_per_h or 0.0) if have else 0.0)
                out[meter] = MeterLive(last, rate)
            return out


class LiveFeed:
    """One MQTT client; `on_change` is called from paho's network thread after each useful message."""

    def __init__(self, mqtt_settings: MqttSettings, site: str, client_id: str, on_change: Callable[[], None]) -> None:
        self.settings = mqtt_settings
        self.site = site
        self.rates = LiveRates()
        self.counters = FeedCounters()
        self.on_change = on_change
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.last_error: str | None = None
        self.filters = [f"{topics.ROOT}/{site}/+/+/co2e", f"{topics.ROOT}/{site}/alerts/+"]
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311,
                                  clean_session=True)
        configure_client(self.client, mqtt_settings)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def start(self) -> None:
        """Connect in the background: a broker that is not there yet is retried, never fatal."""
        self.client.connect_async(self.settings.host, self.settings.port, keepalive=self.settings.keepalive_s)
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
        self.rates.apply(message)
        self.on_change()
        return True


def configure_client(client: mqtt.Client, settings: MqttSettings) -> None:
    """Login, TLS and reconnect behaviour shared by the feed and the Sparkplug edge node."""
    if settings.login is not None:
        client.username_pw_set(*settings.login)
    if settings.tls:
        client.tls_set(ca_certs=settings.ca_file, certfile=settings.cert_file, keyfile=settings.key_file,
                       cert_reqs=ssl.CERT_REQUIRED)
        client.tls_insecure_set(settings.tls_insecure)
    client.reconnect_delay_set(1, 10)
    client.max_queued_messages_set(0)
