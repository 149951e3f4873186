"""The supervisor's policy with real (tiny) processes and a clock the test moves: the backoff is capped and
jittered, grows while a service keeps crashing, starts over after a good run, dependents wait for readiness
and are restarted after the service they depend on."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.supervisor import Backoff, Child, Supervisor, describe_exit
from tests.deploy.harness import wait_until

CRASH = [sys.executable, "-c", "raise SystemExit(3)"]
SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]


@pytest.mark.parametrize("rng", [0.0, 0.5, 0.999])
def test_backoff_is_capped_exponential_with_equal_jitter(rng: float) -> None:
    backoff = Backoff(first_s=0.5, max_s=30.0, rng=lambda: rng)
    delays = [backoff.delay_s(n) for n in range(1, 12)]
    for n, delay in enumerate(delays, start=1):
        ceiling = min(30.0, 0.5 * 2 ** (n - 1))
        assert ceiling / 2 <= delay <= ceiling
    assert delays == sorted(delays), "never shorter than the wait before"
    assert delays[-1] <= 30.0 and delays[-1] >= 15.0


def test_describe_exit_names_code_or_signal() -> None:
    assert describe_exit(3) == "exit code 3"
    assert describe_exit(-9) == "signal SIGKILL"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sup(tmp_path: Path) -> Iterator[tuple[Supervisor, Clock]]:
    clock = Clock()
    supervisor = Supervisor(tmp_path / "logs", backoff=Backoff(rng=lambda: 1.0), stable_after_s=60.0,
                            state_file=tmp_path / "run.json", clock=clock)
    try:
        yield supervisor, clock
    finally:
        supervisor.stop([])


def _tick_until_exit(supervisor: Supervisor, name: str) -> list[str]:
    child = supervisor.get(name)
    assert child.proc is not None
    child.proc.wait(30)
    return supervisor.tick()


def test_crash_loop_backs_off_and_a_good_run_resets_it(sup: tuple[Supervisor, Clock]) -> None:
    supervisor, clock = sup
    child = supervisor.add(Child("svc", CRASH))
    supervisor.tick()
    delays = []
    for n in range(1, 5):
        events = _tick_until_exit(supervisor, "svc")
        assert events[0].startswith("svc exited unexpectedly (exit code 3) after ") and f"restart {n} in " in events[0]
        assert child.proc is None and child.due_mono is not None
        delays.append(child.due_mono - clock.now)
        supervisor.tick()
        assert child.proc is None, "started again before its backoff was over"
        clock.now = child.due_mono
        assert "svc started again" in supervisor.tick()[0]
    assert delays == [0.5, 1.0, 2.0, 4.0]
    clock.now += 61.0  # this run counts as a good one: the next crash waits the first delay again
    _tick_until_exit(supervisor, "svc")
    assert child.due_mono == clock.now + 0.5
    assert child.restarts == 5


def test_dependents_wait_for_readiness_and_follow_a_restarted_dependency(sup: tuple[Supervisor, Clock],
                                                                         tmp_path: Path) -> None:
    supervisor, clock = sup
    flag = tmp_path / "ready"
    broker = supervisor.add(Child("broker", SLEEP, ready_probe=lambda c: flag.exists(), restarts_with=("ingest",)))
    ingest = supervisor.add(Child("ingest", SLEEP, after=("broker",)))
    supervisor.tick()
    assert broker.running and ingest.proc is None, "ingest must wait until the broker is ready"
    flag.touch()
    supervisor.tick()
    assert ingest.running
    first_ingest = ingest.proc
    assert broker.proc is not None and first_ingest is not None
    broker.proc.kill()
    flag.unlink()
    events = _tick_until_exit(supervisor, "broker")
    assert "broker exited unexpectedly (signal SIGKILL)" in events[0]
    assert events[1] == "ingest stopped until broker is back"
    assert first_ingest.poll() is not None, "the dependent was stopped"
    clock.now += 1.0
    supervisor.tick()
    assert broker.running and ingest.proc is None
    flag.touch()
    wait_until("ingest started again after the broker", lambda: (supervisor.tick(), ingest.running)[1], 10)
    assert ingest.restarts == 0, "a dependent stopped on purpose is not counted as a crash"
