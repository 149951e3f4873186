"""GET /v1/performance over a real SQLite store filled through ingest's converter: a baseline fitted on 60 days
of energy from a known model, then 14 more days with a +15 % waste fault from day 67. Actual, expected, deviation,
CUSUM and CO2e equal a hand computation from the store's own rows and the stored coefficients, at the model's
resolution and at another; the CUSUM turns when the waste starts; bounds, versions and keys are checked."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.api.baseline_data import HDD_BASE_C, SITE, T0, BaselineEnv, Model, fill, generate

MODEL = Model()
FIT_DAYS, ALL_DAYS, WASTE_DAY = 60, 74, 67
BASELINE = {"id": "m1", "scope": "meter", "target": "m1", "resolution": "daily", "period_start": T0.isoformat(),
            "period_end": (T0 + timedelta(days=FIT_DAYS)).isoformat(),
            "drivers": [{"name": "pieces", "variable": "out-1"},
                        {"name": "hdd", "variable": "temp", "transform": "heating_degree_days"}]}
START, END = T0 + timedelta(days=FIT_DAYS), T0 + timedelta(days=ALL_DAYS)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> BaselineEnv:
    env = BaselineEnv(tmp_path_factory.mktemp("performance"))
    env.clock.now = datetime(2026, 4, 1, tzinfo=UTC)   # every stored day is over
    fill(env.store, generate(MODEL, T0, ALL_DAYS * 24, waste_from=T0 + timedelta(days=WASTE_DAY)), MODEL.m2_kwh)
    return env


@pytest.fixture(scope="module")
def client(env: BaselineEnv) -> Iterator[TestClient]:
    with TestClient(env.app()) as c:
        resp = c.post("/v1/baselines", json=BASELINE, headers=env.h("engineer"))
        assert resp.status_code == 201, resp.text
        yield c


def coefficients(client: TestClient, env: BaselineEnv) -> dict[str, float]:
    doc = client.get("/v1/baselines/m1", headers=env.h("viewer")).json()
    return {t["name"]: t["value"] for t in doc["model"]["terms"]}


def by_hand(env: BaselineEnv, coef: dict[str, float], hours_per_period: int) -> dict[str, np.ndarray]:
    """Per period of `hours_per_period` hours from START: the store's m1 energy and CO2e, the pieces and
    degree-days (hourly means) it stored, and the model's energy for them (its intercept per 24 h)."""
    n_hours = (ALL_DAYS - FIT_DAYS) * 24
    energy, co2e, pieces, hdd = (np.zeros(n_hours) for _ in range(4))
    for r in env.store.series(SITE, START, END, "1h", "UTC"):
        if r.meter == "m1":
            i = int((r.start - START).total_seconds() // 3600)
            energy[i] += r.energy
            co2e[i] += r.co2e_kg
    for v in env.store.variable_series(SITE, START, END, "1h", "UTC"):
        assert v.start is not None
        i = int((v.start - START).total_seconds() // 3600)
        if v.variable == "out-1":
            pieces[i] += v.total or 0.0
        elif v.variable == "temp" and v.mean is not None:
            hdd[i] += max(HDD_BASE_C - v.mean, 0.0) / 24.0

    def per(x: np.ndarray) -> np.ndarray:
        return x.reshape(-1, hours_per_period).sum(axis=1)

    e, c, p, d = per(energy), per(co2e), per(pieces), per(hdd)
    expected = coef["intercept"] * hours_per_period / 24 + coef["pieces"] * p + coef["hdd"] * d
    factor = c / e
    return {"actual": e, "expected": expected, "deviation": e - expected, "cusum": np.cumsum(e - expected),
            "actual_co2e_kg": c, "expected_co2e_kg": expected * factor, "pieces": p, "hdd": d}


def get(client: TestClient, env: BaselineEnv, **params: Any) -> dict[str, Any]:
    resp = client.get("/v1/performance", params={"baseline": "m1", "from": START.isoformat(),
                                                 "to": END.isoformat(), **params}, headers=env.h("viewer"))
    assert resp.status_code == 200, resp.text
    doc: dict[str, Any] = resp.json()
    return doc


@pytest.mark.parametrize(("resolution", "hours"), [("daily", 24), ("hourly", 1)])
def test_figures_equal_a_hand_computation_from_the_stored_rows(client: TestClient, env: BaselineEnv,
                                                               resolution: str, hours: int) -> None:
    doc = get(client, env, resolution=resolution)
    hand = by_hand(env, coefficients(client, env), hours)
    s = doc["series"]
    assert len(s["start"]) == len(hand["actual"]) == (ALL_DAYS - FIT_DAYS) * 24 // hours
    assert datetime.fromisoformat(s["start"][1]) - datetime.fromisoformat(s["start"][0]) == timedelta(hours=hours)
    for name in ("actual", "expected", "deviation", "cusum", "actual_co2e_kg", "expected_co2e_kg"):
        assert np.allclose(s[name], hand[name], rtol=1e-9, atol=1e-6), name
    assert np.allclose(s["drivers"]["pieces"], hand["pieces"]) and np.allclose(s["drivers"]["hdd"], hand["hdd"])
    assert np.allclose(s["enpi"], hand["actual"] / hand["expected"])
    assert np.allclose(s["deviation_pct"], 100 * hand["deviation"] / hand["expected"])
    t = doc["totals"]
    assert t["actual_energy"] == pytest.approx(hand["actual"].sum(), rel=1e-12)
    assert t["expected_energy"] == pytest.approx(hand["expected"].sum(), rel=1e-12)
    assert t["deviation_pct"] == pytest.approx(100 * (hand["actual"].sum() / hand["expected"].sum() - 1), rel=1e-9)
    assert t["expected_co2e_kg"] == pytest.approx(hand["expected_co2e_kg"].sum(), rel=1e-9)
    assert t["actual_co2e_kg"] > 0
    assert (doc["baseline"], doc["baseline_version"], doc["resolution"]) == ("m1", 1, resolution)
    assert doc["intercept_scaled"] is (resolution != "daily")
    assert doc["units"] == {"energy": "kWh", "co2e": "kg", "deviation_pct": "%", "enpi": "1", "cusum": "kWh",
                            "hours": "h", "driver:pieces": "count", "driver:hdd": "K * d"}


def test_cusum_turns_when_the_waste_starts(client: TestClient, env: BaselineEnv) -> None:
    doc = get(client, env)
    s = doc["series"]
    waste = WASTE_DAY - FIT_DAYS
    before, after = np.array(s["deviation_pct"][:waste]), np.array(s["deviation_pct"][waste:])
    assert np.all(np.abs(before) < 5.0), before          # the model holds before the fault
    assert np.all((after > 10.0) & (after < 20.0)), after  # +15 % waste, seen day by day
    cusum = np.array(s["cusum"])
    flat = abs(cusum[waste - 1]) / np.sum(s["expected"][:waste])
    rise = (cusum[-1] - cusum[waste - 1]) / np.sum(s["expected"][waste:])
    assert flat < 0.03 and 0.10 < rise < 0.20, (flat, rise)


def test_bounds_versions_and_keys(client: TestClient, env: BaselineEnv) -> None:
    h = env.h("viewer")
    odd = client.get("/v1/performance", params={"baseline": "m1", "from": (START + timedelta(hours=1)).isoformat(),
                                                "to": END.isoformat()}, headers=h)
    assert odd.status_code == 422 and "is not midnight" in odd.text
    hourly = client.get("/v1/performance", params={"baseline": "m1", "resolution": "hourly",
                                                   "from": (START + timedelta(hours=1)).isoformat(),
                                                   "to": END.isoformat()}, headers=h)
    assert hourly.status_code == 200 and len(hourly.json()["series"]["start"]) == 14 * 24 - 1
    assert client.get("/v1/performance", params={"baseline": "nope"}, headers=h).status_code == 404
    assert client.get("/v1/performance", params={"baseline": "m1"}).status_code == 401
    assert client.get("/v1/performance", params={"baseline": "m1"}, headers=env.h("other")).status_code == 404
    # a period under way: only the periods begun by now, the last with the share of its intercept that elapsed
    env.clock.now = START + timedelta(days=4, hours=12)
    try:
        doc = get(client, env)
    finally:
        env.clock.now = datetime(2026, 4, 1, tzinfo=UTC)
    s = doc["series"]
    assert len(s["start"]) == 5 and s["elapsed"] == [1.0, 1.0, 1.0, 1.0, 0.5]
    assert doc["end"] == (START + timedelta(days=5)).isoformat().replace("+00:00", "Z")
    coef = coefficients(client, env)
    last = {k: s["drivers"][k][-1] for k in ("pieces", "hdd")}
    assert s["expected"][-1] == pytest.approx(0.5 * coef["intercept"] + coef["pieces"] * last["pieces"]
                                              + coef["hdd"] * last["hdd"], rel=1e-12)
    assert s["expected"][0] == pytest.approx(coef["intercept"] + coef["pieces"] * s["drivers"]["pieces"][0]
                                             + coef["hdd"] * s["drivers"]["hdd"][0], rel=1e-12)
    monthly = client.get("/v1/performance", params={"baseline": "m1", "resolution": "monthly",
                                                    "from": "2026-03-01T00:00:00Z", "to": "2026-04-01T00:00:00Z"},
                         headers=h)
    assert monthly.status_code == 200 and len(monthly.json()["series"]["start"]) == 1
    assert monthly.json()["series"]["hours"] == [31 * 24]


def test_the_period_report_shows_performance_against_the_baseline(client: TestClient, env: BaselineEnv) -> None:
    """The report over the same days gives the baseline's actual, expected, EnPI and CUSUM as /v1/performance and a
    hand computation do, in JSON, CSV and the printable HTML; a period off the model's edges says why."""
    h = env.h("viewer")
    params = {"from": START.isoformat(), "to": END.isoformat()}
    report = client.get("/v1/reports/period", params=params, headers=h)
    assert report.status_code == 200, report.text
    [p] = report.json()["performance"]
    hand = by_hand(env, coefficients(client, env), 24)
    assert (p["baseline"], p["baseline_version"], p["resolution"], p["refused"]) == ("m1", 1, "daily", None)
    assert p["totals"]["expected_energy"] == pytest.approx(hand["expected"].sum(), rel=1e-12)
    assert p["totals"]["actual_energy"] == pytest.approx(hand["actual"].sum(), rel=1e-12)
    assert p["cusum_end"] == pytest.approx(hand["cusum"][-1], rel=1e-9, abs=1e-6)
    assert np.allclose(p["series"]["cusum"], hand["cusum"], rtol=1e-9, atol=1e-6)
    assert p["totals"] == get(client, env)["totals"]
    csv_rows = [line.split(",") for line in client.get("/v1/reports/period", params={**params, "format": "csv"},
                                                       headers=h).text.splitlines()]
    cusum_row = next(r for r in csv_rows if r[0] == "performance_cusum_end")
    assert cusum_row[1] == "m1 v1" and float(cusum_row[2]) == pytest.approx(hand["cusum"][-1], rel=1e-9, abs=1e-6)
    page = client.get("/v1/reports/period", params={**params, "format": "html"}, headers=h).text
    assert "Performance against baselines" in page and f"{hand['cusum'][-1]:+,.3f}" in page
    odd = client.get("/v1/reports/period", params={"from": (START + timedelta(hours=1)).isoformat(),
                                                   "to": END.isoformat()}, headers=h).json()["performance"]
    assert odd[0]["totals"] is None and "is not midnight" in odd[0]["refused"]
