"""The agent's on-disk state in one SQLite file: counter baselines, sequence numbers and the outgoing spool.

A reading message, the counter baselines it advanced and the meter's next sequence number are written in
one transaction, fsynced (synchronous=FULL), so after a crash (kill -9 included) or a power cut the three agree:
no energy is lost or counted twice and no sequence number is reused. Messages leave the spool only when the broker has acknowledged them
(store-and-forward). All calls are blocking; the agent runs them on one worker thread.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from edge.readings import CounterState, MeterState

SCHEMA = """
CREATE TABLE IF NOT EXISTS counters (
    meter TEXT NOT NULL, quantity TEXT NOT NULL, raw TEXT NOT NULL, ts TEXT NOT NULL,
    PRIMARY KEY (meter, quantity));
CREATE TABLE IF NOT EXISTS seqs (meter TEXT PRIMARY KEY, next_seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS spool (
    id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, payload BLOB NOT NULL,
    meter TEXT NOT NULL, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

Policy = Literal["drop_oldest", "drop_newest"]


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message ready to spool: where it goes and what the meter's state becomes once it is kept."""

    meter: str
    topic: str
    payload: bytes
    seq: int
    state: MeterState


@dataclass(frozen=True, slots=True)
class SpoolRow:
    id: int
    topic: str
    payload: bytes
    meter: str
    seq: int


class Spool:
    """SQLite file with WAL and synchronous=FULL: what a commit returned survives kill -9 and a power cut."""

    def __init__(self, path: Path, max_messages: int = 1_000_000, policy: Policy = "drop_newest") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_messages = max_messages
        self.policy = policy
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # each commit fsynced: survives a killed process and a power cut. With NORMAL a power cut could roll back
        # the last commits while what they published had gone, and the rolled-back baseline would count it twice
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self.size = int(self._db.execute("SELECT COUNT(*) FROM spool").fetchone()[0])
        self.dropped = self._meta("dropped")

    def close(self) -> None:
        self._db.close()

    def _meta(self, key: str) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0

    # -- state ------------------------------------------------------------------------------------------
    def load_state(self) -> tuple[dict[str, MeterState], dict[str, int]]:
        """Counter baselines per meter and quantity, and each meter's next sequence number."""
        states: dict[str, MeterState] = {}
        for meter, quantity, raw, ts in self._db.execute("SELECT meter, quantity, raw, ts FROM counters"):
            states.setdefault(meter, {})[quantity] = CounterState(json.loads(raw), datetime.fromisoformat(ts))
        seqs = {meter: int(seq) for meter, seq in self._db.execute("SELECT meter, next_seq FROM seqs")}
        return states, seqs

    # -- writing ----------------------------------------------------------------------------------------
    def commit(self, batch: Sequence[Outgoing], acked: Iterable[int] = ()) -> list[int | None]:
        """Spool a batch and forget acknowledged rows in one transaction; returns each message's row id,
        None for a message that was not kept.

        When the spool is full: drop_newest refuses the new message (its meter's baseline stays, so the
        energy comes with the next kept message); drop_oldest deletes the oldest unsent message. Each
        drop is counted in `dropped`.
        """
        acked = list(acked)
        size_before = self.size
        cur = self._db.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            kept: list[int | None]
            if acked:
                cur.executemany("DELETE FROM spool WHERE id = ?", [(i,) for i in acked])
                self.size -= cur.rowcount if cur.rowcount > 0 else 0
            if self.size + len(batch) <= self.max_messages:
                kept, dropped = self._insert_all(cur, batch), 0
            else:
                kept, dropped = self._insert_making_room(cur, batch)
            if dropped:
                cur.execute("INSERT INTO meta (key, value) VALUES ('dropped', ?) "
                            "ON CONFLICT (key) DO UPDATE SET value = value + excluded.value", (dropped,))
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            self.size = size_before
            raise
        self.dropped += dropped
        return kept

    def _insert_all(self, cur: sqlite3.Cursor, batch: Sequence[Outgoing]) -> list[int | None]:
        """Room for the whole batch: a statement per table, not per message (each call into SQLite hands the
        GIL back and forth with the agent's loop). Returns the row ids in batch order."""
        if not batch:
            return []
        cur.executemany("INSERT INTO spool (topic, payload, meter, seq) VALUES (?, ?, ?, ?)",
                        [(out.topic, out.payload, out.meter, out.seq) for out in batch])
        # AUTOINCREMENT ids only grow and the write lock is ours: the newest len(batch) ids are these rows
        newest = cur.execute("SELECT id FROM spool ORDER BY id DESC LIMIT ?", (len(batch),)).fetchall()
        last = {out.meter: out for out in batch}  # a meter's last message carries its whole state
        self._save_state(cur, last.values())
        self.size += len(batch)
        return [int(r[0]) for r in reversed(newest)]

    def _insert_making_room(self, cur: sqlite3.Cursor, batch: Sequence[Outgoing]) -> tuple[list[int | None], int]:
        """The spool is (or gets) full: message by message, with the policy."""
        kept: list[int | None] = []
        dropped = 0
        for out in batch:
            if self.size >= self.max_messages:
                if self.policy == "drop_newest":
                    kept.append(None)
                    dropped += 1
                    continue
                cur.execute("DELETE FROM spool WHERE id = (SELECT MIN(id) FROM spool)")
                self.size -= 1
                dropped += 1
            cur.execute("INSERT INTO spool (topic, payload, meter, seq) VALUES (?, ?, ?, ?)",
                        (out.topic, out.payload, out.meter, out.seq))
            kept.append(cur.lastrowid)
            self._save_state(cur, [out])
            self.size += 1
        return kept, dropped

    @staticmethod
    def _save_state(cur: sqlite3.Cursor, outs: Iterable[Outgoing]) -> None:
        """Counter baselines and next sequence numbers after these messages (one per meter)."""
        outs = list(outs)
        cur.executemany(
            "INSERT INTO counters (meter, quantity, raw, ts) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (meter, quantity) DO UPDATE SET raw = excluded.raw, ts = excluded.ts",
            [(out.meter, q, json.dumps(s.raw), s.ts.isoformat()) for out in outs for q, s in out.state.items()])
        cur.executemany("INSERT INTO seqs (meter, next_seq) VALUES (?, ?) "
                        "ON CONFLICT (meter) DO UPDATE SET next_seq = excluded.next_seq",
                        [(out.meter, out.seq + 1) for out in outs])

    def forget(self, acked: Iterable[int]) -> None:
        self.commit((), acked)

    # -- reading ----------------------------------------------------------------------------------------
    def fetch(self, after_id: int, limit: int, upto_id: int | None = None) -> list[SpoolRow]:
        """Rows with id > after_id (and <= upto_id), oldest first."""
        if upto_id is None:
            rows = self._db.execute("SELECT id, topic, payload, meter, seq FROM spool WHERE id > ? "
                                    "ORDER BY id LIMIT ?", (after_id, limit))
        else:
            rows = self._db.execute("SELECT id, topic, payload, meter, seq FROM spool WHERE id > ? AND id <= ? "
                                    "ORDER BY id LIMIT ?", (after_id, upto_id, limit))
        return [SpoolRow(int(i), t, bytes(p), m, int(s)) for i, t, p, m, s in rows]

    def max_id(self) -> int:
        row = self._db.execute("SELECT MAX(id) FROM spool").fetchone()
        return int(row[0]) if row and row[0] is not None else 0
