"""The power-cut procedure on the edge's real spool, without the rest of the system: it does cut what was not
fsynced (with `synchronous=NORMAL` the tail of commits goes, and the counter baseline and sequence number roll
back to a state the agent had already published past), and the spool as the edge opens it loses nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from edge.spool import Spool
from tests.deploy.harness import wait_until
from tests.faults.powercut import PowerCut
from tests.faults.procs import REPO
from tests.faults.spool_writer import METER, QUANTITY, WH_PER_READING

pytestmark = pytest.mark.integration
COMMITS = 300  # readings committed (and "published") before the power goes


def commit_then_cut(shim: Path, folder: Path, mode: str) -> tuple[tuple[int, int], tuple[int, int], dict[str, object]]:
    """Run the spool writer under the shim, kill -9 it after COMMITS commits, cut the power. Returns the last
    (seq, counter Wh) it reported committed, the (next seq, counter Wh) the spool holds after the cut, and what
    was cut."""
    state = folder / "state"
    cut = PowerCut(shim, state, folder / "fsync.log")
    cut.arm()
    proc = subprocess.Popen([sys.executable, "-m", "tests.faults.spool_writer", str(state), mode],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO, env={**os.environ, **cut.env()})
    committed: list[tuple[int, int]] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            words = line.split()
            if len(words) == 2:  # the kill can cut the last line short: that report never happened
                committed.append((int(words[0]), int(words[1])))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        wait_until(f"{COMMITS} commits", lambda: len(committed) >= COMMITS or proc.poll() is not None, 60, 0.01)
    finally:
        proc.kill()
        proc.wait(30)
        reader.join(30)
    assert len(committed) >= COMMITS, f"the writer stopped: {proc.stderr.read().decode() if proc.stderr else ''}"
    what = cut.cut()
    spool = Spool(state / "edge.sqlite")
    try:
        states, seqs = spool.load_state()
    finally:
        spool.close()
    return committed[-1], (seqs[METER], int(states[METER][QUANTITY].raw)), dict(what)


def test_the_cut_takes_what_was_not_synced(shim: Path, tmp_path: Path) -> None:
    """synchronous=NORMAL (WAL): commits are not fsynced, so the cut rolls the baseline back; the agent would
    read the meter again from there and count the energy of every lost commit a second time."""
    (seq, raw), (next_seq, kept_raw), what = commit_then_cut(shim, tmp_path, "normal")
    assert kept_raw < raw and next_seq <= seq, (
        f"nothing lost with synchronous=NORMAL (cut: {what}): the power-cut procedure would prove nothing")
    double_wh = raw - kept_raw
    assert double_wh >= WH_PER_READING
    print(f"synchronous=NORMAL: baseline rolled back from {raw} to {kept_raw} Wh and seq from {seq + 1} to "
          f"{next_seq}: {double_wh} Wh already published would be counted again; cut: {what}")


def test_the_cut_keeps_what_was_synced(shim: Path, tmp_path: Path) -> None:
    """synchronous=FULL: every commit is fsynced before it returns, so the cut takes nothing the writer reported
    (the procedure does not invent a loss)."""
    (seq, raw), (next_seq, kept_raw), what = commit_then_cut(shim, tmp_path, "full")
    assert (next_seq, kept_raw) in ((seq + 1, raw), (seq + 2, raw + WH_PER_READING)), (
        f"synchronous=FULL lost committed readings: reported seq {seq} at {raw} Wh, kept next seq {next_seq} at "
        f"{kept_raw} Wh; cut: {what}")


def test_the_spool_as_shipped_survives_a_power_cut(shim: Path, tmp_path: Path) -> None:
    """The edge's spool as it opens itself: the agent publishes a reading once it is committed, so a power cut
    must not take a committed reading back (else its energy is counted again from a rolled-back baseline)."""
    (seq, raw), (next_seq, kept_raw), what = commit_then_cut(shim, tmp_path, "shipped")
    # the writer may have been killed between a commit and its report: then the spool is one reading ahead
    assert (next_seq, kept_raw) in ((seq + 1, raw), (seq + 2, raw + WH_PER_READING)), (
        f"the spool lost committed readings in a power cut: reported seq {seq} at {raw} Wh, kept next seq "
        f"{next_seq} at {kept_raw} Wh ({raw - kept_raw} Wh would be counted twice); cut: {what}")
