"""Nothing outlives the test session: at its end, every process descended from pytest that is still alive is
named, killed, and fails the run (exit code 1), so a leaked service can never pass silently.

pytest makes itself a child subreaper (Linux), so a grandchild whose parent died (a runner killed mid-test, a
daemon that double-forks, a child started with start_new_session) is re-parented to pytest and still found.
Services started before pytest by deploy/test.sh are not pytest's descendants and are left alone.
Hooks, imported by tests/conftest.py; also usable as a plugin (`-p tests.leakguard`).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import time
from pathlib import Path

import pytest

PR_SET_CHILD_SUBREAPER = 36
GRACE_S = 3.0  # a process already on its way out (a browser's helpers after the browser) may finish first
_leaks: list[str] = []


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, state letter) of a process, None when it is gone."""
    try:
        after_name = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(after_name[1]), after_name[0]


def descendants(root: int) -> list[int]:
    """Living (not zombie) descendants of `root`, parents before children."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None and stat[1] != "Z":
            parents.setdefault(stat[0], []).append(int(entry))
    out: list[int] = []
    todo = [root]
    while todo:
        kids = parents.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def describe(pid: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return f"pid {pid} (gone)"
    return f"pid {pid}: {' '.join(a.decode(errors='replace') for a in argv if a)[:300]}"


def _reap() -> None:
    """Collect our exited children (zombies), at the very end only: earlier it would steal a Popen's exit code."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass


def pytest_configure(config: pytest.Config) -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    me = os.getpid()
    deadline = time.monotonic() + GRACE_S
    while (alive := descendants(me)) and time.monotonic() < deadline:
        time.sleep(0.05)
    if not alive:
        _reap()
        return
    _leaks.extend(describe(pid) for pid in alive)
    for pid in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10.0
    while descendants(me) and time.monotonic() < deadline:
        time.sleep(0.05)
    _reap()
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _leaks:
        terminalreporter.section("processes left running by the tests (killed now)", red=True, bold=True)
        for line in _leaks:
            terminalreporter.line(line, red=True)
        terminalreporter.line("a test that starts a process must stop it, even when it fails (try/finally or a "
                              "fixture)", red=True)
