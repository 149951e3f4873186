"""Activity entries end to end with real parts: readings over a real Mosquitto into a real `carbonwatch ingest` and
SQLite store, `carbonwatch api` as a process, and `carbonwatch activity import` posting a CSV with an engineer's
key. The month's balance (local month, Asia/Shanghai) changes by the hand-computed amounts; a bad row is refused
with its line; a refrigerant top-up counts by the GWP of the set in force (AR5, then AR6 after a restart); a
monthly bill for the main meter is reconciled, not added; a void takes an entry out; the audit chain verifies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.auth import write_key
from calc import topics
from deploy.services import free_port, wait_for_port
from tests.ingest.helpers import IngestProcess, Publisher, counter_sample, message, wait_for

pytestmark = pytest.mark.integration

SITE = "act"
LOCAL_NOV = datetime(2026, 10, 31, 16, tzinfo=UTC)   # 2026-11-01 00:00 in Asia/Shanghai
HOURS = 30 * 24
KWH_PER_H = 10.0
NOVEMBER = {"from": "2026-11-01T00:00:00+08:00", "to": "2026-12-01T00:00:00+08:00"}
DIESEL_KG_PER_T = 42.652 * 20.2 * 0.98 * 44 / 12   # GB/T 32150 defaults: NCV x CC x OF x 44/12, kg CO2 per t
CSV = ("kind,start,quantity,unit,carrier,density,area,evidence\n"
       "fuel,2026-11-03,1500,L,diesel,0.84 kg/L,plant,delivery note DN-101\n"
       "fuel,2026-11-17,2.5,t,diesel,,plant,delivery note DN-102\n"
       "fuel,2026-11-24,800,L,diesel,,plant,delivery note DN-103\n")   # line 4: litres without a density


def plant_toml(tmp: Path, mqtt_url: str, api_port: int, gwp: str | None) -> str:
    factors = f'[factors]\ngwp = "{gwp}"\n' if gwp else ""
    return f"""
[site]
id = "{SITE}"
region = "CN"
timezone = "Asia/Shanghai"
start = 2026-01-01T00:00:00Z

[[meters]]
id = "main"
area = "plant"
carrier = "electricity"
max_power_kw = 5000.0

[mqtt]
url = "{mqtt_url}"

[store]
kind = "sqlite"
path = "{tmp / 'store.sqlite'}"

[ingest]
client_id = "activity-e2e-{uuid.uuid4().hex[:12]}"
metrics_path = "{tmp / 'ingest-metrics.json'}"

[api]
host = "127.0.0.1"
port = {api_port}
keys_file = "{tmp / 'keys.toml'}"
db_path = "{tmp / 'api.sqlite'}"
{factors}"""


class Api:
    """`carbonwatch api` as a child process on a free port."""

    def __init__(self, tmp: Path, plant: Path, port: int) -> None:
        self.tmp, self.plant, self.port = tmp, plant, port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.tmp / "api.log").open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "deploy.cli", "api", "--config", str(self.plant)],
                                     cwd=self.tmp, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=dict(os.environ))
        log.close()
        wait_for_port("127.0.0.1", self.port, 60, self.proc)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


@pytest.fixture
def rig(tmp_path: Path, mqtt_url: str) -> Iterator[dict[str, Any]]:
    port = free_port()
    plant = tmp_path / "plant.toml"
    plant.write_text(plant_toml(tmp_path, mqtt_url, port, None))
    keys = {role: write_key(tmp_path / "keys.toml", name, role, (SITE,))
            for name, role in (("eng", "engineer"), ("view", "viewer"))}
    ingest = IngestProcess(plant, tmp_path / "ingest-metrics.json", tmp_path)
    api = Api(tmp_path, plant, port)
    try:
        ingest.start()
        api.start()
        yield {"tmp": tmp_path, "plant": plant, "api": api, "keys": keys, "mqtt_url": mqtt_url,
               "url": f"http://127.0.0.1:{port}"}
    finally:
        api.stop()
        if ingest.proc is not None and ingest.proc.poll() is None:
            ingest.stop()


def _publish_november(mqtt_url: str) -> None:
    """The main meter's counter, one reading an hour over the local month, 24 readings a message."""
    items, counter = [], 5000.0
    for day in range(30):
        samples = []
        for h in range(24):
            counter += KWH_PER_H
            ts = LOCAL_NOV + timedelta(hours=day * 24 + h)  # in the local month, its last at 23:00
            samples.append(counter_sample(ts, KWH_PER_H, counter, interval_s=3600.0))
        items.append((topics.reading(SITE, "plant", "main"), message("main", day, samples)))
    pub = Publisher(mqtt_url)
    try:
        pub.publish(items)
    finally:
        pub.close()


def _cli(rig: dict[str, Any], csv: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "deploy.cli", "activity", "import", str(csv), "--api-url",
                           rig["url"], "--key", rig["keys"]["engineer"], *extra],
                          capture_output=True, text=True, timeout=120, cwd=rig["tmp"])


def test_activity_entries_with_real_services(rig: dict[str, Any]) -> None:
    view = httpx.Client(base_url=rig["url"], headers={"Authorization": f"Bearer {rig['keys']['viewer']}"},
                        timeout=30)
    eng = {"Authorization": f"Bearer {rig['keys']['engineer']}"}

    def balance() -> dict[str, Any]:
        resp = view.get("/v1/balance", params=NOVEMBER)
        resp.raise_for_status()
        body: dict[str, Any] = resp.json()
        return body

    try:
        _publish_november(rig["mqtt_url"])
        metered = wait_for(lambda: next((b for b in [balance()] if any(
            m["meter"] == "main" and m["energy"] == pytest.approx(HOURS * KWH_PER_H) for m in b["meters"])), None),
            120, "the month's readings in the store")
        base = metered["co2e_kg"]
        assert metered["manual_co2e_kg"] == 0.0

        # a CSV with a bad row: refused with its line, nothing stored
        csv = rig["tmp"] / "deliveries.csv"
        csv.write_text(CSV)
        refused = _cli(rig, csv)
        assert refused.returncode == 1, refused.stderr
        assert "line 4: diesel metered by volume (L) needs a density" in refused.stderr
        assert view.get("/v1/activity").json() == []
        assert balance()["co2e_kg"] == base
        # the good rows taken: the month grows by the hand-computed amount
        taken = _cli(rig, csv, "--take-good-rows")
        assert taken.returncode == 0, taken.stderr
        assert "line 4" in taken.stderr and "stored 2 of 3 rows" in taken.stdout
        diesel_kg = (1500 * 0.84 / 1000 + 2.5) * DIESEL_KG_PER_T
        after_csv = balance()
        assert after_csv["co2e_kg"] == pytest.approx(base + diesel_kg, rel=1e-9)
        assert after_csv["manual_share"] == pytest.approx(diesel_kg / (base + diesel_kg), rel=1e-9)
        assert {m["meter"]: m["source"] for m in after_csv["meters"]} == {"main": "meter",
                                                                         "manual:diesel": "manual"}

        # a refrigerant top-up counts by the set's GWP: AR5 (HFC-134a 1300) ...
        top_up = {"kind": "refrigerant", "start": "2026-11-10", "quantity": 10, "unit": "kg", "gas": "HFC-134a",
                  "area": "plant", "evidence": "chiller service report CS-7"}
        ar5 = httpx.post(f"{rig['url']}/v1/activity", json=top_up, headers=eng, timeout=30)
        assert ar5.status_code == 201, ar5.text
        assert ar5.json()["result"]["co2e_kg"] == pytest.approx(10 * 1300)
        assert balance()["co2e_kg"] == pytest.approx(base + diesel_kg + 13_000, rel=1e-9)
        # ... and after the plant file says AR6 (1530), a new top-up by AR6; the first keeps its own figure
        rig["api"].stop()
        rig["plant"].write_text(plant_toml(rig["tmp"], rig["mqtt_url"], rig["api"].port, "AR6"))
        rig["api"].start()
        ar6 = httpx.post(f"{rig['url']}/v1/activity", json=top_up, headers=eng, timeout=30)
        assert ar6.status_code == 201, ar6.text
        assert ar6.json()["result"]["co2e_kg"] == pytest.approx(10 * 1530)
        assert ar6.json()["result"]["factor_id"] == "gwp_ar6_hfc_134a"
        with_both = balance()
        assert with_both["co2e_kg"] == pytest.approx(base + diesel_kg + 13_000 + 15_300, rel=1e-9)

        # a monthly bill for the main meter: reconciled against it, never added
        bill = {"kind": "bill", "start": "2026-11-01", "end": "2026-11-30", "quantity": 7300, "unit": "kWh",
                "carrier": "electricity", "meters": ["main"], "evidence": "utility invoice 2026-11"}
        billed = httpx.post(f"{rig['url']}/v1/activity", json=bill, headers=eng, timeout=30)
        assert billed.status_code == 201, billed.text
        rec = billed.json()["reconciliation"]
        assert (rec["billed"], rec["metered"], rec["difference"]) == pytest.approx((7300, 7200, 100))
        with_bill = balance()
        assert with_bill["co2e_kg"] == pytest.approx(with_both["co2e_kg"], rel=1e-12)
        assert [r["difference"] for r in with_bill["reconciliations"]] == pytest.approx([100.0])

        # a void takes an entry out
        voided = httpx.post(f"{rig['url']}/v1/activity/{ar6.json()['id']}/void", json={"reason": "double entry"},
                            headers=eng, timeout=30)
        assert voided.status_code == 200 and voided.json()["voided"]
        assert balance()["co2e_kg"] == pytest.approx(base + diesel_kg + 13_000, rel=1e-9)

        # the audit chain verifies, and names the key that acted
        assert view.get("/v1/audit/verify").json()["ok"] is True
        rows = view.get("/v1/audit", params={"entity": "activity"}).json()["rows"]
        assert [(r["action"], r["actor"]) for r in rows] == [("create", "eng")] * 5 + [("void", "eng")]
    finally:
        view.close()
