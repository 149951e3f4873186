"""The edge agent's wall clock, offset on demand: the simulator writes the offset into a libfaketime timestamp file
that the edge process reads (`[simulator] edge_clock_file`); `preload_env` is how the edge is started to follow it.

A real wall-clock step of the edge process, in both directions: time.time() and datetime.now() in the edge jump,
time.monotonic() does not (FAKETIME_DONT_FAKE_MONOTONIC=1), as when an operator or NTP steps a box's clock.
libfaketime 0.9.10 (Debian 12) reads the file on every call with FAKETIME_NO_CACHE=1 (FAKETIME_CACHE_DURATION=N:
at most N s late). Its clock_nanosleep() breaks with an unfaked monotonic clock (libfaketime issue #426: it
subtracts the fake offset from a CLOCK_MONOTONIC TIMER_ABSTIME deadline, so Python 3.11's time.sleep() fails
with EINVAL); `sleepfix.c`, preloaded before it, passes monotonic sleeps to the kernel untouched.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")  # Debian's `libfaketime`, thread-safe
SLEEPFIX_C = Path(__file__).with_name("sleepfix.c")


def offset_text(offset_s: float) -> str:
    """An offset as libfaketime reads it: `+N` or `-N` seconds (relative to the real clock, which keeps running)."""
    if not math.isfinite(offset_s):
        raise ValueError(f"edge clock offset must be finite, got {offset_s}")
    return f"{offset_s:+.6f}".rstrip("0").rstrip(".")


class EdgeClock:
    """The timestamp file of one edge process and the offset written in it (seconds, + ahead of real time)."""

    def __init__(self, path: Path, offset_s: float = 0.0) -> None:
        self.path = path
        self.offset_s = 0.0
        self.set(offset_s)

    def set(self, offset_s: float) -> None:
        """Write the offset atomically (a reader sees the old file or the new one, never half of it)."""
        text = offset_text(offset_s) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".edge-clock-")
        try:
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(text)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.offset_s = float(offset_s)

    def as_dict(self) -> dict[str, object]:
        return {"file": str(self.path), "seconds": self.offset_s}


def build_sleepfix(folder: Path) -> Path:
    """Compile sleepfix.c with gcc into `folder` (once per folder); returns the shared object."""
    out = folder / "sleepfix.so"
    if out.exists():
        return out
    gcc = shutil.which("gcc")
    if gcc is None:
        raise RuntimeError("gcc is needed to build the libfaketime sleep fix (apt-get install gcc libc6-dev)")
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run([gcc, "-shared", "-fPIC", "-O2", "-o", str(out), str(SLEEPFIX_C), "-ldl"], check=True,
                   capture_output=True, timeout=120)
    return out


def preload_env(timestamp_file: Path, sleepfix: Path, cache_s: float | None = None) -> dict[str, str]:
    """The environment that makes a process follow `timestamp_file`: its wall clock is real time + the offset.

    `cache_s` None: the file is read on every clock call (FAKETIME_NO_CACHE=1, ~15 µs per time() call);
    otherwise a change takes effect within `cache_s` seconds (FAKETIME_CACHE_DURATION, whole seconds)."""
    if not LIBFAKETIME.exists():
        raise RuntimeError(f"{LIBFAKETIME} is missing: apt-get install libfaketime")
    if not timestamp_file.exists():  # without it libfaketime falls back to ~/.faketimerc or /etc/faketimerc
        raise RuntimeError(f"{timestamp_file} does not exist: write the offset first (EdgeClock)")
    env = {"LD_PRELOAD": f"{sleepfix}:{LIBFAKETIME}", "FAKETIME_TIMESTAMP_FILE": str(timestamp_file),
           "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    if cache_s is None:
        env["FAKETIME_NO_CACHE"] = "1"
    else:
        env["FAKETIME_CACHE_DURATION"] = str(max(1, math.ceil(cache_s)))
    return env


def remove_shm(pid: int) -> None:
    """libfaketime 0.9.10 leaves /dev/shm/faketime_shm_PID and sem.faketime_sem_PID behind when a Python process
    exits (it only cleans up after itself in some programs): remove those of a process that has ended."""
    for name in (f"faketime_shm_{pid}", f"sem.faketime_sem_{pid}"):
        Path("/dev/shm", name).unlink(missing_ok=True)
