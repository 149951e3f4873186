"""Production counters and driver variables at the edge: [[variables]] are polled like meters, each one's point,
kind and unit are checked against its device at start-up (errors name the key), a production counter goes
through the one counter algorithm (wrap, reset, glitch, held), and a driver's gauge carries the time it stands
for, which compaction keeps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from calc.reading_codec import EdgeSample
from calc.schema import Flag, Quality
from edge.compaction import merge_samples
from edge.config import parse_config
from edge.drivers import PointValue
from edge.errors import ConfigError
from edge.maps import TEMPLATES
from edge.readings import MeterState, MeterTracker, Poll

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
COUNT, RATE = TEMPLATES["production_counter"]
(TEMPERATURE,) = TEMPLATES["outdoor_temperature"]


def data(**variable: Any) -> dict[str, Any]:
    out = {"id": "out", "area": "a", "kind": "production", "quantity": "production", "unit": "count",
           "gateway": "gw", "unit_id": 6, "map": "production_counter"}
    return {"site": {"id": "s", "region": "CN", "start": "2026-01-01T00:00:00Z"},
            "gateways": [{"id": "gw", "kind": "modbus_tcp", "port": 5020}],
            "meters": [{"id": "m1", "area": "a", "carrier": "electricity", "gateway": "gw", "unit_id": 1,
                        "map": "schneider_pm5000"}],
            "variables": [{**out, **variable}]}


def test_variables_are_polled_like_meters() -> None:
    config = parse_config(data(), "plant.toml")
    assert [d.id for d in config.devices] == ["m1", "out"]
    assert config.is_variable("out") and not config.is_variable("m1")
    assert [p.quantity for p in config.variables[0].all_points] == ["production", "production_rate"]


@pytest.mark.parametrize(("change", "expected"), [
    ({"quantity": "pieces"}, "plant.toml: variables.0.quantity: 'pieces' is not a point of 'out' (it has "
                             "production, production_rate)"),
    ({"unit": "t"}, "plant.toml: variables.0.unit: the device reports 'count', which does not convert to 't'"),
    ({"kind": "driver", "measure": "gauge"}, "plant.toml: variables.0.measure: 'out' is a gauge but its point "
                                             "'production' is a counter"),
    ({"map": "nonesuch"}, "plant.toml: variables.0.map: Value error, unknown register map 'nonesuch'"),
    ({"gateway": "gw9"}, "meter 'out': gateway 'gw9' is not in [[gateways]]"),
])
def test_a_variable_its_device_cannot_carry_is_refused_naming_the_key(change: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(data(**change), "plant.toml")
    assert expected in str(err.value)


def test_tonnes_from_a_scaled_inline_point_are_accepted() -> None:
    point = {"quantity": "mass", "unit": "kg", "kind": "counter", "address": 10, "type": "u32", "scale": 10.0}
    config = parse_config(data(quantity="mass", unit="t", points=[point]), "plant.toml")
    assert config.variables[0].all_points[-1].unit == "kg"


def _feed(tracker: MeterTracker, polls: list[tuple[float, int | None]], step_s: float = 10.0) -> list[EdgeSample]:
    state: MeterState = {}
    out: list[EdgeSample] = []
    for i, (rate, count) in enumerate(polls):
        values = (PointValue(COUNT, count, Quality.GOOD if count is not None else Quality.BAD),
                  PointValue(RATE, rate))
        samples, state = tracker.track(Poll("out", T0 + timedelta(seconds=step_s * (i + 1)), values), state)
        out += samples
    return out


def test_a_production_counter_goes_through_the_one_counter_algorithm() -> None:
    # 360 pieces/h = one per 10 s poll; the 32-bit register wraps, and one glitch reads zero
    polls = [(360.0, 2**32 - 2), (360.0, 2**32 - 1), (360.0, 0), (360.0, 1), (360.0, 0), (360.0, 3), (360.0, 4)]
    samples = [s for s in _feed(MeterTracker("out", interval_s=10.0), polls) if s.quantity == "production"]
    counted = sum(s.delta or 0.0 for s in samples if Flag.HELD not in s.flags)
    assert counted == 6.0, samples  # what the register really advanced: wrap counted once, the zero bridged
    assert any(Flag.ROLLOVER in s.flags for s in samples)
    assert all(s.unit == "count" for s in samples)


def _temps(tracker: MeterTracker, steps_s: list[float], values: list[float]) -> list[EdgeSample]:
    state: MeterState = {}
    t = T0
    out = []
    for step, value in zip(steps_s, values, strict=True):
        t += timedelta(seconds=step)
        samples, state = tracker.track(Poll("temp", t, (PointValue(TEMPERATURE, value),)), state)
        out += samples
    return out


def test_a_drivers_gauge_carries_the_time_it_stands_for_and_a_meters_does_not() -> None:
    timed = _temps(MeterTracker("temp", interval_s=5.0, timed_gauges=True), [5, 5, 20, 5], [1.0, 2.0, 3.0, 4.0])
    assert [s.interval_s for s in timed] == [5.0, 5.0, 20.0, 5.0]  # the first: the poll interval
    assert [s.unit for s in timed] == ["degC"] * 4
    plain = _temps(MeterTracker("m", interval_s=5.0), [5, 5], [1.0, 2.0])
    assert [s.interval_s for s in plain] == [None, None]


def test_compaction_keeps_a_drivers_time_weighted_mean() -> None:
    steps = [5.0, 5.0, 20.0, 5.0, 5.0, 10.0, 5.0, 5.0, 5.0, 30.0]
    samples = _temps(MeterTracker("temp", interval_s=5.0, timed_gauges=True), steps, [float(i) for i in range(10)])
    merged = merge_samples(samples)
    assert 1 < len(merged) <= 4
    weight = sum(s.interval_s or 0.0 for s in samples)
    assert sum(s.interval_s or 0.0 for s in merged) == weight
    mean = sum(s.value * (s.interval_s or 0.0) for s in samples) / weight
    assert sum(s.value * (s.interval_s or 0.0) for s in merged) / weight == pytest.approx(mean, rel=1e-12)


def test_a_plant_file_with_variables_loads(tmp_path: Path) -> None:
    from edge.config import load_config

    config = load_config(Path(__file__).resolve().parents[2] / "deploy" / "examples" / "demo-plant.toml")
    assert {v.id for v in config.variables} == {"press-1-output", "outdoor-temp"}
