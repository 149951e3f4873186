"""Fault scenario 6: two sites with the same meter ids (the suite's 21 meters each, other load profiles) in one
store, SQLite and InfluxDB at once: per site an edge, a simulator and two ingest workers (one per store, each
with that site's plant file); every site exact in every store, read from the store's own totals.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.faults import report
from tests.faults.procs import PersistentMosquitto
from tests.faults.system import SiteSystem, StoreCounts, Tap, Window, assert_exact

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

S6 = {"sqlite": "6 two sites, same meter ids: SQLite", "influx": "6 two sites, same meter ids: InfluxDB"}
SITES = (("site-a", 61), ("site-b", 62))


def test_two_sites_with_the_same_meter_ids_in_one_store(tmp_path: Path, influx_url: str) -> None:
    stores: dict[str, dict[str, Any]] = {
        "sqlite": {"kind": "sqlite", "path": str(tmp_path / "store.sqlite")},
        "influx": {"kind": "influxdb", "url": influx_url, "database": f"faults_{uuid.uuid4().hex[:8]}"}}
    broker = PersistentMosquitto(tmp_path / "mosquitto")
    broker.start()
    sites = [SiteSystem(tmp_path / site, site, seed, broker.url, store=stores["sqlite"],
                        workers=("ingest-sqlite", "ingest-influx"), worker_stores={"ingest-influx": stores["influx"]},
                        with_api=False) for site, seed in SITES]
    counts: list[StoreCounts] = []
    tap = Tap(broker.url, "carbonwatch/v1/+/+/+/reading")
    try:
        for system in sites:
            system.start_all()
        windows: dict[tuple[str, str], Window] = {}
        for system in sites:
            for kind, store in stores.items():
                counts.append(StoreCounts(system.data, store, system.workdir))
                windows[(system.site, kind)] = Window(system, counts[-1])
        for window in windows.values():
            window.baseline()
        for system in sites:
            system.resume()
        for _ in range(3):  # split the windows mid-minute while energy flows
            tap.wait_for("readings of both sites", 500)
            for window in windows.values():
                window.mark()
        tap.wait_for("readings of both sites", 500)
        failures = []
        for kind, label in S6.items():
            checks = [replace(c, meter=f"{system.site}/{c.meter}") for system in sites
                      for c in windows[(system.site, kind)].settle(label)]
            report.record(label, checks)
            try:
                assert_exact(label, checks)
            except AssertionError as exc:
                failures.append(str(exc))
        assert not failures, "\n".join(failures)
    except BaseException as exc:
        for label in S6.values():
            if not any(row.scenario == label and row.checks for row in report.ROWS):  # else its row says it all
                report.record(label, error=f"{type(exc).__name__}: {exc}")
        print(f"--- mosquitto log (tail) ---\n{broker.log()}")
        for system in sites:
            print(system.logs())
        raise
    finally:
        tap.close()
        for reader in counts:
            reader.close()
        for system in sites:
            system.stop_all()
        broker.stop()
