"""Child-process supervision for `carbonwatch run`: start services in dependency order, restart one that exits
unexpectedly after a capped, jittered backoff, and stop them all (TERM, then KILL) on request.

Pure bookkeeping plus `subprocess`: no threads, no console. The runner calls `tick()` a few times a second and
prints the events it returns; `Backoff` is deterministic given its random source, so it is unit-tested alone.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

BACKOFF_FIRST_S = 0.5   # the first restart comes after 0.25-0.5 s
BACKOFF_MAX_S = 30.0    # never wait longer than this between two starts of a crashing service
STABLE_AFTER_S = 60.0   # a service that ran this long before exiting starts again from the first delay
STOP_TIMEOUT_S = 4.0    # TERM, then KILL what is left after this
PR_SET_PDEATHSIG = 1


@dataclass
class Backoff:
    """Delay before restart number n of a service: min(cap, first * 2**(n-1)), times a jitter in [1/2, 1]
    ("equal jitter"), so that services crashing together do not restart in lockstep."""

    first_s: float = BACKOFF_FIRST_S
    max_s: float = BACKOFF_MAX_S
    rng: Callable[[], float] = random.random

    def delay_s(self, failures: int) -> float:
        ceiling = min(self.max_s, self.first_s * 2.0 ** max(0, failures - 1))
        return ceiling / 2.0 + ceiling / 2.0 * self.rng()


def _die_with_parent() -> None:  # runs in the child between fork and exec
    """If the runner itself is killed (kill -9), its children get SIGTERM instead of running on as orphans."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux: the runner's own stop() is all there is
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def describe_exit(returncode: int) -> str:
    """'exit code 3' or 'signal SIGKILL' for a Popen returncode."""
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit code {returncode}"


@dataclass
class Child:
    """One supervised service: how to start it, what it waits for, and how it has fared."""

    name: str
    argv: list[str]
    after: tuple[str, ...] = ()                       # names that must be ready before this one starts
    ready_probe: Callable[[Child], bool] | None = None  # None: ready as soon as it runs
    restarts_with: tuple[str, ...] = ()               # services restarted (in order) whenever this one restarts
    proc: subprocess.Popen[bytes] | None = None
    log: Path = Path()
    ready: bool = False
    was_ready: bool = False                           # ready at least once since the runner started
    started_mono: float = 0.0
    started_wall: float = 0.0
    due_mono: float | None = 0.0                      # when to (re)start it; None: do not start
    failures: int = 0                                 # consecutive quick exits (drives the backoff)
    restarts: int = 0                                 # unexpected exits since the runner started
    starts: int = 0

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class Supervisor:
    """Owns the children; `tick()` starts what is due and ready to start, notices exits and schedules restarts."""

    logs: Path
    backoff: Backoff = field(default_factory=Backoff)
    stable_after_s: float = STABLE_AFTER_S
    state_file: Path | None = None
    clock: Callable[[], float] = time.monotonic
    children: list[Child] = field(default_factory=list)

    def add(self, child: Child) -> Child:
        child.log = self.logs / f"{child.name}.log"
        self.children.append(child)
        return child

    def get(self, name: str) -> Child:
        return next(c for c in self.children if c.name == name)

    def all_ready(self) -> bool:
        return all(c.ready for c in self.children)

    def _spawn(self, child: Child) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        with child.log.open("ab") as log:
            # a session of its own: a Ctrl-C in the terminal reaches the runner only, which stops them in order
            child.proc = subprocess.Popen(child.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          start_new_session=True, preexec_fn=_die_with_parent)
        child.started_mono, child.started_wall = self.clock(), time.time()
        child.starts += 1
        child.ready, child.due_mono = False, None
        self._write_state()

    def _write_state(self) -> None:
        """A small JSON file naming each child's pid, restarts and log (for operators and tests)."""
        if self.state_file is None:
            return
        state = {c.name: {"pid": c.proc.pid if c.proc else None, "restarts": c.restarts, "log": str(c.log)}
                 for c in self.children}
        tmp = self.state_file.with_name(f".{self.state_file.name}.tmp")
        tmp.write_text(json.dumps(state, indent=1))
        tmp.replace(self.state_file)

    def tick(self) -> list[str]:
        """One round: notice exits, mark readiness, start what is due. Returns lines to show the operator."""
        events: list[str] = []
        now = self.clock()
        for child in self.children:
            if child.proc is not None and child.proc.poll() is not None:
                events += self._exited(child, now)
        for child in self.children:
            if (child.proc is None and child.due_mono is not None and now >= child.due_mono
                    and all(self.get(dep).ready for dep in child.after)):
                self._spawn(child)
                if child.starts > 1 and child.proc is not None:
                    events.append(f"{child.name} started again (pid {child.proc.pid}; {child.restarts} unexpected "
                                  f"exits so far)")
            if child.running and not child.ready:
                child.ready = child.ready_probe is None or child.ready_probe(child)
                child.was_ready = child.was_ready or child.ready
        return events

    def _exited(self, child: Child, now: float) -> list[str]:
        assert child.proc is not None
        code = child.proc.returncode
        ran_s = now - child.started_mono
        child.proc = None
        child.ready = False
        child.failures = 1 if ran_s >= self.stable_after_s else child.failures + 1
        child.restarts += 1
        delay_s = self.backoff.delay_s(child.failures)
        child.due_mono = now + delay_s
        events = [f"{child.name} exited unexpectedly ({describe_exit(code)}) after {ran_s:.1f} s; restart "
                  f"{child.restarts} in {delay_s:.1f} s; log: {child.log}"]
        for name in child.restarts_with:  # dependents: stop them now, start them again once this one is ready
            dep = self.get(name)
            if dep.running:
                self._terminate([dep])
                events.append(f"{dep.name} stopped until {child.name} is back")
            dep.proc, dep.ready, dep.due_mono = None, False, now
        self._write_state()
        return events

    def _terminate(self, children: list[Child], timeout_s: float = STOP_TIMEOUT_S) -> None:
        live = [c.proc for c in children if c.proc is not None and c.proc.poll() is None]
        for proc in live:
            proc.send_signal(signal.SIGTERM)
        deadline = self.clock() + timeout_s
        for proc in live:
            try:
                proc.wait(max(0.0, deadline - self.clock()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop(self, stages: list[list[str]]) -> None:
        """Stop every child stage by stage (each stage TERM together, KILL after STOP_TIMEOUT_S); children named in
        no stage go last. Nothing is restarted after this."""
        for child in self.children:
            child.due_mono = None
        named = {name for stage in stages for name in stage}
        for stage in [*stages, [c.name for c in self.children if c.name not in named]]:
            self._terminate([c for c in self.children if c.name in stage])
        for child in self.children:
            child.proc, child.ready = None, False
        self._write_state()

    def pids(self) -> dict[str, int]:
        return {c.name: c.proc.pid for c in self.children if c.proc is not None}


def wait_interruptibly(seconds: float, stop: Callable[[], bool], step_s: float = 0.05) -> bool:
    """Sleep up to `seconds`, returning early (True) as soon as `stop()` says so."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if stop():
            return True
        time.sleep(min(step_s, max(0.0, deadline - time.monotonic())))
    return stop()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True
