"""deploy.services: a daemon that never listens is stopped, not left running (a slow influxd once was, and the
test command then exited without `down` knowing its pid)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from deploy.services import Service, ServiceError


class Silent(Service):
    """A "daemon" that runs but never listens on its port."""

    name = "silent"
    binary = "sleep"

    def command(self) -> list[str]:
        return ["300"]

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.proc is not None:
            stopped.append(self.proc)
        super().stop(timeout_s)


stopped: list[subprocess.Popen[bytes]] = []


def test_a_service_that_never_listens_is_stopped(tmp_path: Path) -> None:
    svc = Silent(tmp_path)
    with pytest.raises(ServiceError, match="nothing listening"):
        svc.start(timeout_s=0.5)
    assert svc.proc is None   # stopped and forgotten: nothing for `down` to find, nothing left behind
    [proc] = stopped
    assert proc.poll() is not None, "the silent daemon is still running"
