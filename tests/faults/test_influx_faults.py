"""Fault scenario 4 on the InfluxDB store: influxd stopped, hung (SIGSTOP) and answering 503 (a real HTTP proxy
in front of it, switched to failing), then back; per meter the balance equals the simulator's truth.

Ingest writes through the proxy (with a 2 s timeout, so a hung server is a failed write, not a stuck worker); the
API reads influxd directly. The rest of the plant is the SQLite scenarios' (tests/faults/plant.py).
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from deploy.services import InfluxDB
from tests.deploy.harness import wait_until
from tests.faults.lab import Lab
from tests.faults.procs import InfluxProxy, PersistentMosquitto
from tests.faults.system import SiteSystem

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

S4 = "4 InfluxDB stopped, hung, 503, back"


def influx_site(where: Path, broker: PersistentMosquitto, cleanups: list[Callable[[], None]]) -> SiteSystem:
    influx = InfluxDB(where / "influxdb")
    influx.start()

    def stop_influx() -> None:
        if influx.proc is not None and influx.proc.poll() is None:
            influx.proc.send_signal(signal.SIGCONT)
        influx.stop()

    cleanups.append(stop_influx)
    proxy = InfluxProxy(influx.url)
    proxy.start()
    cleanups.append(proxy.stop)
    store = {"kind": "influxdb", "url": proxy.url, "database": "faults", "timeout_s": 2.0}
    system = SiteSystem(where, "faults-influx", seed=41, mqtt_url=broker.url, store=store,
                        api_store={**store, "url": influx.url})
    system.attached.update(influx=influx, proxy=proxy)
    return system


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = Lab(tmp_path_factory.mktemp("faults-influx"), influx_site)
    try:
        yield lab
    finally:
        lab.close()


def test_influxdb_stopped_hung_and_failing_then_back(lab: Lab) -> None:
    with lab.scenario(S4) as rig:
        system = rig.system
        influx: InfluxDB = system.attached["influx"]
        proxy: InfluxProxy = system.attached["proxy"]

        def store_errors() -> int:
            return sum(int(system.metrics(w).get("store_errors", 0)) for w in system.workers)

        def until_ingest_fails(what: str) -> None:
            base = store_errors()
            wait_until(f"ingest failing to write: {what}", lambda: store_errors() >= base + 2, 120, 0.2)
            rig.tap.wait_for(f"readings while InfluxDB is {what}", 100)

        rig.tap.wait_for("readings flowing", 100)
        influx.stop()
        until_ingest_fails("stopped")
        influx.start()
        rig.tap.wait_for("readings after InfluxDB restarted", 100)
        rig.window.mark()

        assert influx.proc is not None
        influx.proc.send_signal(signal.SIGSTOP)
        try:
            until_ingest_fails("hung (SIGSTOP)")
        finally:
            influx.proc.send_signal(signal.SIGCONT)
        rig.tap.wait_for("readings after InfluxDB resumed", 100)
        rig.window.mark()

        proxy.failing = True
        try:
            base = proxy.seen("503")
            wait_until("503 answers to ingest", lambda: proxy.seen("503") >= base + 2, 120, 0.2)
            until_ingest_fails("answering 503")
        finally:
            proxy.failing = False
        rig.tap.wait_for("readings after InfluxDB answers again", 100)
        rig.check(S4)
