"""A simulated PV generation meter and a grid meter with it behind: over a whole simulated day the PV generates the
clear-sky curve's integral (a hand computation), the grid meter imports max(0, load − generation) and exports
max(0, generation − load) step by step, and a real Modbus client reads the export register as the truth says."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from pymodbus.client import AsyncModbusTcpClient

from calc.devices.eastron_sdm630 import MAP as SDM630
from calc.devices.eastron_sdm630_pv import MAP as PV
from calc.registers import decode
from simulators.config import ConfigError, ModbusTcpGateway
from simulators.plant import SimulatedPlant
from tests.simulators.conftest import eventually, meter, plant_config

PEAK_KW, BASE_KW, LOAD_PEAK_KW = 80.0, 30.0, 50.0
MIDNIGHT = "2026-03-01T16:00:00Z"   # 00:00 in Asia/Shanghai, the test plant's time zone


def solar_pair(**pv_sim: Any) -> list[dict[str, Any]]:
    pv = meter("roof-pv", 1, "eastron_sdm630_pv", sim={"profile": "solar", "base_kw": 0.0, "peak_kw": PEAK_KW,
                                                       "noise": 0.0, **pv_sim})
    grid = meter("incomer", 2, "eastron_sdm630", sim={"base_kw": BASE_KW, "peak_kw": LOAD_PEAK_KW, "noise": 0.0,
                                                      "generation": "roof-pv"})
    return [pv, grid]


class Hands:
    """A clock the test turns by hand (real seconds)."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_a_day_of_solar_generation_import_and_export() -> None:
    hands = Hands()
    plant = SimulatedPlant(plant_config(solar_pair(), acceleration=1.0, start=MIDNIGHT), serve_control=False,
                           monotonic=hands)
    hands.t = 86_400.0
    plant.advance()
    pv, grid = plant.meters["roof-pv"], plant.meters["incomer"]
    # by hand, 1-s steps in local hours: PV = peak × sin(π (h − 6) / 12)^1.5 in daylight; load = the continuous
    # profile base + span × (0.5 + 0.5 sin(2π (h − 9) / 24)); both in kW, integrated to Wh
    h = np.arange(86_400) / 3600.0
    gen = PEAK_KW * np.where((h > 6) & (h < 18), np.abs(np.sin(np.pi * (h - 6) / 12)) ** 1.5, 0.0)
    load = BASE_KW + (LOAD_PEAK_KW - BASE_KW) * (0.5 + 0.5 * np.sin(2 * np.pi * (h - 9) / 24))
    gen_wh = float(gen.sum()) * 1000 / 3600
    # the closed form of the curve: peak × 12 h × (1/π) ∫0^π sin^1.5 = peak × 12 × Γ(5/4) √π / (Γ(7/4) π) kWh
    closed_wh = PEAK_KW * 12 * math.gamma(1.25) * math.sqrt(math.pi) / (math.gamma(1.75) * math.pi) * 1000
    assert gen_wh == pytest.approx(closed_wh, rel=1e-6)
    assert pv.produced == pytest.approx(gen_wh, abs=2.0)      # counts are Wh; each step's rate rounds to mWh/h
    imported = float(np.maximum(load - gen, 0).sum()) * 1000 / 3600
    exported = float(np.maximum(gen - load, 0).sum()) * 1000 / 3600
    assert exported > 50_000       # a sunny noon sends tens of kWh out
    assert grid.produced == pytest.approx(imported, abs=2.0)
    assert grid.exported == pytest.approx(exported, abs=2.0)
    # import − export is the load less the generation: nothing is lost between the two counters
    assert grid.produced - grid.exported == pytest.approx((load.sum() - gen.sum()) * 1000 / 3600, abs=4.0)
    truth = plant.truth()["meters"]
    assert truth["incomer"]["counters"]["active_energy_export"]["produced_counts"] == grid.exported
    assert truth["roof-pv"]["counters"]["active_energy_generation"]["produced_counts"] == pv.produced


def test_the_same_seed_and_clock_give_the_same_day_and_the_night_is_dark() -> None:
    runs = []
    for _ in range(2):
        hands = Hands()
        plant = SimulatedPlant(plant_config(solar_pair(noise=0.05), acceleration=1.0, start=MIDNIGHT, seed=3),
                               serve_control=False, monotonic=hands)
        hands.t = 5.5 * 3600      # 05:30 local: before sunrise
        plant.advance()
        assert plant.meters["roof-pv"].produced == 0 and plant.meters["incomer"].exported == 0
        hands.t = 86_400.0
        plant.advance()
        runs.append((plant.meters["roof-pv"].produced, plant.meters["incomer"].exported))
    assert runs[0] == runs[1] and runs[0][0] > 0


def test_generation_must_name_an_earlier_solar_meter() -> None:
    pv, grid = solar_pair()
    with pytest.raises(ConfigError, match=r"sim\.generation"):
        plant_config([grid, pv])
    with pytest.raises(ConfigError, match=r"sim\.generation"):
        plant_config([{**pv, "sim": {**pv["sim"], "profile": "continuous"}}, grid])


@pytest.mark.integration
async def test_registers_show_generation_and_export() -> None:
    config = plant_config(solar_pair(), acceleration=3600.0)   # starts at 13:50 local: the sun is up
    async with SimulatedPlant(config, serve_control=False) as plant:
        gw = plant.config.gateways[0]
        assert isinstance(gw, ModbusTcpGateway)
        client = AsyncModbusTcpClient("127.0.0.1", port=gw.port, timeout=3)
        await client.connect()
        try:
            async def exported() -> bool | None:
                return True if plant.truth()["meters"]["incomer"]["counters"]["active_energy_export"]["counts"] \
                    else None

            await eventually(exported, what="some export")
            truth = plant.pause()["meters"]
            for unit_id, device, quantity, meter_id in ((1, PV, "active_energy_generation", "roof-pv"),
                                                        (2, SDM630, "active_energy_export", "incomer"),
                                                        (2, SDM630, "active_energy_import", "incomer")):
                point = device.point(quantity)
                got = await client.read_input_registers(point.address, count=point.registers, device_id=unit_id)
                assert not got.isError(), got
                want = truth[meter_id]["counters"][quantity]["value"]
                assert float(decode(point, got.registers)) == pytest.approx(want, rel=1e-6)   # float32 kWh
        finally:
            client.close()
