"""Fixtures of the dashboard tests: the whole system (simulators, edge, ingest as child processes, the API with
the dashboard) on free loopback ports with a real Mosquitto, and headless Chromium (Debian's)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.auth import write_key
from tests.dashboard.browser import Browser
from tests.deploy.harness import System

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "var" / "screenshots"


class DashboardSystem(System):
    """The end-to-end system whose API process also serves the dashboard; an engineer key to acknowledge."""

    def __post_init__(self) -> None:
        super().__post_init__()
        # MQTT client ids of our own: the broker may be shared with other tests of the same "e2e" site
        # (the harness already gives ingest a persistent session unique to this run)
        tag = uuid.uuid4().hex[:8]
        text = self.plant.read_text()
        text = text.replace('[mqtt]\nurl = ""\n', f'[mqtt]\nurl = ""\nclient_id = "cw-edge-dash-{tag}"\n')
        text = text.replace("[api]\n", f'[api]\nclient_id = "cw-api-dash-{tag}"\n')
        assert text.count(tag) == 2, "the harness's plant file changed shape"
        self.plant.write_text(text)
        self.engineer_key = write_key(self.workdir / "keys.toml", "shift-engineer", "engineer")
        self.admin_key = write_key(self.workdir / "keys.toml", "energy-manager", "admin")
        self.base_url = f"http://127.0.0.1:{self.api_port}"

    def argv(self, name: str) -> list[str]:
        if name == "api":
            import sys

            return [sys.executable, "-m", "tests.dashboard.serve_api", "--config", str(self.plant),
                    "--mqtt-url", self.mqtt_url]
        return super().argv(name)



@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory, mqtt_url: str) -> Iterator[DashboardSystem]:
    """One system per test module (starting one takes seconds on two shared cores)."""
    sys_ = DashboardSystem(tmp_path_factory.mktemp("system"), mqtt_url)
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), old) if p)  # the children import tests.*
    try:
        sys_.start_all()
        yield sys_
    except BaseException:
        for name in ("simulate", "edge", "ingest", "api"):
            print(f"--- {name} log ---\n{sys_.log(name)}")
        raise
    finally:
        sys_.stop_all()
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    with Browser(tmp_path) as b:
        yield b


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    report: pytest.TestReport = yield
    if report.when == "call":
        item.stash[FAILED] = report.failed
    return report


FAILED = pytest.StashKey[bool]()


@pytest.fixture
def logs_on_failure(request: pytest.FixtureRequest, system: DashboardSystem) -> Iterator[None]:
    """Print the services' logs when a test that uses the shared system fails."""
    yield
    if request.node.stash.get(FAILED, False):
        for name in ("simulate", "edge", "ingest", "api"):
            print(f"--- {name} log ---\n{system.log(name)}")
