"""The example plant runs as written (ports moved to free ones), and ground truth per interval adds up."""

from __future__ import annotations

import itertools
import json
import tomllib
from pathlib import Path

import httpx
import pytest

from deploy.services import free_port
from simulators.config import parse_config
from simulators.plant import SimulatedPlant
from tests.simulators.conftest import eventually, plant_config, pm5000_meter

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "simulators" / "examples" / "demo-plant-full.toml"


async def test_example_plant_uses_every_map_and_runs(tmp_path: Path) -> None:
    data = tomllib.loads(EXAMPLE.read_text())
    config = parse_config(data, str(EXAMPLE))
    assert {m.map for m in config.meters} == {"schneider_pm5000", "eastron_sdm630", "adam6051_counter",
                                             "opcua_gas", "opcua_steam"}
    assert len({m.area for m in config.meters if m.map.startswith("opcua")}) >= 2
    for gw in data["gateways"]:
        gw["port"] = free_port()
        if gw["kind"] == "opcua":
            gw["cert_dir"] = str(tmp_path / "certs")
    data["simulator"]["control_url"] = f"http://127.0.0.1:{free_port()}"
    async with SimulatedPlant(parse_config(data, str(EXAMPLE))) as plant, \
            httpx.AsyncClient(base_url=plant.control_url, timeout=5) as http:
        truth = (await http.get("/truth")).json()
        assert set(truth["meters"]) == {m.id for m in config.meters}
        gas = truth["meters"]["oven-gas"]["counters"]["pulse_count"]
        assert gas["unit"] == "count" and gas["scale"] == {"value": 0.01, "unit": "m**3"}
        assert truth["meters"]["paint-steam"]["counters"]["mass"]["unit"] == "kg"
        assert truth["meters"]["paint-oven"]["counters"]["active_energy_import"]["unit"] == "kWh"


async def test_truth_per_interval_sums_to_what_the_counter_advanced(tmp_path: Path) -> None:
    truth_file = tmp_path / "truth.jsonl"
    config = plant_config([pm5000_meter("m1", 1), pm5000_meter("m2", 2, profile="shift")], acceleration=36_000.0,
                          truth_interval_s=900, truth_file=str(truth_file), step_s=5)
    async with SimulatedPlant(config) as plant, httpx.AsyncClient(base_url=plant.control_url, timeout=5) as http:
        async def enough() -> list[dict[str, object]] | None:
            got = (await http.get("/truth/intervals", params={"meter": "m1"})).json()["intervals"]
            return got if len(got) >= 6 else None

        await eventually(enough, what="six closed 15-minute intervals")
        truth = plant.pause()
        intervals = (await http.get("/truth/intervals", params={"meter": "m1"})).json()["intervals"]
    for earlier, later in itertools.pairwise(intervals):
        assert earlier["end"] == later["start"]  # contiguous, nothing between them
    first_full = intervals[1]
    assert first_full["start"].endswith((":00:00+00:00", ":15:00+00:00", ":30:00+00:00", ":45:00+00:00"))
    produced = truth["meters"]["m1"]["counters"]["active_energy_import"]["produced"]
    closed = sum(int(i["produced_counts"]) for i in intervals)
    # the closed intervals hold all but the open one, which is at most 15 min at 200 kW = 50 kWh
    assert 0 <= produced - closed <= 50_000
    written = [json.loads(line) for line in truth_file.read_text().splitlines()]
    assert [w for w in written if w["meter"] == "m1"] == intervals
