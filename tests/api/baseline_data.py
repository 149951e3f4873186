"""Baseline test data: a plant with a press line (two electricity meters), a gas boiler, a production counter and
an outdoor temperature, and a store filled through ingest's converter with hourly energy that follows a known
model a + b·production + c·HDD + seeded noise (the simulators' EnergyModel formula, simulators.profiles.hdd_per_h)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from api.auth import KeyRing
from api.main import create_app
from api.settings import ApiSection, MqttSection, Settings
from calc import topics
from calc.plant import parse_plant
from ingest.convert import Converter
from ingest.points import ts_to_us
from ingest.store.base import StoreWriter
from ingest.store.sqlite import SqliteStore
from simulators.profiles import hdd_per_h
from tests.api.conftest import Env

SITE = "s1"
T0 = datetime(2026, 1, 5, tzinfo=UTC)        # a Monday
HDD_BASE_C = 18.0


def plant_data(site: str = SITE) -> dict[str, Any]:
    return {
        "site": {"id": site, "region": "CN", "timezone": "UTC", "start": datetime(2026, 1, 1, tzinfo=UTC)},
        "meters": [
            {"id": "m1", "area": "press", "line": "l1", "carrier": "electricity", "max_power_kw": 10000.0},
            {"id": "m2", "area": "press", "line": "l1", "carrier": "electricity", "max_power_kw": 10000.0},
            {"id": "boiler", "area": "press", "carrier": "natural_gas"},
        ],
        "variables": [
            {"id": "out-1", "area": "press", "line": "l1", "kind": "production", "quantity": "production",
             "unit": "count"},
            {"id": "temp", "area": "utilities", "kind": "driver", "quantity": "outdoor_temperature", "unit": "degC",
             "measure": "gauge", "degree_day_base_c": HDD_BASE_C},
        ],
    }


@dataclass(frozen=True)
class Model:
    """Hourly energy of m1, kWh: a + b·pieces + c·HDD (K·d) + normal noise (sd kWh); m2 draws `m2_kwh` each hour."""

    a: float = 50.0
    b: float = 0.8
    c: float = 120.0
    noise_sd: float = 10.0
    m2_kwh: float = 5.0
    seed: int = 16


@dataclass(frozen=True)
class Hours:
    """The generated hourly data, as written."""

    start: list[datetime]
    pieces: np.ndarray
    temp_c: np.ndarray
    m1_kwh: np.ndarray


def generate(model: Model, start: datetime, hours: int, waste_from: datetime | None = None,
             waste_factor: float = 1.15) -> Hours:
    """Shifts on weekdays 06–22 with a day-to-day spread, a fifth at weekends; a daily mean temperature around
    5 °C with a swing; m1's energy from the model (times `waste_factor` from `waste_from`)."""
    rng = np.random.default_rng(model.seed)
    days = hours // 24 + 2
    day_level = rng.uniform(0.6, 1.2, days)
    day_temp = 5.0 + 4.0 * rng.standard_normal(days)
    stamps, pieces, temps, energy = [], [], [], []
    for h in range(hours):
        t = start + timedelta(hours=h)
        d = h // 24
        on = 6 <= t.hour < 22
        rate = (200.0 * day_level[d] if on else 10.0) * (0.2 if t.weekday() >= 5 else 1.0)
        p = float(round(rate * rng.uniform(0.9, 1.1)))
        temp = float(day_temp[d] + 4.0 * math.cos(2 * math.pi * (t.hour - 15) / 24))
        e = model.a + model.b * p + model.c * hdd_per_h(temp, HDD_BASE_C) + model.noise_sd * rng.standard_normal()
        if waste_from is not None and t >= waste_from:
            e *= waste_factor
        stamps.append(t)
        pieces.append(p)
        temps.append(temp)
        energy.append(max(e, 0.0))
    return Hours(stamps, np.array(pieces), np.array(temps), np.array(energy))


def _message(meter: str, area: str, samples: list[dict[str, Any]], seq: int) -> tuple[str, bytes, int]:
    body = json.dumps({"v": 1, "meter": meter, "seq": seq, "agent": "e1", "samples": samples}).encode()
    return topics.reading(SITE, area, meter), body, ts_to_us(datetime(2030, 1, 1, tzinfo=UTC))


def fill(store: StoreWriter, data: Hours, m2_kwh: float, first_seq: int = 0) -> None:
    """Write the hours through ingest's converter (one message a day per meter and variable)."""
    conv = Converter(parse_plant(plant_data()), clock=lambda: datetime(2030, 1, 1, tzinfo=UTC).timestamp())
    counters = {"m1": 1000.0, "m2": 1000.0, "out-1": 0.0}
    items = []
    for day in range(0, len(data.start), 24):
        seq = first_seq + day // 24 + 1
        per: dict[str, list[dict[str, Any]]] = {"m1": [], "m2": [], "out-1": [], "temp": []}
        for h in range(day, min(day + 24, len(data.start))):
            ts = data.start[h].isoformat()
            for meter, delta, q, unit in (("m1", float(data.m1_kwh[h]), "active_energy_import", "kWh"),
                                          ("m2", m2_kwh, "active_energy_import", "kWh"),
                                          ("out-1", float(data.pieces[h]), "production", "count")):
                counters[meter] += delta
                per[meter].append({"ts": ts, "quantity": q, "value": counters[meter], "unit": unit,
                                   "delta": delta, "interval_s": 3600.0})
            per["temp"].append({"ts": ts, "quantity": "outdoor_temperature", "value": float(data.temp_c[h]),
                                "unit": "degC", "interval_s": 3600.0})
        for meter, samples in per.items():
            area = "utilities" if meter == "temp" else "press"
            items.append(_message(meter, area, samples, seq))
    outs, batch = conv.convert_to_batch(items)
    dead = [d.reason for o in outs for d in o.dead]
    assert dead == [], dead[:3]
    store.write(batch)


class BaselineEnv(Env):
    """tests.api.conftest.Env on the baseline plant."""

    def settings(self, mqtt: MqttSection | None = None, **api: Any) -> Settings:
        data = plant_data(self.site)
        api.setdefault("live", False)
        section = ApiSection(keys_file=str(self.keys_file), db_path=str(self.tmp / "api.sqlite"), **api)
        return Settings(plant=parse_plant(data), plant_data=data, base_dir=self.tmp, api=section,
                        mqtt=mqtt or MqttSection())

    def app(self, mqtt: MqttSection | None = None, **api: Any) -> Any:
        store = SqliteStore(self.tmp / "store.sqlite")
        return create_app(self.settings(mqtt, **api), store, KeyRing.load(self.keys_file), clock=self.clock)


def new_env(tmp: Path) -> BaselineEnv:
    return BaselineEnv(tmp)
