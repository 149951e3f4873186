"""SCADA's kgce and intensity figures (and their registers) equal the API's /v1/balance on the same store, and the
hand computation from the GB/T 2589 coefficients, for every carrier (data of tests/api/test_reports_kgce_intensity,
written through ingest's converter into a real SQLite store)."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from fastapi.testclient import TestClient

from calc.factors import default_factor_set
from calc.plant import parse_plant
from calc.plant_coal import plant_coal_book
from calc.rate import factor_bases
from calc.table import FactorTable
from scada.figures import collect, compute
from scada.ledger import ApiRecords
from scada.registers import BLOCK, block_address, render, words_to_float
from tests.api.conftest import Env, env
from tests.api.test_reports_kgce_intensity import METERS, PRODUCED, app, env2, kgce_per_unit, plant

__all__ = ["env", "env2"]   # fixtures


def f32(x: float) -> float:
    return float(struct.unpack(">f", struct.pack(">f", x))[0])


def test_scada_kgce_and_intensity_equal_the_api_and_the_hand_computation(env2: Env) -> None:
    data = plant()
    p = parse_plant(data)
    with TestClient(app(env2)) as c:      # also creates the API database SCADA reads
        h = env2.h("viewer")
        site = c.get("/v1/balance", params={"period": "today"}, headers=h).json()
        month = c.get("/v1/balance", params={"period": "month"}, headers=h).json()
        areas = {a: c.get("/v1/balance", params={"period": "today", "area": a}, headers=h).json() for a in "ab"}
    now = env2.clock.now
    book = plant_coal_book(default_factor_set(), p, data, now.date())
    table = FactorTable.build(book.plant_factors, p)
    inputs = collect(p, env2.store, ApiRecords(env2.tmp / "api.sqlite"), now, {}, book,
                     factor_bases(table, now.timestamp()))
    snap = compute(p, inputs, stale_after_s=60.0)
    figs: dict[str, Any] = {k: {n: f.value for n, f in v.figures.items()} for k, v in snap.items.items()}

    hand_total = sum(2 * METERS[m][5] * kgce_per_unit(m) for m in METERS)
    assert figs["site:s1"]["TodayKgce"] == pytest.approx(site["energy_kgce"]) == pytest.approx(hand_total, rel=1e-4)
    assert figs["site:s1"]["MonthKgce"] == pytest.approx(month["energy_kgce"])
    for area, bal in areas.items():
        assert figs[f"area:{area}"]["TodayKgce"] == pytest.approx(bal["energy_kgce"])
    for m in METERS:
        row = next(r for r in site["meters"] if r["meter"] == m)
        assert figs[f"meter:{m}"]["TodayKgce"] == pytest.approx(row["energy_kgce"])
        assert figs[f"meter:{m}"]["TodayKgce"] == pytest.approx(2 * METERS[m][5] * kgce_per_unit(m), rel=1e-4)
        assert figs[f"meter:{m}"]["TodayIntensity"] is None     # a meter makes no product

    made = sum(PRODUCED)
    per = {(i["level"], i["name"]): i for i in site["intensity"]}
    assert figs["site:s1"]["TodayIntensity"] == pytest.approx(per[("site", "s1")]["co2e_kg_per_unit"])
    assert figs["site:s1"]["TodayIntensity"] == pytest.approx(site["co2e_kg"] / made)
    assert figs["site:s1"]["TodayKgceIntensity"] == pytest.approx(hand_total / made, rel=1e-4)
    area_a = next(i for i in areas["a"]["intensity"] if i["level"] == "area")
    assert figs["area:a"]["TodayIntensity"] == pytest.approx(area_a["co2e_kg_per_unit"])
    assert figs["area:a"]["TodayKgceIntensity"] == pytest.approx(area_a["kgce_per_unit"])
    assert figs["area:b"]["TodayIntensity"] is None and areas["b"]["intensity"] == []   # no production in b
    assert snap.items["area:b"].figures["TodayIntensity"].quality.value == "bad"

    # the register map carries them (float32, ABCD) at the documented offsets
    regs = render(snap)
    index = list(snap.items).index("site:s1")
    for name in ("TodayKgce", "MonthKgce", "TodayIntensity", "TodayKgceIntensity"):
        at = block_address(index) + BLOCK[name][0]
        assert words_to_float(regs[at], regs[at + 1]) == f32(figs["site:s1"][name]), name
