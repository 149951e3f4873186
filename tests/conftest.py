"""Shared fixtures: real services on loopback (never mocked, never skipped when missing); and the session's leak
guard (tests/leakguard.py): a process a test leaves running is killed and fails the run."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.services import InfluxDB, Mosquitto
from tests.leakguard import pytest_configure, pytest_sessionfinish, pytest_terminal_summary

__all__ = ["pytest_configure", "pytest_sessionfinish", "pytest_terminal_summary"]

REPO = Path(__file__).resolve().parent.parent
DEMO_PLANT = REPO / "deploy" / "examples" / "demo-plant.toml"


@pytest.fixture(scope="session")
def mqtt_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a shared Mosquitto: the one the test command started, else one of our own."""
    url = os.environ.get("CARBONWATCH_TEST_MQTT_URL")
    if url:
        yield url
        return
    with Mosquitto(tmp_path_factory.mktemp("mosquitto")) as broker:
        yield broker.url


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A private Mosquitto this test may stop, kill and restart (same port each time)."""
    broker = Mosquitto(tmp_path / "mosquitto")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def influx_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a shared InfluxDB 1.x (v1 HTTP API): the test command's, else one of our own."""
    url = os.environ.get("CARBONWATCH_TEST_INFLUX_URL")
    if url:
        yield url
        return
    with InfluxDB(tmp_path_factory.mktemp("influxdb")) as server:
        yield server.url


@pytest.fixture
def influxdb(tmp_path: Path) -> Iterator[InfluxDB]:
    """A private InfluxDB this test may stop and restart."""
    server = InfluxDB(tmp_path / "influxdb")
    server.start()
    try:
        yield server
    finally:
        server.stop()
