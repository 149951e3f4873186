"""The session's leak guard (tests/leakguard.py) in an inner pytest run: processes a passing test leaves behind
(a plain child, one in a session of its own, an orphaned grandchild) are named, killed and fail the run; a
clean run passes; a service started before pytest, as deploy/test.sh starts Mosquitto and InfluxDB, is left
alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from deploy.supervisor import pid_alive
from tests.deploy.harness import wait_until

REPO = Path(__file__).resolve().parents[2]

LEAKY = '''
import subprocess, sys
from pathlib import Path

def test_leaves_processes_behind(tmp_path_factory):
    out = Path({pids!r})
    plain = subprocess.Popen(["sleep", "301"])
    own_session = subprocess.Popen(["sleep", "302"], start_new_session=True)
    # a grandchild whose parent exits at once: re-parented to pytest, the subreaper
    subprocess.run(["sh", "-c", "sleep 303 >/dev/null 2>&1 & echo $! > {grandchild}"], check=True)
    out.write_text(f"{{plain.pid}} {{own_session.pid}} " + Path({grandchild!r}).read_text())
'''

CLEAN = '''
import subprocess

def test_stops_what_it_starts():
    proc = subprocess.Popen(["sleep", "300"])
    proc.terminate()
    proc.wait()
'''


def _inner_pytest(tmp_path: Path, name: str, body: str) -> subprocess.CompletedProcess[str]:
    test = tmp_path / name
    test.write_text(body)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "tests.leakguard", "-p", "no:cacheprovider",
                           "--rootdir", str(tmp_path), "-c", os.devnull, str(test)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})


def test_a_leak_is_named_killed_and_fails_the_run_but_earlier_services_are_left(tmp_path: Path) -> None:
    # like `deploy.services up` in deploy/test.sh: a daemon started by a process that has exited before pytest
    pid_file = tmp_path / "service.pid"
    subprocess.run(["sh", "-c", f"setsid sleep 304 >/dev/null 2>&1 & echo $! > {pid_file}"], check=True)
    service = int(pid_file.read_text())
    leaked: list[int] = []
    try:
        pids = tmp_path / "pids"
        result = _inner_pytest(tmp_path, "test_leaky.py", LEAKY.format(pids=str(pids),
                                                                        grandchild=str(tmp_path / "grandchild")))
        print(result.stdout, result.stderr)
        leaked = [int(p) for p in pids.read_text().split()]
        assert result.returncode == 1, "a passing test that leaks must fail the run"
        assert "1 passed" in result.stdout
        assert "processes left running by the tests" in result.stdout
        for pid, seconds in zip(leaked, (301, 302, 303), strict=True):
            assert f"pid {pid}: sleep {seconds}" in result.stdout
        wait_until("the leaked processes gone", lambda: not any(pid_alive(p) and not _zombie(p) for p in leaked), 10)
        assert pid_alive(service), "the service started before pytest was killed"
        assert "sleep 304" not in result.stdout
    finally:
        for pid in [*leaked, service]:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while pid_alive(service) and not _zombie(service) and time.monotonic() < deadline:
            time.sleep(0.05)


def test_a_clean_run_passes(tmp_path: Path) -> None:
    result = _inner_pytest(tmp_path, "test_clean.py", CLEAN)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "processes left running" not in result.stdout


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False
