"""One live CO2e rate: the rule engine's co2e_rate metric, the stream's meter and balance events, /metrics and
/v1/balance all give calc.rate's figure (latest flow × stored kg CO2e per unit), for gas as for electricity.

The engine is fed message by message (no broker, an injected clock); the same messages are stored through
ingest's converter, as ingest would. Expected values are computed by hand from the inputs: the grid factor and
the natural gas factor of the factor set, the flows sent and the energy stored.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.auth import KeyRing
from api.live.live_sums import LiveState
from api.live.rule_runner import Engine
from api.main import create_app
from api.settings import ApiSection, MqttSection, Settings
from calc import topics
from calc.emissions import carrier_co2e
from calc.factors import default_factor_set
from calc.plant import parse_plant
from calc.rate import meter_rates
from calc.schema import ReadingMessage, Sample, encode
from ingest.convert import Converter
from ingest.store.base import MeterTotal
from ingest.store.sqlite import SqliteStore
from tests.api.conftest import START, Env

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
TODAY = datetime(2026, 3, 10, tzinfo=UTC)
AREAS = {"m1": "a", "m2": "a", "m3": "b", "g1": "b"}


def plant() -> dict[str, Any]:
    return {"site": {"id": "s1", "region": "CN", "timezone": "UTC", "start": START},
            "meters": [{"id": m, "area": AREAS[m], "carrier": "electricity", "interval_s": 60.0,
                        "max_power_kw": 1000.0} for m in ("m1", "m2", "m3")]
            + [{"id": "g1", "area": "b", "carrier": "natural_gas", "interval_s": 60.0}]}


def grid_f() -> float:
    """kg CO2e per kWh of the CN grid on the day (input data of the factor set)."""
    return default_factor_set().grid_factor("CN", NOW.date()).value


def gas_f() -> float:
    """kg CO2e per m³ of natural gas (calc.emissions' formula, GB/T 32150, of one m³: the stored ratio)."""
    return carrier_co2e(1.0, "m^3", "natural_gas", default_factor_set(), region="CN", at=TODAY).co2e_kg


def flow(meter: str, seq: int, ts: datetime, quantity: str, value: float, unit: str) -> ReadingMessage:
    return ReadingMessage(meter=meter, seq=seq, samples=(
        Sample(ts=ts, quantity=quantity, value=value, unit=unit),))


def counter(meter: str, seq: int, ts: datetime, quantity: str, delta: float, unit: str,
            interval_s: float = 3600.0) -> ReadingMessage:
    return ReadingMessage(meter=meter, seq=seq, samples=(
        Sample(ts=ts, quantity=quantity, value=1000.0 + seq * delta, unit=unit, delta=delta, interval_s=interval_s),))


class RateEnv(Env):
    """The API test environment with a gas meter in area b."""

    def settings(self, mqtt: MqttSection | None = None, **api: Any) -> Settings:
        api.setdefault("live", False)
        section = ApiSection(keys_file=str(self.keys_file), db_path=str(self.tmp / "api.sqlite"), **api)
        return Settings(plant=parse_plant(plant()), plant_data=plant(), base_dir=self.tmp, api=section,
                        mqtt=mqtt or MqttSection())

    def app(self, mqtt: MqttSection | None = None, **api: Any) -> FastAPI:
        return create_app(self.settings(mqtt, **api), SqliteStore(self.tmp / "store.sqlite"),
                          KeyRing.load(self.keys_file), clock=self.clock)


class Plant:
    """Sends each message as the edge would: ingest stores it, the API's engine receives it."""

    def __init__(self, env: RateEnv) -> None:
        self.env = env
        self.conv = Converter(parse_plant(plant()), clock=lambda: datetime(2030, 1, 1, tzinfo=UTC).timestamp())
        self.seq: dict[str, int] = {}

    def store(self, msg: ReadingMessage) -> None:
        out = self.conv.convert(topics.reading("s1", AREAS[msg.meter], msg.meter), encode(msg))
        assert not out.dead, out.dead
        self.env.store.write(self.conv.batch([out]))

    def send(self, app: FastAPI, client: TestClient, msg: ReadingMessage) -> None:
        self.store(msg)
        engine: Engine = app.state.engine
        client.portal.call(engine.handle, topics.reading("s1", AREAS[msg.meter], msg.meter),  # type: ignore[union-attr]
                           encode(msg), 0.0)


def metric(text: str, name: str, **labels: str) -> float:
    """The value of the one sample of the Prometheus text named `name` whose labels include `labels`."""
    from prometheus_client.parser import text_string_to_metric_families

    (value,) = [s.value for f in text_string_to_metric_families(text) for s in f.samples
                if s.name == name and labels.items() <= s.labels.items()]
    return float(value)


def drain(queue: asyncio.Queue[tuple[str, str]]) -> list[tuple[str, dict[str, Any]]]:
    """The events a stream subscriber's queue holds (what /v1/stream would send it)."""
    out = []
    while not queue.empty():
        event, text = queue.get_nowait()
        out.append((event, json.loads(text)))
    return out


def test_stream_rule_metrics_and_balance_agree_at_a_still_moment(tmp_path: Path) -> None:
    env = RateEnv(tmp_path)
    env.clock.now = NOW
    p = Plant(env)
    for hour in range(12):                                # today: m1 1 kWh an hour, m3 2 kWh an hour
        p.store(counter("m1", hour, TODAY + timedelta(hours=hour), "active_energy_import", 1.0, "kWh"))
        p.store(counter("m3", hour, TODAY + timedelta(hours=hour), "active_energy_import", 2.0, "kWh"))
    for d in range(3):                                    # g1: 50 m³ a day on March 1-3, nothing today
        p.store(counter("g1", d, datetime(2026, 3, 1 + d, 6, tzinfo=UTC), "volume", 50.0, "m^3"))
    f, k = grid_f(), gas_f()
    app = env.app()
    with TestClient(app) as c:
        engine: Engine = app.state.engine
        queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue(1000)
        app.state.hub.add(queue, meters=("m1", "m2", "g1"))   # each update of these meters
        eng = env.h("engineer")
        old_value = 50 * f                                # what power × grid factor gave: gas not counted
        for rule in ({"id": "site-rate", "name": "site rate", "metric": "co2e_rate", "threshold": old_value + 1,
                      "scope": "site"},
                     {"id": "b-rate", "name": "area b rate", "metric": "co2e_rate", "threshold": 1.0,
                      "scope": "area", "target": "b"}):
            assert c.post("/v1/rules", json=rule, headers=eng).status_code == 201
        p.send(app, c, flow("m1", 100, NOW - timedelta(seconds=40), "active_power", 20.0, "kW"))
        p.send(app, c, flow("m1", 101, NOW - timedelta(seconds=30), "active_power", 40_000.0, "W"))
        p.send(app, c, flow("m2", 100, NOW - timedelta(seconds=25), "active_power", 10.0, "kW"))  # no energy
        p.send(app, c, flow("g1", 100, NOW - timedelta(seconds=20), "volume_flow", 0.5, "m^3/min"))  # 30 m³/h
        # m1 today's f kg/kWh; g1 this month's k kg/m³; m2 (no stored energy yet) its current factor, f
        expected = 40 * f + 10 * f + 30 * k
        # the flow is live: the new samples count at once (the ratio came from the store at start-up)
        events = drain(queue)
        meter_events = [d for e, d in events if e == "meter"]
        assert meter_events[1]["co2e_rate_kg_per_h"] == pytest.approx(40 * f)
        assert meter_events[2]["co2e_rate_kg_per_h"] == pytest.approx(10 * f)   # m2: no energy, the factor
        assert meter_events[3]["co2e_rate_kg_per_h"] == pytest.approx(30 * k)
        # a still moment: the engine refreshes its ratios from the store, nothing else arrives
        c.portal.call(engine.refresh_rates, app.state.store)  # type: ignore[union-attr]
        engine.flush()                                    # the stream's once-a-second aggregates, now
        balances = [d for e, d in events + drain(queue) if e == "balance"]
        streamed = balances[-1]["co2e_rate_kg_per_h"]
        h = env.h("viewer")
        balance = c.get("/v1/balance", params={"period": "today"}, headers=h).json()
        area_b = c.get("/v1/balance", params={"period": "today", "area": "b"}, headers=h).json()
        meters = {m["meter"]: m for m in c.get("/v1/meters", headers=h).json()["meters"]}
        metrics = c.get("/metrics", headers=h).text
        fired = c.get("/v1/alerts", headers=h).json()["alerts"]
        rules = {r.id: r.spec for r in engine.rules}
        rule_value = engine.live.value(rules["site-rate"], NOW)
        area_value = engine.live.value(rules["b-rate"], NOW)
    assert balance["rate_kg_per_h"] == pytest.approx(expected)
    assert streamed == pytest.approx(expected)
    assert rule_value == pytest.approx(expected)
    assert metric(metrics, "carbonwatch_site_co2e_rate_kg_per_h") == pytest.approx(expected)
    assert area_value == pytest.approx(30 * k) == area_b["rate_kg_per_h"]
    assert meters["g1"]["co2e_rate_kg_per_h"] == pytest.approx(30 * k)
    assert metric(metrics, "carbonwatch_meter_co2e_rate_kg_per_h", site="s1", meter="g1") == pytest.approx(30 * k)
    # the site rule fired when the gas flow came in (the old definition never reached its threshold)
    by_rule = {a["rule"]: a for a in fired}
    assert by_rule["site-rate"]["value"] == pytest.approx(expected)
    assert by_rule["b-rate"]["value"] == pytest.approx(30 * k)


def total(meter: str, energy: float, unit: str, kg: float) -> MeterTotal:
    return MeterTotal(meter=meter, site="s1", area=AREAS[meter], carrier="x", scope="scope2", energy=energy,
                      energy_unit=unit, co2e_kg=kg, points=1)


def test_live_rate_is_calc_rate_on_the_stream_flow_and_the_refreshed_ratio() -> None:
    """Pure: the live state's rate equals calc.rate.meter_rates on the same inputs, and follows a new ratio
    only when it is refreshed."""
    live = LiveState(parse_plant(plant()))
    live.set_basis([total("m1", 100.0, "kWh", 60.0), total("g1", 0.0, "m^3", 0.0)],    # m1: 0.6 kg/kWh
                   [total("g1", 10.0, "m^3", 21.0)])                                   # g1: 2.1 kg/m³ (month)
    update = live.apply(flow("m1", 1, NOW, "active_power", 100.0, "kW"))
    assert update is not None and update.co2e_rate_kg_per_h == pytest.approx(100 * 0.6)
    live.apply(flow("g1", 1, NOW, "volume_flow", 20.0, "m^3/h"))
    live.apply(ReadingMessage(meter="m1", seq=2, samples=(   # counters and per-phase values are not flows
        Sample(ts=NOW, quantity="active_power_l1", value=900.0, unit="kW"),
        Sample(ts=NOW, quantity="active_energy_import", value=5.0, unit="kWh", delta=1.0, interval_s=60.0))))
    assert live.meters["m1"].co2e_rate_kg_per_h == pytest.approx(60.0)
    assert live.meters["g1"].co2e_rate_kg_per_h == pytest.approx(20 * 2.1)
    flows = [s for m in live.meters.values() for s in m.flows.values()]
    by_calc = meter_rates(flows, [total("m1", 100.0, "kWh", 60.0)], [total("g1", 10.0, "m^3", 21.0)])
    assert {m: r.rate_kg_per_h for m, r in by_calc.items()} == {
        m.meter: m.co2e_rate_kg_per_h for m in live.meters.values() if m.rate is not None}
    # the ratio changes in the store (today's energy now carries 0.5 kg/kWh): seen at the refresh only
    live.apply(flow("m1", 3, NOW + timedelta(seconds=1), "active_power", 80.0, "kW"))
    assert live.meters["m1"].co2e_rate_kg_per_h == pytest.approx(80 * 0.6)
    live.set_basis([total("m1", 200.0, "kWh", 100.0)], [total("g1", 10.0, "m^3", 21.0)])
    assert live.meters["m1"].co2e_rate_kg_per_h == pytest.approx(80 * 0.5)
    # an older sample does not replace a newer one; a bad latest sample leaves no flow (as in the store)
    live.apply(flow("m1", 4, NOW, "active_power", 999.0, "kW"))
    assert live.meters["m1"].co2e_rate_kg_per_h == pytest.approx(80 * 0.5)
    live.apply(ReadingMessage(meter="m1", seq=5, samples=(
        Sample(ts=NOW + timedelta(seconds=2), quantity="active_power", value=70.0, unit="kW", quality="bad"),)))  # type: ignore[arg-type]
    assert live.meters["m1"].rate is None and live.meters["m1"].co2e_rate_kg_per_h == 0.0


def test_a_flow_in_a_unit_that_does_not_convert_gives_no_rate_and_no_error() -> None:
    live = LiveState(parse_plant(plant()))
    live.set_basis([total("g1", 10.0, "m^3", 21.0)], [])
    for seq, unit in enumerate(("kW", "(", "furlong")):
        update = live.apply(flow("g1", seq, NOW + timedelta(seconds=seq), "volume_flow", 5.0, unit))
        assert update is not None and update.co2e_rate_kg_per_h is None


def test_energy_for_a_meter_without_a_ratio_asks_for_a_refresh() -> None:
    live = LiveState(parse_plant(plant()))
    live.set_basis([total("g1", 10.0, "m^3", 21.0)], [])
    idle = live.apply(counter("m1", 1, NOW, "active_energy_import", 0.0, "kWh"))      # nothing to store a ratio of
    fresh = live.apply(counter("m1", 2, NOW + timedelta(seconds=1), "active_energy_import", 1.5, "kWh"))
    known = live.apply(counter("g1", 1, NOW, "volume", 1.0, "m^3"))                   # g1 has its ratio
    power = live.apply(flow("m2", 1, NOW, "active_power", 5.0, "kW"))                 # a flow is no energy
    assert (idle and idle.needs_basis, fresh and fresh.needs_basis, known and known.needs_basis,
            power and power.needs_basis) == (False, True, False, False)
