"""A power cut for one process's files: what survives of a file is what it held at its last fsync.

`powercut.c` (built here with gcc) is preloaded into the process: before every write to a file under the folder
it logs what the write overwrites, after every fsync/fdatasync the file's size. After a kill -9 (the page cache
still holds everything), `PowerCut.cut()` undoes, file by file and newest first, every write made since the
file's last fsync and cuts the file to its size at that fsync (a file not fsynced since the process started:
to its content and size then), and deletes SQLite's -shm (shared memory, rebuilt from the WAL on the next
open). That is the file as the disk had it when the power went. SQLite overwrites its WAL in place after a
checkpoint, so cutting the tail alone would not do: the undo records are what make the model honest.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

SHIM_SOURCE = Path(__file__).with_name("powercut.c")


@dataclass(frozen=True)
class Undo:
    """What one write overwrote: the old bytes at `offset` (empty when it only appended)."""

    offset: int
    old: bytes


def build_shim(folder: Path) -> Path:
    """Compile the shim; a missing compiler is a failure (deploy/test.sh installs the Debian packages)."""
    compiler = shutil.which("gcc") or shutil.which("cc")
    assert compiler is not None, ("gcc is needed to build the power-cut shim (tests/faults/powercut.c): "
                                  "apt-get install gcc")
    out = folder / "powercut.so"
    done = subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(out),
                           str(SHIM_SOURCE), "-ldl"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"building the power-cut shim failed:\n{done.stderr}"
    return out


class PowerCut:
    """The files under `folder` of a process started with `env()`, as a power cut would leave them."""

    def __init__(self, shim: Path, folder: Path, log: Path) -> None:
        self.shim = shim
        self.folder = folder.resolve()
        self.log = log
        self.at_start: dict[Path, int] = {}

    def env(self) -> dict[str, str]:
        return {"LD_PRELOAD": str(self.shim), "POWERCUT_DIR": str(self.folder) + "/", "POWERCUT_LOG": str(self.log)}

    def arm(self) -> None:
        """Call just before the process starts: note every file's size, forget earlier fsyncs."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.at_start = {p: p.stat().st_size for p in self.folder.iterdir() if p.is_file()}
        self.log.write_text("")

    def journal(self) -> tuple[dict[Path, int], dict[Path, list[Undo]]]:
        """From the log: each file's size at its last sync (at start when none), and the writes since then."""
        synced = dict(self.at_start)
        pending: dict[Path, list[Undo]] = {}
        data = self.log.read_bytes()
        at = 0
        while True:
            end = data.find(b"\n", at)
            if end < 0:
                break  # a torn last record: its write never happened
            kind, *fields = data[at:end].decode().split(" ", 4 if data[at:at + 1] != b"S" else 2)
            at = end + 1
            if kind == "S":
                path = Path(fields[1])
                synced[path], pending[path] = int(fields[0]), []
                continue
            # W: offset, length, old length, path; T (a truncation): new size, old size, tail length, path. Either
            # way: the old bytes that belong at the first field's offset.
            offset, old_len, name = int(fields[0]), int(fields[2]), fields[3]
            old = data[at:at + old_len]
            if len(old) < old_len:
                break
            at += old_len
            pending.setdefault(Path(name), []).append(Undo(offset, old))
        return synced, pending

    def unsynced_writes(self) -> int:
        """Writes since their file's last fsync: what a power cut now would undo."""
        _, pending = self.journal()
        return sum(len(undo) for undo in pending.values())

    def cut(self) -> dict[str, tuple[int, int, int]]:
        """After the process was killed: every file as the disk held it at its last fsync. Returns per file
        (size before, size after, writes undone)."""
        synced, pending = self.journal()
        cut: dict[str, tuple[int, int, int]] = {}
        for path in sorted(self.folder.iterdir()):
            if not path.is_file():
                continue
            size = path.stat().st_size
            if path.name.endswith("-shm"):
                path.unlink()
                cut[path.name] = (size, 0, 0)
                continue
            undo = pending.get(path, [])
            keep = synced.get(path, 0)
            with path.open("r+b") as fh:
                for step in reversed(undo):
                    fh.seek(step.offset)
                    fh.write(step.old)
                fh.truncate(keep)
            if undo or size != keep:
                cut[path.name] = (size, keep, len(undo))
        return cut
