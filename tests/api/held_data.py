"""Held and estimated energy written the way ingest writes it (its converter, then the real store), and the app over
either real store (SQLite file, or InfluxDB 1.x on the test command's server) for the held-energy tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI

from api.auth import KeyRing
from api.main import create_app
from calc import topics
from calc.factors import default_factor_set
from calc.plant import parse_plant
from calc.schema import ReadingMessage, Sample, encode
from ingest.config import InfluxStoreSettings
from ingest.convert import Converter
from ingest.store.influx import InfluxStore
from ingest.store.sqlite import SqliteStore
from tests.api.conftest import AREAS, START, Env, plant_data

DAY = datetime(2026, 3, 2, tzinfo=UTC)
QUANTITY_NAME = "active_energy_import"


def grid_kg_per_kwh(at: datetime) -> float:
    return default_factor_set().grid_factor("CN", at.date()).value


def sample(ts: datetime, kwh: float, interval_s: float = 60.0, flags: tuple[str, ...] = (),
           reason: str | None = None, counter: float = 1000.0) -> Sample:
    return Sample(ts=ts, quantity=QUANTITY_NAME, value=counter, unit="kWh", delta=kwh, interval_s=interval_s,
                  flags=flags, reason=reason)  # type: ignore[arg-type]


def feed(store: Any, messages: list[tuple[str, ReadingMessage, str | None]],
         now: datetime = datetime(2026, 3, 10, 12, tzinfo=UTC)) -> None:
    """Write (meter, message, why it is held) as ingest does: its converter, with the plant of the app, makes the
    points (CO2e with the factor at their time) and holds what it must (flag held, above max power, before the
    plant's start); the test says which messages it expects held."""
    plant = plant_data()
    conv = Converter(parse_plant(plant), plant, clock=lambda: now.timestamp())
    for meter, msg, reason in messages:
        converted = conv.convert(topics.reading(plant["site"]["id"], AREAS[meter], meter), encode(msg))
        assert not converted.dead, converted.dead
        assert bool(converted.held) == (reason is not None), (meter, msg, converted.held)
        store.write(conv.batch([converted]))


def held_plant() -> list[tuple[str, ReadingMessage, str | None]]:
    """m1: 1 kWh at each of DAY's first 6 hours, and at 02:30 a 5,000 kWh step in 60 s (above its 1,000 kW: held);
    m3: a jump the edge confirmed and held (flags spike, held), 3,000 kWh at 01:00;
    m2: 2 kWh stamped before the plant's start (a time that cannot be placed: held)."""
    m1: list[tuple[Sample, str | None]] = [(sample(DAY + timedelta(hours=h), 1.0, counter=1000.0 + h), None)
                                          for h in range(6)]
    m1.insert(3, (sample(DAY + timedelta(hours=2, minutes=30), 5000.0, counter=6002.0),
                  "5000.0 kWh in 60.0 s implies 300000.0 kW, above the meter's max 1000.0 kW"))
    jump = "counter 4000 kWh jumped 3000 kWh above the limit: awaits an engineer"
    return [
        *[("m1", ReadingMessage(meter="m1", seq=i, samples=(s,)), why) for i, (s, why) in enumerate(m1)],
        ("m3", ReadingMessage(meter="m3", seq=1, samples=(sample(DAY + timedelta(hours=1), 3000.0, flags=(
            "spike", "held"), reason=jump),)), jump),
        ("m2", ReadingMessage(meter="m2", seq=1, samples=(sample(START - timedelta(days=1), 2.0),)),
         "before the plant's start 2026-01-01"),
    ]


@contextmanager
def app_over(env: Env, kind: str, influx_url: str | None) -> Iterator[tuple[Any, FastAPI]]:
    """(writer store, app) over the same real store of `kind`: "sqlite" (a file) or "influx" (a fresh database)."""
    if kind == "sqlite":
        writer: Any = SqliteStore(env.tmp / "store.sqlite")
        reader: Any = SqliteStore(env.tmp / "store.sqlite")
    else:
        assert influx_url
        cfg = InfluxStoreSettings(kind="influxdb", url=influx_url, database=f"t{uuid.uuid4().hex[:12]}")
        writer, reader = InfluxStore(cfg), InfluxStore(cfg)
    app = create_app(env.settings(), reader, KeyRing.load(env.keys_file), clock=env.clock)
    try:
        yield writer, app
    finally:
        writer.close()
