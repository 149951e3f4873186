"""`carbonwatch production import FILE.csv` as a real process against the API served by uvicorn (and a real
broker): a file with a bad row is refused whole, each bad row named by its line; --take-good-rows stores the
good ones, under the key's name in the audit log; a missing key is refused before anything is sent."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from api.settings import MqttSection
from tests.api.baseline_data import T0, BaselineEnv
from tests.api.conftest import Server

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DAY = T0 + timedelta(days=3)


def run(*args: str, key: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CARBONWATCH_API_KEY"}
    env["PYTHONPATH"] = str(REPO)
    if key is not None:
        env["CARBONWATCH_API_KEY"] = key
    return subprocess.run([sys.executable, "-m", "deploy.cli", "production", "import", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_import_refuses_a_file_with_a_bad_row_and_takes_good_rows_when_asked(tmp_path: Path, mqtt_url: str) -> None:
    env = BaselineEnv(tmp_path)
    env.clock.now = datetime(2026, 4, 1, tzinfo=UTC)
    csv = tmp_path / "shifts.csv"
    csv.write_text("variable,start,end,value,unit,note\n"
                   f"out-1,{DAY.isoformat()},{(DAY + timedelta(hours=8)).isoformat()},4200,piece,early\n"
                   f"out-1,{(DAY + timedelta(hours=8)).isoformat()},"
                   f"{(DAY + timedelta(hours=16, minutes=5)).isoformat()},3900,piece,late\n"
                   f"temp,{DAY.isoformat()},{(DAY + timedelta(days=1)).isoformat()},39.2,degF,mean of the day\n")
    with Server(env.app(MqttSection(url=mqtt_url))) as srv:
        url = ["--api-url", srv.url]
        refused = run(str(csv), *url, key=env.keys["engineer"])
        assert refused.returncode == 1, refused.stderr
        assert f"{csv}:3: end: " in refused.stderr and "not on a quarter hour" in refused.stderr
        assert "nothing stored" in refused.stderr
        listed = httpx.get(f"{srv.url}/v1/variables/out-1/entries", headers=env.h("viewer"))
        assert listed.json() == []
        viewer = run(str(csv), *url, "--take-good-rows", key=env.keys["viewer"])
        assert viewer.returncode == 1 and "needs role engineer" in viewer.stderr
        assert run(str(csv), *url, key=None).returncode == 1
        taken = run(str(csv), *url, "--take-good-rows", key=env.keys["engineer"])
        assert taken.returncode == 0, taken.stderr
        assert "2 entries stored" in taken.stdout and f"{csv}:3:" in taken.stderr
        temp = httpx.get(f"{srv.url}/v1/variables/temp/entries", headers=env.h("viewer")).json()
        assert [(e["amount"], e["amount_unit"], e["created_by"]) for e in temp] == [(pytest.approx(4.0), "degC",
                                                                                      "engineer")]
        audit = httpx.get(f"{srv.url}/v1/audit", params={"entity": "variable_entry"}, headers=env.h("admin"))
        assert [(r["action"], r["actor"]) for r in audit.json()["rows"]] == [("add", "engineer")] * 2
