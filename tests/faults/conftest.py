"""Fixtures of the fault suite and the table it prints at the end of the run (in CI output too)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults import report
from tests.faults.powercut import build_shim


@pytest.fixture(scope="session")
def shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The power-cut LD_PRELOAD shim, compiled for this run."""
    return build_shim(tmp_path_factory.mktemp("powercut"))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config) -> None:
    if not report.ROWS:
        return
    terminalreporter.section("fault suite: energy lost and double counted per scenario")
    terminalreporter.write_line(report.render(report.ROWS))
    terminalreporter.write_line(
        "per meter: lost = truth - counted, double = counted - truth, when beyond 1e-9 relative; summed per carrier "
        "in its unit (natural gas as metered m3, steam t) and over all carriers in kg CO2e")
