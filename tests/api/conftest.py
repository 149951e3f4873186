"""API test helpers: a small plant, keys of every role, a real SQLite store filled through ingest's converter,
an app with an injectable clock, and a real uvicorn server on a free port."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.auth import KeyRing, write_key
from api.main import create_app
from api.settings import ApiSection, MqttSection, Settings, Webhook
from calc import topics
from calc.plant import parse_plant
from calc.schema import ReadingMessage, Sample, encode
from deploy.services import free_port, wait_for_port
from ingest.convert import Converter
from ingest.store.sqlite import SqliteStore

START = datetime(2026, 1, 1, tzinfo=UTC)


def plant_data(site: str = "s1") -> dict[str, Any]:
    return {
        "site": {"id": site, "region": "CN", "timezone": "UTC", "start": START},
        "meters": [
            {"id": "m1", "area": "a", "carrier": "electricity", "interval_s": 60.0, "max_power_kw": 1000.0},
            {"id": "m2", "area": "a", "carrier": "electricity", "interval_s": 60.0, "max_power_kw": 1000.0},
            {"id": "m3", "area": "b", "carrier": "electricity", "interval_s": 60.0, "max_power_kw": 1000.0},
        ],
    }


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def reading(meter: str, seq: int, ts: datetime, kwh: float | None = None, kw: float | None = None,
            interval_s: float = 60.0, quality: str = "good") -> ReadingMessage:
    samples = []
    if kw is not None:
        samples.append(Sample(ts=ts, quantity="active_power", value=kw, unit="kW", quality=quality))  # type: ignore[arg-type]
    if kwh is not None:
        samples.append(Sample(ts=ts, quantity="active_energy_import", value=1000.0 + seq * kwh, unit="kWh",
                              delta=kwh, interval_s=interval_s, quality=quality))  # type: ignore[arg-type]
    return ReadingMessage(meter=meter, seq=seq, samples=tuple(samples))


AREAS = {"m1": "a", "m2": "a", "m3": "b"}


def fill_store(store: SqliteStore, plant: dict[str, Any], series: dict[str, list[tuple[datetime, float]]]) -> None:
    """Write energy deltas (meter -> [(ts, kWh)]) through ingest's converter, as ingest would."""
    conv = Converter(parse_plant(plant), clock=lambda: datetime(2030, 1, 1, tzinfo=UTC).timestamp())
    site = plant["site"]["id"]
    for meter, points in series.items():
        for i, (ts, kwh) in enumerate(points):
            msg = reading(meter, i, ts, kwh=kwh)
            out = conv.convert(topics.reading(site, AREAS[meter], meter), encode(msg))
            assert not out.dead, out.dead
            # ingest's write interface: a Batch
            store.write(conv.batch([out]))


@dataclass
class Env:
    tmp: Path
    site: str = "s1"
    keys: dict[str, str] = field(default_factory=dict)
    clock: Clock = field(default_factory=lambda: Clock(datetime(2026, 3, 10, 12, 0, tzinfo=UTC)))

    def __post_init__(self) -> None:
        self.keys_file = self.tmp / "keys.toml"
        for role in ("viewer", "engineer", "admin"):
            self.keys[role] = write_key(self.keys_file, role, role, (self.site,))
        self.keys["other"] = write_key(self.keys_file, "other-admin", "admin", ("s2",))
        self.store = SqliteStore(self.tmp / "store.sqlite")

    def settings(self, mqtt: MqttSection | None = None, **api: Any) -> Settings:
        data = plant_data(self.site)
        api.setdefault("live", False)
        section = ApiSection(keys_file=str(self.keys_file), db_path=str(self.tmp / "api.sqlite"), **api)
        return Settings(plant=parse_plant(data), plant_data=data, base_dir=self.tmp, api=section,
                        mqtt=mqtt or MqttSection())

    def app(self, mqtt: MqttSection | None = None, **api: Any) -> FastAPI:
        store = SqliteStore(self.tmp / "store.sqlite")  # the app closes its reader when it stops
        return create_app(self.settings(mqtt, **api), store, KeyRing.load(self.keys_file), clock=self.clock)

    @staticmethod
    def schema_paths() -> dict[str, Any]:
        """The OpenAPI paths of an app built on throw-away settings (for test collection)."""
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            app = Env(Path(tmp)).app()
            paths: dict[str, Any] = app.openapi()["paths"]
            app.state.db.close()
            return paths

    def h(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(tmp_path)


@pytest.fixture
def client(env: Env) -> Iterator[TestClient]:
    with TestClient(env.app()) as c:
        yield c


class Server:
    """The app served by uvicorn on a free loopback port, in a thread of this process."""

    def __init__(self, app: FastAPI) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    timeout_graceful_shutdown=2))
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        self.thread.start()
        wait_for_port("127.0.0.1", self.port, 20)
        deadline = time.monotonic() + 20
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def hourly(start: datetime, hours: int, kwh: float) -> list[tuple[datetime, float]]:
    return [(start + timedelta(hours=h), kwh) for h in range(hours)]


__all__ = ["AREAS", "START", "Clock", "Env", "Server", "Webhook", "fill_store", "hourly", "plant_data", "reading"]
