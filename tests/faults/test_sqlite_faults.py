"""Fault scenarios 1, 2, 3 and 5 on one running system with the SQLite store, checked after each: per meter,
the balance over the scenario's window equals the simulator's truth (energy, and CO2e through calc's recipes).

21 meters (electricity on PM5000 and SDM630 maps, natural gas as pulses and on OPC UA, steam on OPC UA) at 600x
real time; Mosquitto with the shipped persistence; two ingest workers in a shared subscription; the API.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from ingest.store import open_reader
from tests.deploy.harness import wait_until
from tests.faults import poison
from tests.faults.edgestate import readings_made
from tests.faults.lab import Lab
from tests.faults.plant import METERS
from tests.faults.powercut import PowerCut
from tests.faults.procs import PersistentMosquitto, shipped_broker_settings
from tests.faults.system import SiteSystem

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

S1 = "1 broker kill -9, ingest stopped and behind"
S2 = "2 ingest kill -9 x5, a shared worker dies"
S3 = "3 edge kill -9 in an outage, power cut"
S5 = "5 poison messages"


def sqlite_site(where: Path, broker: PersistentMosquitto, cleanups: list[object]) -> SiteSystem:
    return SiteSystem(where, "faults", seed=31, mqtt_url=broker.url,
                      store={"kind": "sqlite", "path": str(where / "store.sqlite")},
                      workers=("ingest-1", "ingest-2"), share_group="ingest")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = Lab(tmp_path_factory.mktemp("faults-sqlite"), sqlite_site)  # type: ignore[arg-type]
    try:
        yield lab
    finally:
        lab.close()


def _ingest_alive(system: SiteSystem) -> list[str]:
    return [w for w in system.workers if system.children[w].alive]


# --- scenario 1 ------------------------------------------------------------------------------------------------------
def test_broker_killed_and_restarted_while_ingest_is_stopped_and_behind(lab: Lab) -> None:
    with lab.scenario(S1) as rig:
        system = rig.system
        rig.tap.wait_for("readings flowing", 100)
        rig.window.mark()
        for worker in _ingest_alive(system):
            system.children[worker].pause()  # SIGSTOP: connected, reading nothing
        rig.tap.wait_for("the edge publishing while ingest is stopped (ingest falls behind)", 300)
        rig.broker.kill()  # SIGKILL: what the broker queued since its last autosave is gone
        rig.broker.start()
        rig.tap.wait_for("the edge publishing to the restarted broker", 100)
        for worker in system.workers:
            system.children[worker].resume()
        rig.tap.wait_for("readings after ingest resumed", 100)
        rig.check(S1)


# --- scenario 2 ------------------------------------------------------------------------------------------------------
def test_ingest_killed_five_times_and_one_shared_worker_for_good(lab: Lab) -> None:
    rng = random.Random(2)
    with lab.scenario(S2) as rig:
        system = rig.system
        assert len(system.workers) == 2 and system.share_group, "two workers sharing one subscription"
        for i in range(5):
            rig.tap.wait_for(f"readings before kill {i + 1}", rng.randint(20, 250))
            victim = rng.choice(system.workers)
            system.children[victim].kill()
            rig.tap.wait_for(f"readings while {victim} is down", rng.randint(0, 80))
            system.start(victim)
            rig.window.mark()
        dead = rng.choice(system.workers)
        system.children[dead].kill()  # for good: its share of the subscription stays with its session
        rig.tap.wait_for(f"readings with {dead} dead", 300)
        rig.check(S2)
        system.start(dead)  # the next scenarios run with both workers again


# --- scenario 3 ------------------------------------------------------------------------------------------------------
def test_edge_killed_in_a_broker_outage_and_a_power_cut(lab: Lab, shim: Path, tmp_path: Path) -> None:
    """The edge is killed -9 twice while the broker is away (its spool is the only copy), then loses power while
    readings flow: a power cut takes what was written but not fsynced (tests/faults/powercut.py). A reading the
    edge published must never be taken back by the cut, else its energy is read again from an older baseline."""
    with lab.scenario(S3) as rig:
        system = rig.system
        cut = PowerCut(shim, system.state_dir, tmp_path / "fsync.log")

        def start_edge_under_the_shim() -> None:
            cut.arm()
            system.start("edge", cut.env())

        system.children["edge"].stop()
        start_edge_under_the_shim()
        rig.tap.wait_for("the edge publishing (under the power-cut shim)", 100)
        rig.broker.stop()  # the outage
        for i in (1, 2):
            base = readings_made(system)
            wait_until(f"readings spooled in the outage ({i})", lambda b=base: readings_made(system) >= b + 150,
                       120, 0.2)
            system.children["edge"].kill()
            start_edge_under_the_shim()
        rig.broker.start()
        rig.tap.wait_for("readings after the outage", 300)
        rig.window.mark()
        # the power goes while readings flow: once the edge has left 200 writes unsynced (then the cut takes
        # something it published), or after 300 more readings if it never does
        base = readings_made(system)
        wait_until("a moment for the power cut", lambda: cut.unsynced_writes() >= 200
                   or readings_made(system) >= base + 300, 120, 0.2)
        system.children["edge"].kill()
        print(f"power cut: files as of their last fsync (size before, after, writes undone): {cut.cut()}")
        system.start("edge")
        rig.tap.wait_for("readings after the power cut", 300)
        rig.check(S3)


# --- scenario 5 ------------------------------------------------------------------------------------------------------
def _dead_letters(system: SiteSystem) -> list[tuple[str, bytes, str]]:
    reader = open_reader({**system.data, "store": system.store}, system.workdir)
    try:
        return [(d.topic, bytes(d.payload), d.reason) for d in reader.dead_letters(system.site, 1_000_000)]
    finally:
        reader.close()


PREFIX = 64  # a dead letter matches a poison message by topic and the payload's first bytes


def _unmatched(sent: list[poison.Poison], letters: list[tuple[str, bytes, str]]) -> list[poison.Poison]:
    """Poison messages without a dead letter (with a reason) of their own; counts repeated ones."""
    have = Counter((topic, payload[:PREFIX]) for topic, payload, reason in letters if reason.strip())
    missing = []
    for p in sent:
        key = (p.topic, p.payload[:PREFIX])
        if have[key] > 0:
            have[key] -= 1
        else:
            missing.append(p)
    return missing


def test_poison_messages_are_dead_lettered_and_ingest_never_restarts(lab: Lab) -> None:
    with lab.scenario(S5) as rig:
        system = rig.system
        workers = {w: system.children[w].pid for w in _ingest_alive(system)}
        assert workers, "no ingest worker running"
        meters = [(mid, area) for mid, area, *_ in METERS]
        sent = poison.messages(system.site, meters, seed=5)
        packet_cap = int(shipped_broker_settings()["max_packet_size"])
        assert max(len(p.payload) for p in sent) < packet_cap - 1024, "the broker would refuse the poison itself"
        rng = random.Random(5)
        host, port = rig.broker.host, rig.broker.port
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="fault-poisoner")
        client.connect(host, port)
        client.loop_start()
        try:
            for i, p in enumerate(sent):  # mixed into the edge's good traffic
                rig.tap.wait_for("good readings between poison", rng.randint(0, 6))
                if i % 20 == 10:
                    rig.window.mark()
                client.publish(p.topic, p.payload, qos=1).wait_for_publish(60)
        finally:
            client.disconnect()
            client.loop_stop()
        try:
            wait_until("every poison message in the dead-letter table",
                       lambda: not _unmatched(sent, _dead_letters(system)), 120, 1.0)
        except AssertionError:
            missing = _unmatched(sent, _dead_letters(system))
            raise AssertionError(f"{len(missing)} of {len(sent)} poison messages not dead-lettered with a reason: "
                                 + "; ".join(f"{p.kind} on {p.topic} ({len(p.payload)} bytes)"
                                             for p in missing[:15])) from None
        rig.check(S5)
        restarted = {w: pid for w, pid in workers.items() if not system.children[w].alive
                     or system.children[w].pid != pid}
        assert not restarted, f"ingest workers died or restarted during the poison: {restarted}"
