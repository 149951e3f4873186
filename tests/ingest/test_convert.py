"""Validation and conversion of reading messages (pure: no broker, no store)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from calc import topics
from calc.emissions import carrier_co2e
from calc.factors import default_factor_set
from calc.plant import parse_plant
from ingest.convert import Converted, Converter
from ingest.points import ts_to_us
from tests.ingest.helpers import SITE, T0, counter_sample, iso, message, power_sample

PLANT = parse_plant({
    "site": {"id": "demo", "region": "CN", "start": "2026-01-01T00:00:00Z"},
    "meters": [{"id": "press-1", "area": "pressing", "carrier": "electricity", "max_power_kw": 500.0},
               {"id": "boiler", "area": "utilities", "carrier": "natural_gas"}],
})
NOW_US = ts_to_us(T0 + timedelta(days=1))
TOPIC = topics.reading(SITE, "pressing", "press-1")


def conv() -> Converter:
    return Converter(PLANT, max_future_s=300, clock=lambda: NOW_US / 1e6)


def col(point: dict[str, object], name: str) -> object:
    return point[name]


def described(c: Converter, out: Converted) -> list[dict[str, object]]:
    """Each point with its meter's and factor's details joined back, as a store would show it."""
    batch = c.batch([out])
    return [batch.describe(p) for p in out.points]


def test_counter_sample_becomes_kwh_and_co2e_with_its_factor() -> None:
    c = conv()
    out = c.convert(TOPIC, message("press-1", 3, [
        {**counter_sample(T0, 2500.0, 9e6), "unit": "Wh"}, power_sample(T0, 150.0)]), NOW_US)
    assert out.dead == []
    counter, power = described(c, out)
    choice = default_factor_set().grid_factor("CN", T0)
    scalar = carrier_co2e(2.5, "kWh", "electricity", default_factor_set(), region="CN", at=T0)
    assert col(counter, "energy") == pytest.approx(2.5)
    assert col(counter, "energy_unit") == "kWh"
    assert col(counter, "co2e_kg") == pytest.approx(2.5 * choice.value)
    assert col(counter, "factor_id") == choice.factor_id == scalar.factor_id
    assert col(counter, "factor_version") == scalar.factor_version
    assert col(counter, "scope") == "scope2_location"
    assert col(counter, "seq") == 3 and col(counter, "carrier") == "electricity" and col(counter, "area") == "pressing"
    assert col(power, "energy") is None and col(power, "value") == 150.0 and "factor_id" not in power


def test_baseline_sample_without_delta_counts_zero_energy() -> None:
    c = conv()
    out = c.convert(TOPIC, message("press-1", 0, [
        {"ts": iso(T0), "quantity": "active_energy_import", "value": 10.0, "unit": "kWh", "flags": ["first"]}]))
    (p,) = described(c, out)
    assert col(p, "energy") == 0.0 and col(p, "co2e_kg") == 0.0 and col(p, "flags") == "first"


def test_one_message_with_nan_future_and_before_start_keeps_the_good_samples() -> None:
    good1, good2 = counter_sample(T0, 1.0, 1.0), counter_sample(T0 + timedelta(minutes=2), 1.5, 2.5)
    nan = counter_sample(T0 + timedelta(minutes=1), 1.0, 2.0)
    future = counter_sample(T0 + timedelta(days=2), 1.0, 3.0)
    early = counter_sample(T0 - timedelta(days=365), 1.0, 0.5)
    nan["value"] = float("nan")
    raw = {"v": 1, "meter": "press-1", "seq": 7, "samples": [good1, nan, future, early, good2]}
    payload = json.dumps(raw).encode()  # Python writes NaN as the bare token NaN, as some publishers do
    assert b"NaN" in payload
    out = conv().convert(TOPIC, payload, NOW_US)
    assert sorted(p[1] for p in out.points) == [ts_to_us(T0), ts_to_us(T0 + timedelta(minutes=2))]
    by_index = {d.index: d.reason for d in out.dead}
    assert set(by_index) == {1}
    assert "samples.1.value" in by_index[1] and "finite" in by_index[1]
    assert all(d.meter == "press-1" and d.seq == 7 for d in out.dead)
    # counted deltas whose time cannot be placed are held, never dropped
    held = {h.ts_us: h for h in out.held}
    assert set(held) == {ts_to_us(T0 + timedelta(days=2)), ts_to_us(T0 - timedelta(days=365))}
    assert "samples.2: ts:" in held[ts_to_us(T0 + timedelta(days=2))].reason
    assert "in the future" in held[ts_to_us(T0 + timedelta(days=2))].reason
    assert "before the plant's start" in held[ts_to_us(T0 - timedelta(days=365))].reason
    assert all(h.energy == 1.0 and h.seq == 7 and h.meter == "press-1" for h in out.held)


@pytest.mark.parametrize(("topic", "payload", "expected"), [
    (TOPIC, b"{", "json"),
    (TOPIC, b"[]", "payload"),
    (TOPIC, message("press-2", 1, [counter_sample(T0, 1, 1)]), "differs from topic meter"),
    (topics.reading(SITE, "pressing", "ghost"), message("ghost", 1, [counter_sample(T0, 1, 1)]),
     "'ghost' is not a meter of site 'demo'"),
    (topics.reading(SITE, "painting", "press-1"), message("press-1", 1, [counter_sample(T0, 1, 1)]),
     "area 'painting' is wrong, meter 'press-1' is in area 'pressing'"),
    (topics.reading("other", "pressing", "press-1"), message("press-1", 1, [counter_sample(T0, 1, 1)]),
     "site 'other' is not this plant's site"),
    ("carbonwatch/v1/demo/edge/agent-1/status", b"online", "not a carbonwatch reading topic"),
    (TOPIC, json.dumps({"v": 2, "meter": "press-1", "seq": 1, "samples": [counter_sample(T0, 1, 1)]}).encode(),
     "v:"),
    (TOPIC, json.dumps({"v": 1, "meter": "press-1", "seq": -1, "samples": [counter_sample(T0, 1, 1)]}).encode(),
     "seq:"),
])
def test_bad_messages_are_dead_lettered_whole_with_a_reason(topic: str, payload: bytes, expected: str) -> None:
    out = conv().convert(topic, payload, NOW_US)
    assert out.points == []
    (dead,) = out.dead
    assert expected.lower() in dead.reason.lower(), dead.reason
    assert dead.payload == payload and dead.topic == topic and dead.index is None


@pytest.mark.parametrize(("sample", "expected"), [
    (counter_sample(T0, -3.0, 1.0), "negative energy"),
    ({**counter_sample(T0, 1.0, 1.0), "unit": "kW"}, "cannot be converted to 'kWh'"),
    ({**counter_sample(T0, 1.0, 1.0), "unit": "]"}, "cannot be converted to 'kWh'"),  # pint: TokenError
    ({**counter_sample(T0, 1.0, 1.0), "ts": "2026-03-01T08:00:00+08:00"}, "UTC"),
    ({**counter_sample(T0, 1.0, 1.0), "extra": 1}, "extra"),
])
def test_bad_samples_are_dead_lettered_one_by_one(sample: dict[str, object], expected: str) -> None:
    good = counter_sample(T0 + timedelta(minutes=5), 1.0, 5.0)
    out = conv().convert(TOPIC, message("press-1", 1, [sample, good]), NOW_US)
    assert len(out.points) == 1
    (dead,) = out.dead
    assert dead.index == 0 and expected.lower() in dead.reason.lower(), dead.reason


def test_a_delta_above_max_power_is_held_with_its_co2e_not_dead_lettered() -> None:
    good = counter_sample(T0 + timedelta(minutes=5), 1.0, 5.0)
    out = conv().convert(TOPIC, message("press-1", 1, [counter_sample(T0, 20.0, 1.0, interval_s=60.0), good]),
                         NOW_US)  # 20 kWh a minute = 1200 kW > 500 kW
    assert len(out.points) == 1 and out.dead == []
    (held,) = out.held
    assert "samples.0: delta: quarantined" in held.reason and "1200.0 kW" in held.reason
    assert (held.delta, held.energy, held.energy_unit, held.ts_us) == (20.0, 20.0, "kWh", ts_to_us(T0))
    assert held.co2e_kg is not None and held.co2e_kg > 0 and held.factor_ref is not None


def test_reset_flag_allows_a_negative_delta_and_export_is_stored_but_not_counted() -> None:
    c = conv()
    out = c.convert(TOPIC, message("press-1", 1, [
        counter_sample(T0, -1.0, 0.0, flags=["reset"]),
        {**counter_sample(T0, 4.0, 9.0), "quantity": "active_energy_export"}]), NOW_US)
    assert out.dead == []
    reset, export = described(c, out)
    assert col(reset, "energy") == -1.0 and col(reset, "flags") == "reset"
    assert col(export, "energy") is None and col(export, "co2e_kg") is None


def test_natural_gas_counters_get_scope1_co2e_from_calc() -> None:
    topic = topics.reading(SITE, "utilities", "boiler")
    c = conv()
    out = c.convert(topic, message("boiler", 1, [{**counter_sample(T0, 3000.0, 30.0), "unit": "L",
                                                  "quantity": "volume"}]), NOW_US)
    assert out.dead == []
    (p,) = described(c, out)
    expected = carrier_co2e(3.0, "m^3", "natural_gas", default_factor_set(), region="CN", at=T0)
    assert col(p, "carrier") == "natural_gas" and col(p, "energy") == pytest.approx(3.0)
    assert col(p, "energy_unit") == "m^3"
    assert col(p, "co2e_kg") == pytest.approx(expected.co2e_kg)
    assert col(p, "scope") == expected.scope and col(p, "factor_id") == expected.factor_id


def test_gas_counter_in_an_energy_unit_it_cannot_convert_is_dead_lettered() -> None:
    topic = topics.reading(SITE, "utilities", "boiler")
    out = conv().convert(topic, message("boiler", 1, [{**counter_sample(T0, 3.0, 30.0), "unit": "kg",
                                                       "quantity": "mass"}]), NOW_US)
    assert out.points == []
    (dead,) = out.dead
    assert "cannot be converted to 'm^3'" in dead.reason
