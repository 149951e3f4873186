"""The broker endpoint every service reads from the plant file's [mqtt]: URL, login and TLS files (pure parsing).

`mqtt://host:port` or `mqtts://host:port` (TLS); empty means the loopback default. A user name and password
may come from the keys or from the URL's user info; the keys win.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DEFAULT_MQTT_URL = "mqtt://127.0.0.1:1883"
SCHEMES = ("mqtt", "mqtts", "tcp", "ssl")
TLS_SCHEMES = ("mqtts", "ssl")
#: every key some service reads from [mqtt]; each service reads its own and ignores the others' keys, and all of
#: them refuse a key none of them reads (a typo would otherwise be silently ignored by all but one)
MQTT_KEYS = frozenset({"url", "username", "password", "ca_file", "cert_file", "key_file", "tls_insecure",
                       "protocol", "keepalive_s", "reconnect_max_s", "client_id"})

#: [mqtt] protocol, for the services that speak both versions (edge, ingest)
MqttProtocol = Annotated[Literal["auto", "5", "3.1.1"], Field(
    description="auto: MQTT 5, falling back to 3.1.1 when the broker does not take it; 5 or 3.1.1: only that")]
#: [mqtt] keepalive_s, for the services that hold a connection of their own (edge, ingest, SCADA)
KeepAliveS = Annotated[int, Field(ge=5, le=3600)]


class BrokerSettings(BaseModel):
    """[mqtt] keys shared by the services; each service's model adds its own (protocol, keep-alive, ...)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    url: str = Field(default="", description="mqtt://host:port or mqtts://host:port; empty: mqtt://127.0.0.1:1883")
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    cert_file: str | None = Field(default=None, description="client certificate (TLS client auth)")
    key_file: str | None = None
    tls_insecure: bool = False

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(str(k) for k in set(data) - MQTT_KEYS)
            if unknown:
                raise ValueError(f"unknown key {', '.join(map(repr, unknown))} in [mqtt]; the keys are "
                                 f"{', '.join(sorted(MQTT_KEYS))}")
        return data

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        if not url:
            return url
        parts = urlsplit(url)
        if parts.scheme not in SCHEMES:
            raise ValueError(f"scheme must be mqtt:// or mqtts://, got {url!r}")
        if not parts.hostname:
            raise ValueError(f"no host in {url!r}")
        try:
            _ = parts.port
        except ValueError as exc:
            raise ValueError(f"bad port in {url!r}") from exc
        return url

    @property
    def effective_url(self) -> str:
        return self.url or DEFAULT_MQTT_URL

    @property
    def tls(self) -> bool:
        return urlsplit(self.effective_url).scheme in TLS_SCHEMES

    @property
    def host(self) -> str:
        return urlsplit(self.effective_url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return urlsplit(self.effective_url).port or (8883 if self.tls else 1883)

    @property
    def login(self) -> tuple[str, str | None] | None:
        """Username and password from the settings, else from the URL's user info (percent-decoded, so a
        password with `@`, `:` or a space is written %40, %3A, %20 in the URL)."""
        parts = urlsplit(self.effective_url)
        user = self.username or (unquote(parts.username) if parts.username else None)
        if not user:
            return None
        if self.password is not None:
            return user, self.password
        return user, unquote(parts.password) if parts.password is not None else None
