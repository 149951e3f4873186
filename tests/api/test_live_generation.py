"""A generation meter (it sends a *_generation counter) in the live state and calc.rate: its power is made on
site, so it has no CO2e rate and adds nothing to the site's power, while a meter that imports keeps both."""

from __future__ import annotations

from datetime import UTC, datetime

from api.live.live_sums import LiveState
from calc.plant import parse_plant
from calc.rate import FactorBasis, meter_rates
from calc.rules import RuleSpec
from calc.schema import ReadingMessage, Sample
from ingest.store.base import LatestValue

T = datetime(2026, 3, 10, 12, tzinfo=UTC)
PLANT = parse_plant({"site": {"id": "s1", "region": "CN", "start": "2026-01-01T00:00:00Z"},
                     "meters": [{"id": m, "area": "a", "carrier": "electricity"} for m in ("pv", "press")]})


def message(meter: str, counter: str) -> ReadingMessage:
    return ReadingMessage(meter=meter, seq=1, samples=(
        Sample(ts=T, quantity="active_power", value=40.0, unit="kW"),
        Sample(ts=T, quantity=counter, value=500.0, unit="kWh", delta=0.5, interval_s=60.0)))


def test_a_generation_meter_has_no_rate_and_no_load() -> None:
    live = LiveState(PLANT)
    for m in ("pv", "press"):
        live.meters[m].fallback = FactorBasis(m, "kWh", 0.5)
    live.apply(message("pv", "active_energy_generation"))
    live.apply(message("press", "active_energy_import"))
    assert live.meters["pv"].generates and live.meters["pv"].rate is None and live.meters["pv"].power_kw is None
    assert live.meters["press"].co2e_rate_kg_per_h == 20.0 and live.meters["press"].power_kw == 40.0
    assert live.value(RuleSpec(name="site power", metric="power", threshold=1.0), T) == 40.0  # type: ignore[arg-type]


def test_calc_rate_leaves_generation_meters_out() -> None:
    latest = [LatestValue(meter=m, site="s1", quantity=q, ts=T, value=v, unit=u, quality="good")
              for m, q, v, u in (("pv", "active_power", 40.0, "kW"), ("pv", "active_energy_generation", 500.0, "kWh"),
                                 ("press", "active_power", 40.0, "kW"))]
    rates = meter_rates(latest, [], [], [FactorBasis("pv", "kWh", 0.5), FactorBasis("press", "kWh", 0.5)])
    assert set(rates) == {"press"} and rates["press"].rate_kg_per_h == 20.0
