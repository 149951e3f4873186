"""calc.rate, the live CO2e rate shared by the API and SCADA: hand-computed cases for each carrier, and the
API's /v1/balance and /v1/meters reporting it from a real SQLite store."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from calc import topics
from calc.plant import parse_plant
from calc.rate import meter_rates, pick_flow, total_rate
from calc.schema import encode
from ingest.convert import Converter
from ingest.store.base import MeterTotal
from tests.api.conftest import Env, fill_store, hourly, plant_data, reading
from tests.api.test_ledger import MARCH, NOW, grid_factor


@dataclass(frozen=True)
class Latest:
    meter: str
    quantity: str
    value: float
    unit: str
    quality: str = "good"


def total(meter: str, energy: float, unit: str, kg: float) -> MeterTotal:
    return MeterTotal(meter=meter, site="s", area="a", carrier="x", scope="scope1", energy=energy,
                      energy_unit=unit, co2e_kg=kg, points=1)


def test_rate_is_flow_times_stored_co2e_per_unit_for_every_carrier() -> None:
    latest = [Latest("el", "active_power", 120_000.0, "W"), Latest("el", "active_power_a", 40.0, "kW"),
              Latest("gas", "volume_flow", 30.0, "m**3/h"), Latest("gas", "pressure", 2.0, "bar"),
              Latest("steam", "mass_flow", 500.0, "kg/h"), Latest("bad", "active_power", 10.0, "kW", "bad")]
    today = [total("el", 200.0, "kWh", 100.0),        # 0.5 kg/kWh
             total("gas", 0.0, "m**3", 0.0),           # nothing today yet: this month's ratio is used
             total("steam", 2.0, "t", 600.0),          # 300 kg/t
             total("bad", 10.0, "kWh", 5.0)]
    month = [total("gas", 100.0, "m**3", 215.0)]       # 2.15 kg/m³
    rates = meter_rates(latest, today, month)
    assert rates["el"].rate_kg_per_h == pytest.approx(120 * 0.5)            # 120 kW (not phase a) × 0.5
    assert rates["el"].quantity == "active_power"
    assert rates["gas"].rate_kg_per_h == pytest.approx(30 * 2.15)
    assert rates["steam"].rate_kg_per_h == pytest.approx(0.5 * 300)         # 0.5 t/h × 300 kg/t
    assert "bad" not in rates                                               # its only flow sample is bad
    assert total_rate(rates, ["el", "gas", "bad"]) == pytest.approx(60 + 64.5)


def test_no_flow_that_converts_means_no_rate() -> None:
    assert pick_flow([Latest("m", "mass_flow", 5.0, "kg/h")], "kWh") is None
    assert meter_rates([Latest("m", "active_power", 5.0, "kW")], [], []) == {}


def test_balance_and_meters_report_the_rate_from_the_store(env: Env) -> None:
    f = grid_factor()
    fill_store(env.store, plant_data(), {"m1": hourly(MARCH, 228, 1.0), "m3": hourly(MARCH, 24, 2.0)})
    # the latest power sample of m1: 42 kW (stored through ingest's converter like any reading)

    conv = Converter(parse_plant(plant_data()), clock=lambda: datetime(2030, 1, 1, tzinfo=UTC).timestamp())
    out = conv.convert(topics.reading("s1", "a", "m1"), encode(reading("m1", 999, NOW, kw=42.0)))
    assert not out.dead
    env.store.write(conv.batch([out]) if hasattr(conv, "batch") else out.points)
    env.clock.now = NOW
    with TestClient(env.app()) as c:
        h = env.h("viewer")
        site = c.get("/v1/balance", params={"period": "month"}, headers=h).json()
        area_b = c.get("/v1/balance", params={"period": "month", "area": "b"}, headers=h).json()
        meters = {m["meter"]: m for m in c.get("/v1/meters", headers=h).json()["meters"]}
    # today's m1 energy carries f kg/kWh: 42 kW × f
    assert site["rate_kg_per_h"] == pytest.approx(42 * f)
    assert meters["m1"]["co2e_rate_kg_per_h"] == pytest.approx(42 * f)
    assert meters["m3"]["co2e_rate_kg_per_h"] is None and area_b["rate_kg_per_h"] == 0.0   # no flow sample
