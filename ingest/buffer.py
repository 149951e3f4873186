"""The bounded on-disk buffer: received messages kept (durably, before their ack) while the store is down.

A small SQLite file of raw messages in arrival order. When it is full, ingest stops acknowledging,
so the broker keeps the rest: back-pressure, never a drop. Draining converts the raw messages again,
so a buffered message is validated and stored exactly like a live one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

from ingest.errors import IngestError
from ingest.mqtt import Received

SCHEMA = """
CREATE TABLE IF NOT EXISTS buffered (
    id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, payload BLOB NOT NULL, received_us INTEGER NOT NULL
);
"""


class DiskBufferError(IngestError, RuntimeError):
    """The buffer file cannot be written (disk full, permissions): treat as full."""


class DiskBuffer:
    """FIFO of raw messages on disk, bounded in bytes of payload."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        count, size = self._db.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM buffered").fetchone()
        self.count = int(count)
        self.bytes = int(size)

    def has_room(self, items: Sequence[Received]) -> bool:
        return self.bytes + sum(len(i.payload) for i in items) <= self.max_bytes

    def append(self, items: Sequence[Received]) -> None:
        """Keep messages durably (committed with a full sync) before they are acknowledged."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("INSERT INTO buffered (topic, payload, received_us) VALUES (?, ?, ?)",
                                 [(i.topic, i.payload, i.received_us) for i in items])
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise DiskBufferError(f"buffer {self.path}: {exc}") from exc
        self.count += len(items)
        self.bytes += sum(len(i.payload) for i in items)

    def peek(self, limit: int) -> list[tuple[int, str, bytes, int]]:
        """The oldest messages: (id, topic, payload, received_us)."""
        rows = self._db.execute("SELECT id, topic, payload, received_us FROM buffered ORDER BY id LIMIT ?",
                                (limit,)).fetchall()
        return [(int(r[0]), str(r[1]), bytes(r[2]), int(r[3])) for r in rows]

    def remove(self, rows: Sequence[tuple[int, str, bytes, int]]) -> None:
        """Forget messages once the store has them (a crash before this replays them: writes are idempotent)."""
        if not rows:
            return
        self._db.execute("BEGIN IMMEDIATE")
        self._db.execute("DELETE FROM buffered WHERE id <= ?", (max(r[0] for r in rows),))
        self._db.execute("COMMIT")
        self.count -= len(rows)
        self.bytes -= sum(len(r[2]) for r in rows)
        if self.count <= 0:
            self.count, self.bytes = 0, 0

    def close(self) -> None:
        self._db.close()
