"""Fault scenarios 8-16: the meters misbehave (issue 14) on one running system, checked after each: per meter,
counted + held energy equals what the meter produced (the simulator's ground truth), to 1e-9.

The edge runs under libfaketime (simulators/README.md, "The edge agent's clock"): its wall clock starts LEAD_S
before a local midnight of the site (Asia/Shanghai) in the past, so that an outage can span that midnight (scenario
8) and the clock can be stepped a day either way (15, 16). Resets and replacements are done with the plant paused
after the edge has read the paused counter (then resumed: the edge confirms them once the new counter moves), so
the one interval the rule may lose at them is empty and the check stays exact.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from calc.units import conversion_factor
from simulators.edgeclock import LIBFAKETIME, EdgeClock, build_sleepfix, preload_env, remove_shm
from tests.deploy.harness import wait_until
from tests.faults.lab import Lab, Rig
from tests.faults.ledger import REL_TOL
from tests.faults.procs import PersistentMosquitto
from tests.faults.system import SiteSystem

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900),
              pytest.mark.skipif(not LIBFAKETIME.exists(), reason="needs Debian's libfaketime (deploy/test.sh)")]

S8 = "8 offline across local midnight"
S9 = "9 transient zero"
S10 = "10 garbage high"
S11 = "11 counter reset"
S12 = "12 rollover"
S13 = "13 meter replaced"
S14 = "14 stuck counter"
S15 = "15 edge clock -1 day"
S16 = "16 edge clock +1 day, re-anchored"

DAY_S = 86400.0
LEAD_S = 120.0          # the edge's clock reaches the site's midnight this long after the plant files are written
CLOCK_SETTLE_S = 45.0   # [edge] clock_settle_s: scenario 15 steps back within it, 16 waits it out
ZONE = ZoneInfo("Asia/Shanghai")
PRESS4_START = 10**12   # Wh: an old meter, so a replacement's new counter is far below it (implausible since zero)
BOILER1_START = 10**9   # litres (1,000,000 m3)
# pulses below the 32-bit wrap: canteen-gas (~80 pulses/s at 600x) wraps by itself some 25 s after the plant first
# resumes. The simulator's `rollover` fault moves the register to the top in one step, which is a jump the edge
# rightly holds, not a rollover: the wrap must come as a real counter's does.
CANTEEN_TO_WRAP = 2000


def _midnight_before(now: datetime) -> datetime:
    local = now.astimezone(ZONE)
    return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)


def meter_site(where: Path, broker: PersistentMosquitto, cleanups: list[Callable[[], None]]) -> SiteSystem:
    system = SiteSystem(where, "meters", seed=41, mqtt_url=broker.url,
                        store={"kind": "sqlite", "path": str(where / "store.sqlite")}, workers=("ingest",),
                        edge_extra={"clock_settle_s": CLOCK_SETTLE_S},
                        # an outage of tens of seconds is spread (the default waits for minutes of it)
                        ingest_extra={"gap_flagged_after_s": 10.0})
    for meter in system.data["meters"]:
        if meter["id"] == "press-4":
            meter["sim"]["counter_start"] = PRESS4_START
        if meter["id"] == "boiler-gas-1":
            meter["sim"]["counter_start"] = BOILER1_START
        if meter["id"] == "canteen-gas":
            meter["sim"]["counter_start"] = 2**32 - CANTEEN_TO_WRAP
    now = datetime.now(UTC)
    midnight = _midnight_before(now + timedelta(seconds=LEAD_S))
    offset_s = (midnight - timedelta(seconds=LEAD_S) - now).total_seconds()  # always in the past: ingest places it
    clock_file = where / "edge-clock.rc"
    EdgeClock(clock_file, offset_s)  # before the edge starts; the simulator writes the same at its start
    system.data["simulator"] |= {"edge_clock_file": str(clock_file), "edge_clock_offset_s": offset_s}
    system.clock_offset_s = offset_s
    system.attached["midnight"] = midnight
    system.envs["edge"] = preload_env(clock_file, build_sleepfix(where / "sleepfix"))
    system.write_plants()
    edge = system.children["edge"]

    def remove_edge_shm() -> None:
        for pid in edge.ended_pids:
            remove_shm(pid)

    cleanups.append(remove_edge_shm)
    return system


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = Lab(tmp_path_factory.mktemp("faults-meters"), meter_site)
    try:
        yield lab
    finally:
        lab.close()


# --- helpers --------------------------------------------------------------------------------------------------------
def fault(system: SiteSystem, meter: str, kind: str, **params: Any) -> None:
    system.control.post("/faults", json={"meter": meter, "fault": kind, **params}).raise_for_status()


def clear(system: SiteSystem, meter: str) -> None:
    system.control.delete("/faults", params={"meter": meter}).raise_for_status()


def edge_clock(system: SiteSystem, offset_s: float) -> None:
    system.control.post("/edge_clock", json={"seconds": offset_s}).raise_for_status()


def counter_samples(rig: Rig, meter: str, quantity: str) -> list[dict[str, Any]]:
    return [s for s in rig.tap.samples(meter) if s.get("quantity") == quantity]


QUANTITY = {"schneider_pm5000": "active_energy_import", "eastron_sdm630": "active_energy_import",
            "adam6051_counter": "volume", "opcua_gas": "volume", "opcua_steam": "mass"}  # as the edge publishes them


def quantity_of(system: SiteSystem, meter: str) -> str:
    return QUANTITY[system.expect.maps[meter]]


def wait_flag(rig: Rig, meters: tuple[str, ...], flag: str, after: datetime | None = None,
              timeout_s: float = 120.0) -> None:
    """Until the edge has sent a counter sample flagged `flag` for each meter (stamped after `after`)."""
    def flagged(meter: str) -> bool:
        return any(flag in s.get("flags", ()) and (after is None or s["ts"] > after)
                   for s in counter_samples(rig, meter, quantity_of(rig.system, meter)))

    wait_until(f"the edge flagging {flag!r} on {', '.join(meters)}", lambda: all(flagged(m) for m in meters),
               timeout_s, 0.2)


def wait_read_paused(rig: Rig, meters: tuple[str, ...]) -> None:
    """With the plant paused: until the edge has sent each meter's paused counter (its last good reading is the
    register as it stands, so a reset or replacement now loses no interval)."""
    truth = rig.system.truth()
    assert truth["paused"]

    def read(meter: str) -> bool:
        counter = truth["meters"][meter]["counters"]
        (c,) = counter.values()
        seen = counter_samples(rig, meter, quantity_of(rig.system, meter))
        return bool(seen) and abs(seen[-1]["value"] - c["value"]) <= 1e-9 * max(1.0, abs(c["value"]))

    wait_until(f"the edge reading the paused counters of {', '.join(meters)}", lambda: all(read(m) for m in meters),
               60, 0.2)


# --- scenario 8 ------------------------------------------------------------------------------------------------------
def test_offline_across_local_midnight(lab: Lab) -> None:
    """An outage from before the site's midnight to after it: the gap's energy is spread over the gap and cut at
    midnight, each day getting the share of its time (linear: the edge knows nothing better)."""
    with lab.scenario(S8) as rig:
        system = rig.system
        midnight: datetime = system.attached["midnight"]
        meter = "weld-1"
        rig.tap.watch(meter, "canteen-gas")  # canteen-gas wraps meanwhile (scenario 12)
        left = (midnight - system.now()).total_seconds()
        assert left > 10, f"the system took too long to start: the edge's midnight came {-left:.0f} s ago " \
                          f"(LEAD_S = {LEAD_S} s)"
        fault(system, meter, "offline")
        wait_until("the edge's clock past midnight", lambda: system.now() > midnight + timedelta(seconds=20),
                   left + 120, 0.5)
        clear(system, meter)
        quantity = quantity_of(system, meter)
        wait_until("the first reading after the outage",
                   lambda: any(s["ts"] > midnight and s.get("delta") for s in counter_samples(rig, meter, quantity)),
                   120, 0.2)
        rig.check(S8)
        gap = next(s for s in counter_samples(rig, meter, quantity) if s["ts"] > midnight and s.get("delta"))
        assert "gap" in gap.get("flags", ()), gap
        end = gap["ts"]
        start = end - timedelta(seconds=float(gap["interval_s"]))
        assert start < midnight < end, (start, midnight, end)
        to_kwh = conversion_factor(gap["unit"], "kWh")
        before = gap["delta"] * to_kwh * (midnight - start).total_seconds() / gap["interval_s"]
        after = gap["delta"] * to_kwh - before
        # the cut is exact up to the samples' time resolution (1 us), nothing coarser
        tolerance = gap["delta"] * to_kwh * 2e-6 / gap["interval_s"] + REL_TOL * before
        tick = timedelta(microseconds=1)
        counted_before = system.counted(start + tick, midnight).get(meter, (0.0, "kWh", 0.0))
        counted_after = system.counted(midnight, end + tick).get(meter, (0.0, "kWh", 0.0))
        assert counted_before[1] == counted_after[1] == "kWh"
        assert abs(counted_before[0] - before) <= tolerance, \
            f"{meter}: energy of the gap before the site's midnight {counted_before[0]} kWh, linear share {before}"
        assert abs(counted_after[0] - after) <= tolerance, \
            f"{meter}: energy of the gap after the site's midnight {counted_after[0]} kWh, linear share {after}"


# --- scenarios 9, 10 -------------------------------------------------------------------------------------------------
def test_transient_zero(lab: Lab) -> None:
    """One read of zero on an INT64 Wh, a float32 kWh and a 32-bit pulse counter: held, then let go."""
    meters = ("press-1", "paint-oven", "oven-gas")
    with lab.scenario(S9) as rig:
        rig.tap.watch(*meters)
        rig.window.count_held()
        rig.tap.wait_for("readings flowing", 50)
        for meter in meters:
            fault(rig.system, meter, "transient_zero")
        wait_flag(rig, meters, "transient")
        rig.check(S9)


def test_garbage_high(lab: Lab) -> None:
    """One read far above the truth (2**50 Wh; 2**40 Wh as float32 kWh; 3/8 of a 32-bit pulse counter's range)."""
    meters = ("press-2", "chiller-1", "dryer-gas")
    with lab.scenario(S10) as rig:
        rig.tap.watch(*meters)
        rig.window.count_held()
        rig.tap.wait_for("readings flowing", 50)
        fault(rig.system, "press-2", "garbage_high", counts=2**50)
        fault(rig.system, "chiller-1", "garbage_high")
        fault(rig.system, "dryer-gas", "garbage_high")
        wait_flag(rig, meters, "transient")
        rig.check(S10)


# --- scenarios 11-14 -------------------------------------------------------------------------------------------------
def test_counter_reset(lab: Lab) -> None:
    meters = ("press-3", "furnace-gas")
    with lab.scenario(S11) as rig:
        system = rig.system
        rig.tap.watch(*meters)
        rig.window.count_held()
        rig.tap.wait_for("readings flowing", 50)
        rig.window.mark()
        system.pause()
        wait_read_paused(rig, meters)
        flagged_after = system.now()
        for meter in meters:
            fault(system, meter, "counter_reset")
        # the edge confirms a reset only when the counter moves on from zero (standing still confirms nothing)
        system.resume()
        wait_flag(rig, meters, "reset", after=flagged_after)
        rig.tap.wait_for("readings after the reset", 100)
        rig.check(S11)


def test_rollover(lab: Lab) -> None:
    """The 32-bit pulse counter of canteen-gas wraps by itself soon after the plant first runs: in scenario 8's
    window when that ran on the same system (its check covered it), else in this one."""
    meter = "canteen-gas"
    with lab.scenario(S12) as rig:
        rig.tap.watch(meter)
        rig.window.count_held()
        wait_flag(rig, (meter,), "rollover")
        rig.tap.wait_for("readings after the wrap", 50)
        rig.check(S12)


def test_meter_replaced(lab: Lab) -> None:
    """A new meter whose counter starts far below the old one (not plausible as energy since a reset)."""
    meters = ("press-4", "boiler-gas-1")
    with lab.scenario(S13) as rig:
        system = rig.system
        rig.tap.watch(*meters)
        rig.window.count_held()
        rig.tap.wait_for("readings flowing", 50)
        system.pause()
        wait_read_paused(rig, meters)
        flagged_after = system.now()
        fault(system, "press-4", "replacement", counter_start=PRESS4_START // 3)
        fault(system, "boiler-gas-1", "replacement", counter_start=BOILER1_START // 5)
        # the edge must have read the new counter still standing: else its first reading of it, after the resume,
        # carries energy since the swap, which is the one interval the rule lets a replacement lose
        wait_read_paused(rig, meters)
        system.resume()  # as in 11: confirmed once the new counter moves
        wait_flag(rig, meters, "replacement", after=flagged_after)
        rig.tap.wait_for("readings from the new meters", 100)
        rig.check(S13)


def test_stuck_counter(lab: Lab) -> None:
    meter = "weld-2"
    with lab.scenario(S14) as rig:
        rig.tap.watch(meter)
        rig.window.count_held()
        fault(rig.system, meter, "stuck")
        wait_flag(rig, (meter,), "stuck")
        rig.tap.wait_for("more polls of the stuck counter", 100)
        clear(rig.system, meter)
        flagged_after = rig.system.now()
        quantity = quantity_of(rig.system, meter)
        wait_until("the counter catching up", lambda: any(
            s["ts"] > flagged_after and (s.get("delta") or 0) > 0 for s in counter_samples(rig, meter, quantity)),
            60, 0.2)
        rig.check(S14)


# --- scenarios 15, 16 ------------------------------------------------------------------------------------------------
def test_edge_clock_a_day_back(lab: Lab) -> None:
    """The edge's wall clock a day behind, and set right before the edge would take it (clock_settle_s)."""
    with lab.scenario(S15) as rig:
        system = rig.system
        meters = tuple(system.expect.maps)
        rig.tap.watch(*meters)
        rig.window.count_held()
        rig.tap.wait_for("readings flowing", 50)
        base = system.clock_offset_s
        stepped = time.monotonic()
        edge_clock(system, base - DAY_S)
        flagged_after = system.now()
        wait_flag(rig, meters, "clock", after=flagged_after, timeout_s=CLOCK_SETTLE_S)
        assert time.monotonic() - stepped < CLOCK_SETTLE_S - 5, "too slow: the edge may have taken the step"
        edge_clock(system, base)
        rig.tap.wait_for("readings after the clock was set right", 100)
        rig.check(S15)


def test_edge_clock_a_day_ahead_and_taken(lab: Lab) -> None:
    """The edge's wall clock a day ahead, for good: after clock_settle_s the edge stamps from it (ingest holds what
    it cannot place). Last: the edge cannot come back from a day ahead without ignoring a day of readings."""
    with lab.scenario(S16) as rig:
        system = rig.system
        meters = tuple(system.expect.maps)
        rig.tap.watch(*meters)
        rig.window.count_held()
        rig.window.horizon = timedelta(days=2)
        rig.tap.wait_for("readings flowing", 50)
        edge_clock(system, system.clock_offset_s + DAY_S)
        ahead = system.now() + timedelta(days=1) - timedelta(minutes=10)
        wait_until("the edge stamping from the stepped clock (re-anchored)", lambda: all(
            any(s["ts"] > ahead for s in counter_samples(rig, m, quantity_of(system, m))) for m in meters),
            CLOCK_SETTLE_S + 120, 0.5)
        rig.tap.wait_for("readings stamped a day ahead", 100)
        rig.check(S16, confirm=lambda: rig.tap.wait_for("readings after the balance matched", 200))
