"""Energy baselines (calc.baseline): a fit on data from a known model recovers its coefficients within narrow
95 % intervals; a model that misses the limits is refused with each limit and value; degree-days by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calc.baseline import (
    AcceptanceLimits,
    Baseline,
    BaselineError,
    BaselineRefused,
    Resolution,
    degree_days,
    fit_baseline,
    sum_per_period,
)

TRUE = {"intercept": 4000.0, "production": 2.5, "hdd": 12.0}   # kWh, kWh/t, kWh/(K·d)
UNITS = {"production": "t", "hdd": "K * day"}


def synthetic(n: int, seed: int, noise_kwh: float = 60.0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Daily data from energy = a + b·production + c·HDD + noise (seeded: deterministic)."""
    rng = np.random.default_rng(seed)
    production = rng.uniform(600.0, 1400.0, n)
    hdd = np.clip(rng.normal(10.0, 8.0, n), 0.0, None)
    energy = TRUE["intercept"] + TRUE["production"] * production + TRUE["hdd"] * hdd + rng.normal(0, noise_kwh, n)
    return energy, {"production": production, "hdd": hdd}


def fit(energy: np.ndarray, drivers: dict[str, np.ndarray], **kw: object) -> Baseline:
    return fit_baseline(energy, drivers, energy_unit="kWh", driver_units={k: UNITS[k] for k in drivers},
                        resolution=kw.pop("resolution", "daily"), subject="demo/paint", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fit_recovers_the_known_coefficients_within_narrow_intervals(seed: int) -> None:
    energy, drivers = synthetic(365, seed)
    model = fit(energy, drivers)
    for name, true in TRUE.items():
        term = model.term(name)
        assert term.ci95_low <= true <= term.ci95_high, (name, term)
        # narrow enough that a broken fit (wrong column, wrong sign, dropped term) cannot pass
        assert term.ci95_high - term.ci95_low < 0.2 * true, (name, term)
        assert term.std_error > 0 and term.p_value < 1e-6
        assert term.ci95_low < term.value < term.ci95_high
    assert model.stats.n == 365 and model.stats.r2 > 0.9 and model.stats.adj_r2 <= model.stats.r2
    assert abs(model.stats.nmbe) < 1e-9            # OLS with an intercept: residuals sum to zero
    assert model.stats.cv_rmse == pytest.approx(model.stats.rmse / energy.mean())
    assert model.term("hdd").unit == "kWh / (K * day)"


def test_statistics_equal_their_definitions() -> None:
    energy, drivers = synthetic(60, 4)
    model = fit(energy, drivers)
    fitted = model.predict(drivers)
    residual = energy - fitted
    n, p = 60, 3
    assert model.stats.rmse == pytest.approx(math.sqrt((residual ** 2).sum() / (n - p)))
    r2 = 1 - (residual ** 2).sum() / ((energy - energy.mean()) ** 2).sum()
    assert model.stats.r2 == pytest.approx(r2)
    assert model.stats.adj_r2 == pytest.approx(1 - (1 - r2) * (n - 1) / (n - p))


def test_a_wrong_model_is_refused_naming_each_limit_and_value() -> None:
    energy, drivers = synthetic(365, 5, noise_kwh=150.0)
    energy = energy + np.where(np.arange(365) % 7 >= 5, 3000.0, 0.0)   # weekends the model cannot see
    with pytest.raises(BaselineRefused) as err:
        fit(energy, {"hdd": drivers["hdd"]}, limits=AcceptanceLimits(max_cv_rmse=0.05, max_abs_nmbe=0.05,
                                                                     min_r2=0.75, min_points=30))
    misses = err.value.misses
    assert any(m.startswith("R² = ") and "< 0.7500" in m for m in misses), misses
    assert any(m.startswith("CV(RMSE) = ") and "> 5.00%" in m for m in misses), misses
    assert err.value.stats is not None and str(err.value).startswith("baseline refused: ")
    assert f"{err.value.stats.r2:.4f}" in str(err.value)


def test_too_few_points_and_bad_p_values_are_refused() -> None:
    energy, drivers = synthetic(20, 6)
    with pytest.raises(BaselineRefused, match=r"n = 20 points < minimum 30"):
        fit(energy, drivers)
    rng = np.random.default_rng(99)  # not 6: the same stream would make it production rescaled (collinear)
    noise_driver = {**drivers, "production": drivers["production"], "hdd": rng.uniform(0, 10, 20)}
    lim = AcceptanceLimits(max_cv_rmse=0.3, max_abs_nmbe=0.1, min_r2=0.5, min_points=10, max_p_value=0.05)
    with pytest.raises(BaselineRefused, match=r"driver 'hdd' p-value = "):
        fit(energy - TRUE["hdd"] * drivers["hdd"], noise_driver, limits=lim)


def test_energy_that_never_varies_is_refused_for_an_undefined_r2() -> None:
    _, drivers = synthetic(60, 8)
    lim = AcceptanceLimits(max_cv_rmse=1.0, max_abs_nmbe=1.0, min_r2=0.0, min_points=10)
    with pytest.raises(BaselineRefused, match=r"R² is undefined: the energy never varies"):
        fit(np.full(60, 500.0), drivers, limits=lim)


def test_monthly_limits_are_ashrae_14() -> None:
    monthly = AcceptanceLimits.ashrae14(Resolution.MONTHLY)
    hourly = AcceptanceLimits.ashrae14("hourly")
    assert (monthly.max_cv_rmse, monthly.max_abs_nmbe, monthly.min_points) == (0.15, 0.05, 12)
    assert (hourly.max_cv_rmse, hourly.max_abs_nmbe, hourly.min_points) == (0.30, 0.10, 168)


def test_unusable_data_is_a_clear_error() -> None:
    energy, drivers = synthetic(40, 7)
    with pytest.raises(BaselineError, match="driver 'hdd' has 39 values, energy has 40"):
        fit(energy, {**drivers, "hdd": drivers["hdd"][:-1]})
    with pytest.raises(BaselineError, match="NaN"):
        fit(np.where(np.arange(40) == 3, np.nan, energy), drivers)
    with pytest.raises(BaselineRefused, match="collinear"):
        fit(energy, {"production": drivers["production"], "hdd": 2 * drivers["production"]})
    with pytest.raises(BaselineError, match="has no unit"):
        fit_baseline(energy, drivers, energy_unit="kWh", driver_units={"production": "t"}, resolution="daily",
                     subject="x")


def test_model_round_trips_as_json_and_predicts_with_units() -> None:
    energy, drivers = synthetic(120, 8)
    model = fit(energy, drivers)
    again = Baseline.model_validate_json(model.model_dump_json())
    assert again == model and again.version == model.version and model.version.startswith("sha256-")
    by_hand = (model.term("intercept").value + model.term("production").value * 1000
               + model.term("hdd").value * 5)
    assert again.predict({"production": [1000], "hdd": [5]})[0] == pytest.approx(by_hand)
    assert again.predict({"production": [1e6], "hdd": [5]}, units={"production": "kg"})[0] == pytest.approx(by_hand)
    with pytest.raises(BaselineError, match=r"drivers \['hdd'\] missing"):
        model.predict({"production": [1.0]})


def test_degree_days_by_hand() -> None:
    assert degree_days([10.0, 20.0, 15.0], base_c=18.0).tolist() == [8.0, 0.0, 3.0]
    assert degree_days([10.0, 20.0], base_c=18.0, kind="cooling").tolist() == [0.0, 2.0]
    hourly = degree_days([12.0] * 12 + [20.0] * 12, base_c=15.5, sample_hours=1)
    assert hourly.sum() == pytest.approx(12 * 3.5 / 24)
    assert degree_days([50.0], base_c=15.0, unit="degF")[0] == pytest.approx(5.0)
    assert sum_per_period([1.0, 2.0, 3.0], [0, 0, 1], 2).tolist() == [3.0, 3.0]
    with pytest.raises(BaselineError, match="heating"):
        degree_days([1.0], kind="warm")


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-30, 40, allow_nan=False), min_size=1, max_size=48), st.floats(10, 22))
def test_heating_minus_cooling_is_base_minus_mean(temps: list[float], base: float) -> None:
    hdd = degree_days(temps, base_c=base).sum()
    cdd = degree_days(temps, base_c=base, kind="cooling").sum()
    assert hdd >= 0 and cdd >= 0
    assert hdd - cdd == pytest.approx(sum(base - t for t in temps), abs=1e-6)
