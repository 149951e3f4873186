"""The `carbonwatch calc` and `carbonwatch factors` commands, through the real dispatcher and entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.cli import main

ROOT = Path(__file__).parents[2]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_calc_json_has_the_promised_fields(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "calc", "1200", "kWh", "--carrier", "electricity", "--region", "CN",
                       "--year", "2022", "--json")
    body = json.loads(out)
    assert code == 0
    assert body["co2e_kg"] == pytest.approx(1200 * 0.5366)
    assert body["scope"] == "scope2_location" and body["factor_id"] == "cn_grid_avg_2022"
    assert body["factor_version"].startswith("sha256-") and "MEE & NBS" in body["source"]


@pytest.mark.parametrize(("argv", "expected_kg"), [
    (["2", "MWh", "--carrier", "electricity", "--method", "market", "--year", "2023"], 2000 * 0.6096),
    (["1000", "Nm3", "--carrier", "natural_gas"], 1000 * 0.038931 * 15.3 * 0.99 * 44 / 12),
    (["1", "t", "--carrier", "raw_coal"], 20.908 * 26.37 * 0.94 * 44 / 12),
    (["100", "L", "--carrier", "diesel", "--density", "0.84kg/L"], 0.084 * 42.652 * 20.2 * 0.98 * 44 / 12),
    (["1", "t", "--carrier", "gasoline", "--method", "ipcc"], 0.0443 * (69300 + 3 * 28 + 0.6 * 265)),
    (["1", "t", "--carrier", "lpg"], 50.179 * 17.2 * 0.98 * 44 / 12),
    (["1", "t", "--carrier", "fuel_oil"], 41.816 * 21.1 * 0.98 * 44 / 12),
    (["10", "GJ", "--carrier", "heat"], 1100.0),
    (["2", "t", "--carrier", "hot_water", "--temperature", "70degC"], 2 * 50 * 4.1868e-3 * 110),
])
def test_calc_one_example_per_carrier(capsys: pytest.CaptureFixture[str], argv: list[str],
                                      expected_kg: float) -> None:
    code, out, err = run(capsys, "calc", *argv, "--json")
    assert code == 0, err
    assert json.loads(out)["co2e_kg"] == pytest.approx(expected_kg, rel=1e-9)


def test_calc_steam_with_gauge_pressure(capsys: pytest.CaptureFixture[str]) -> None:
    # 0.6987 MPa gauge + 0.101325 = 0.8 MPa absolute: saturated h = 2768.30 kJ/kg
    code, out, _ = run(capsys, "calc", "1", "t", "--carrier", "steam", "--pressure", "0.698675 MPa(g)", "--json")
    assert code == 0 and json.loads(out)["activity"] == pytest.approx((2768.30 - 83.74) / 1000, abs=1e-5)


def test_calc_errors_are_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "calc", "1", "t", "--carrier", "steam")
    assert code == 2 and err.startswith("error: steam metered by mass needs its pressure")
    code, _, err = run(capsys, "calc", "1", "furlongs", "--carrier", "electricity")
    assert code == 2 and "furlongs" in err


def test_factors_list_and_show(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "factors", "list", "--kind", "gwp100", "--json")
    ids = {f["id"] for f in json.loads(out)["factors"]}
    assert code == 0 and {"gwp_ar5_ch4", "gwp_ar6_n2o"} <= ids and "cn_heat_default" not in ids
    code, out, _ = run(capsys, "factors", "show", "cn_grid_ets_2022", "--json")
    assert code == 0 and json.loads(out)["value"] == 0.5703
    code, _, err = run(capsys, "factors", "show", "nope")
    assert code == 2 and "nope" in err


def test_factors_check_reports_key_paths(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[factors.x]\nvalue = "high"\nunit = "kg / kWh"\nkind = "grid_average"\n'
                   'scope = "scope2_location"\nregion = "CN"\nsource = "s"\n', encoding="utf-8")
    code, out, _ = run(capsys, "factors", "check", str(bad))
    assert code == 1 and f"{bad}: factors.x.value:" in out
    code, out, _ = run(capsys, "factors", "check", str(ROOT / "calc" / "data" / "default_factors.toml"))
    assert code == 0 and "ok (143 factors)" in out
    broken = tmp_path / "broken.toml"
    broken.write_text("[factors.x\n", encoding="utf-8")
    code, out, _ = run(capsys, "factors", "check", str(broken))
    assert code == 1 and "(toml)" in out


def test_installed_entry_point_runs() -> None:
    exe = Path(sys.executable).parent / "carbonwatch"
    proc = subprocess.run([str(exe), "calc", "1", "MWh", "--carrier", "electricity", "--year", "2021", "--json"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["co2e_kg"] == pytest.approx(556.8)
