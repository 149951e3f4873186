"""Fault scenario 7: the edge's spool full during a long broker outage (`[edge] spool_max_messages = 300`, an
outage of twice that many readings), on a system of its own (SQLite store, one ingest worker) whose edge has had
the small spool from its start; after recovery every meter exact, and the edge's status tells of a compaction.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.deploy.harness import wait_until
from tests.faults.edgestate import readings_since, spooled
from tests.faults.lab import Lab
from tests.faults.plant import INTERVAL_S, METERS
from tests.faults.procs import PersistentMosquitto
from tests.faults.system import SiteSystem, Tap

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

S7 = "7 spool full in a long outage"
# The plant makes 42 readings a second and ingest acknowledges once a second, so some 40-100 published messages
# wait for their ack at any time (they may not be merged): the rest is room for what the outage leaves unpublished.
SPOOL_MAX = 300


def small_spool_site(where: Path, broker: PersistentMosquitto, cleanups: list[Callable[[], None]]) -> SiteSystem:
    return SiteSystem(where, "faults-spool", seed=71, mqtt_url=broker.url,
                      store={"kind": "sqlite", "path": str(where / "store.sqlite")},
                      edge_extra={"spool_max_messages": SPOOL_MAX})


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = Lab(tmp_path_factory.mktemp("faults-spool"), small_spool_site)
    try:
        yield lab
    finally:
        lab.close()


def test_spool_full_in_a_long_outage(lab: Lab) -> None:
    with lab.scenario(S7) as rig:
        system = rig.system
        status = Tap(rig.broker.url, f"carbonwatch/v1/{system.site}/edge/+/status")
        try:
            rig.tap.wait_for("readings flowing", 100)
            rig.window.mark()
            rig.broker.stop()
            outage = datetime.now(UTC)
            wait_until("the spool full", lambda: spooled(system) >= SPOOL_MAX, 120, 0.2)
            long_s = 2 * SPOOL_MAX / len(METERS) * INTERVAL_S  # two spools' worth of readings
            wait_until(f"{long_s:.0f} s of readings kept in the outage", lambda: readings_since(system, outage)
                       >= long_s, 180, 0.2)
            rig.broker.start()
            rig.tap.wait_for("readings after the outage", 300)
            rig.check(S7)

            def compactions() -> int:
                return max((int(json.loads(p).get("compactions") or 0) for p in status.last.values()), default=0)

            wait_until("the edge's status telling of a compaction", compactions, 60, 0.2)
        finally:
            status.close()
