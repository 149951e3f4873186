"""socat as a stand-in RS-485 line for the serial tests: a pty where the simulated meters answer, joined to a
second pty (a pty pair) or to another socat address such as a TCP listener (a transparent serial converter)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path


class Socat:
    """`server` is the pty the simulator opens; `client` the other pty (None when joined to `other` instead)."""

    def __init__(self, directory: Path, other: str | None = None) -> None:
        self.server = str(directory / "ttySIM")
        self.client = None if other is not None else str(directory / "ttyCLIENT")
        self.other = other if other is not None else f"pty,raw,echo=0,link={self.client}"
        self.log = directory / "socat.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Socat:
        socat = shutil.which("socat")
        assert socat, "socat is not installed (apt-get install socat)"
        with self.log.open("wb") as log:  # a file, not a pipe: nobody drains socat's messages while a test runs
            self.proc = subprocess.Popen([socat, "-d", "-d", f"pty,raw,echo=0,link={self.server}", self.other],
                                         stdout=subprocess.DEVNULL, stderr=log)
        ptys = [p for p in (self.server, self.client) if p is not None]
        deadline = time.monotonic() + 10
        while not all(os.path.exists(p) for p in ptys):
            assert self.proc.poll() is None, f"socat exited: {self.log.read_text(errors='replace')}"
            assert time.monotonic() < deadline, f"socat made no {' and '.join(ptys)} in 10 s"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(5)
