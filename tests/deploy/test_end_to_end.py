"""End to end with real parts: simulated Modbus meters -> edge -> Mosquitto -> ingest -> SQLite -> API.

The simulators start paused so the edge's first reading (its baseline) is the counter we record as the
start of the ground truth; after the run the plant is paused again and we wait until a reading taken after
the pause has been stored, so every Wh the meters advanced must be in the balance.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from calc.factors import default_factor_set
from tests.deploy.harness import METERS, System, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def system(tmp_path: Path, mqtt_url: str) -> Iterator[System]:
    sys_ = System(tmp_path, mqtt_url)
    try:
        sys_.start_all()
        yield sys_
    except BaseException:
        for name in ("simulate", "edge", "ingest", "api"):
            print(f"--- {name} log ---\n{sys_.log(name)}")
        raise
    finally:
        sys_.stop_all()


def _all_seen(system: System, min_samples: int) -> bool:
    meters = system.meters()
    return all(meters[mid]["samples"] >= min_samples for mid, *_ in METERS)


def _stored_after(system: System, moment: datetime) -> bool:
    meters = system.meters()
    return all(m["last_sample_ts"] and datetime.fromisoformat(m["last_sample_ts"]) > moment
               for m in meters.values())


def _run_and_pause(system: System, during: object = None) -> tuple[dict[str, int], dict[str, int]]:
    """Baseline while paused, run, pause; returns (truth at start, truth at end) in Wh."""
    wait_until("every meter's baseline stored", lambda: _all_seen(system, 2), 60)
    before = system.truth()
    assert system.sim.post("/resume").status_code < 300
    if callable(during):
        during()
    else:
        samples = {mid: m["samples"] for mid, m in system.meters().items()}
        wait_until("ten more polls stored", lambda: all(
            m["samples"] >= samples[mid] + 10 for mid, m in system.meters().items()), 60)
    assert system.sim.post("/pause").status_code < 300
    paused_at = datetime.now(UTC)
    after = system.truth()
    # a reading taken after the pause (plus one interval of margin) has been stored for every meter
    wait_until("a reading after the pause", lambda: _stored_after(system, paused_at + timedelta(seconds=0.5)), 60)
    return before, after


def _assert_balance_equals_truth(system: System, before: dict[str, int], after: dict[str, int]) -> None:
    factor = default_factor_set().grid_factor("CN", datetime.now(UTC)).value
    balance = system.balance()
    by_meter = {m["meter"]: m for m in balance["meters"]}
    expected_total = 0.0
    for mid, *_ in METERS:
        produced_kwh = (after[mid] - before[mid]) / 1000.0
        assert produced_kwh > 0, f"{mid} produced nothing: the test would prove nothing"
        expected = produced_kwh * factor
        expected_total += expected
        assert by_meter[mid]["co2e_kg"] == pytest.approx(expected, rel=1e-9), mid
        assert by_meter[mid]["energy"] == pytest.approx(produced_kwh, rel=1e-9), mid
        assert by_meter[mid]["energy_unit"] == "kWh"
    assert balance["co2e_kg"] == pytest.approx(expected_total, rel=1e-9)
    areas = {a["area"]: a["co2e_kg"] for a in balance["areas"]}
    assert set(areas) == {"pressing", "painting"}
    assert sum(areas.values()) == pytest.approx(expected_total, rel=1e-9)
    assert balance["factor_ids"], "the balance must name the factors it used"


def test_balance_equals_ground_truth(system: System) -> None:
    before, after = _run_and_pause(system)
    _assert_balance_equals_truth(system, before, after)


def test_ingest_restart_loses_and_double_counts_nothing(system: System) -> None:
    def outage() -> None:
        start = {mid: m["samples"] for mid, m in system.meters().items()}
        wait_until("a few polls stored", lambda: all(
            m["samples"] >= start[mid] + 3 for mid, m in system.meters().items()), 60)
        system.kill("ingest")  # SIGKILL: no chance to flush or ack anything in flight
        time.sleep(2.0)  # the edge keeps publishing into the broker's persistent session meanwhile
        system.start("ingest")
        resumed = {mid: m["samples"] for mid, m in system.meters().items()}
        wait_until("polls stored after the restart", lambda: all(
            m["samples"] >= resumed[mid] + 5 for mid, m in system.meters().items()), 60)

    before, after = _run_and_pause(system, outage)
    _assert_balance_equals_truth(system, before, after)
