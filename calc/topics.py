"""MQTT topic builders and parsers: the one place where topic strings are made (namespace v1)."""

from __future__ import annotations

from typing import NamedTuple

from calc.errors import CalcError

ROOT = "carbonwatch/v1"
READING_FILTER = f"{ROOT}/+/+/+/reading"


class MeterPath(NamedTuple):
    site: str
    area: str
    meter: str


class TopicError(CalcError):
    """A topic that is not one of carbonwatch's."""


def _check(*parts: str) -> None:
    for part in parts:
        if not part or any(c in part for c in "/+#"):
            raise TopicError(f"invalid topic level {part!r}")


def reading(site: str, area: str, meter: str) -> str:
    _check(site, area, meter)
    return f"{ROOT}/{site}/{area}/{meter}/reading"


def co2e(site: str, area: str, meter: str) -> str:
    _check(site, area, meter)
    return f"{ROOT}/{site}/{area}/{meter}/co2e"


def site_co2e(site: str) -> str:
    """Ingest's per-site CO2e message of each stored batch (every meter's new CO2e in one)."""
    _check(site)
    return f"{ROOT}/{site}/co2e"


def alert(site: str, rule: str) -> str:
    _check(site, rule)
    return f"{ROOT}/{site}/alerts/{rule}"


def edge_status(site: str, agent: str) -> str:
    _check(site, agent)
    return f"{ROOT}/{site}/edge/{agent}/status"


def edge_ack(site: str, agent: str) -> str:
    """Where ingest acknowledges an edge agent's messages (calc.acks)."""
    _check(site, agent)
    return f"{ROOT}/{site}/edge/{agent}/ack"


def deadletter(site: str) -> str:
    _check(site)
    return f"{ROOT}/{site}/deadletter"


def parse_meter_topic(topic: str, kind: str = "reading") -> MeterPath:
    """Split carbonwatch/v1/{site}/{area}/{meter}/{kind} into its levels."""
    parts = topic.split("/")
    if len(parts) != 6 or "/".join(parts[:2]) != ROOT or parts[5] != kind or not all(parts[2:5]):
        raise TopicError(f"not a carbonwatch {kind} topic: {topic!r}")
    return MeterPath(parts[2], parts[3], parts[4])
