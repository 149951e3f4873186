"""The agent's on-disk state in one SQLite file: counter states, sequence numbers and the outgoing spool.

A reading message, the counter baselines it advanced and the meter's next sequence number are written in
one transaction, fsynced (synchronous=FULL), so after a crash or a power cut the three agree: no energy is lost
or counted twice and no sequence number is reused. A message leaves the spool only when it is confirmed: by
ingest's acknowledgement of its (meter, seq), or by the broker's PUBACK with `confirm = "broker"`.

The fence is the highest row id that may have been handed to the publisher, stored before any row beyond it is
published (raised many rows at a time, in the writer's own transaction where it can be). Rows above it were
certainly never published, so only they may be merged when the spool is full (edge.compaction). All calls are
blocking; the agent runs them on one worker thread.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import msgspec

from calc import counters
from calc.reading_codec import WireError
from edge.compaction import merge
from edge.readings import CounterState, MeterState

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS counters (
    meter TEXT NOT NULL, quantity TEXT NOT NULL, raw TEXT NOT NULL, ts TEXT NOT NULL, state TEXT,
    PRIMARY KEY (meter, quantity));
CREATE TABLE IF NOT EXISTS seqs (meter TEXT PRIMARY KEY, next_seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS spool (
    id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, payload BLOB NOT NULL,
    meter TEXT NOT NULL, seq INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS spool_meter_seq ON spool (meter, seq);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
_track_encoder = msgspec.json.Encoder()
_track_decoder = msgspec.json.Decoder(counters.CounterState)  # fields an older agent did not write take defaults
COUNTERS = ("refused", "compactions", "merged")  # durable counts, in meta
SCAN_ROWS = 512  # rows read at a time while compacting


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


@dataclass(slots=True)
class Confirmed:
    """Messages to delete: by row id (the broker's PUBACK) and by inclusive (meter, first seq, last seq) (ingest's
    acknowledgement). `rows`: the ids of the awaited messages these cover, for the outbox's bookkeeping."""

    ids: list[int] = field(default_factory=list)
    ranges: list[tuple[str, int, int]] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.ids or self.ranges)


class Spool:
    """SQLite file with WAL and synchronous=FULL: what a commit returned survives kill -9 and a power cut."""

    def __init__(self, path: Path, max_messages: int = 1_000_000) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_messages = max_messages
        # the fence moves this many rows ahead at a time: one durable write per step, and at most a step of
        # unpublished rows that compaction may not touch
        self.fence_step = max(1, min(1024, max_messages // 16))
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # each commit fsynced: survives a killed process and a power cut. With NORMAL a power cut could roll back
        # the last commits while what they published had gone, and the rolled-back baseline would count it twice
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        if "state" not in {row[1] for row in self._db.execute("PRAGMA table_info(counters)")}:
            # a spool of an agent before the counter tracker's full state: its baselines stay (state NULL)
            self._db.execute("ALTER TABLE counters ADD COLUMN state TEXT")
        self.size = int(self._db.execute("SELECT COUNT(*) FROM spool").fetchone()[0])
        fence = self._meta("fence")
        if fence is None:  # a spool of an agent that kept no fence: any of its rows may have been published
            fence = self.max_id()
            self._db.execute("INSERT INTO meta (key, value) VALUES ('fence', ?)", (fence,))
        self.fence = fence
        self.counts = {key: self._meta(key) or 0 for key in COUNTERS}
        self._sweep = 0  # where the last compaction stopped

    def close(self) -> None:
        self._db.close()

    def _meta(self, key: str) -> int | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else None

    @property
    def refused(self) -> int:
        """Messages refused because the spool was full and nothing could be merged (their energy stayed in the
        meter's baseline and came with its next kept message)."""
        return self.counts["refused"]

    @property
    def compactions(self) -> int:
        return self.counts["compactions"]

    @property
    def merged(self) -> int:
        """Messages merged into others (rows freed by compactions)."""
        return self.counts["merged"]

    # -- state ------------------------------------------------------------------------------------------
    def load_state(self) -> tuple[dict[str, MeterState], dict[str, int]]:
        """Counter baselines per meter and quantity, and each meter's next sequence number."""
        states: dict[str, MeterState] = {}
        for meter, quantity, raw, ts, full in self._db.execute("SELECT meter, quantity, raw, ts, state FROM counters"):
            track = _track_decoder.decode(full) if full is not None else None
            states.setdefault(meter, {})[quantity] = CounterState(json.loads(raw), datetime.fromisoformat(ts), track)
        seqs = {meter: int(seq) for meter, seq in self._db.execute("SELECT meter, next_seq FROM seqs")}
        return states, seqs

    # -- writing ----------------------------------------------------------------------------------------
    def commit(self, batch: Sequence[Outgoing], confirmed: Confirmed | None = None,
               publishable: bool = False) -> list[int | None]:
        """Spool a batch and delete confirmed messages in one transaction; returns each message's row id, None for
        a message that was not kept. `publishable`: the rows go straight to the publisher, so the fence is raised
        past them in this same transaction.

        When the spool is full, never-published messages are merged (compaction) to make room; what still does
        not fit is refused, and its meter's baseline stays, so the energy comes with the next kept message.
        """
        size_before, counts_before, sweep_before = self.size, dict(self.counts), self._sweep
        fence = self.fence
        cur = self._db.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            if confirmed:
                self._delete(cur, confirmed)
            need = self.size + len(batch) - self.max_messages
            if need > 0:
                self._compact(cur, need)
            if self.size + len(batch) <= self.max_messages:
                kept = self._insert_all(cur, batch)
            else:
                kept = self._insert_some(cur, batch)
            newest = max((i for i in kept if i is not None), default=0)
            if publishable and newest > fence:
                fence = newest + self.fence_step
                self._write_fence(cur, fence)
            changed = [(k, v) for k, v in self.counts.items() if v != counts_before[k]]
            cur.executemany("INSERT INTO meta (key, value) VALUES (?, ?) "
                            "ON CONFLICT (key) DO UPDATE SET value = excluded.value", changed)
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            self.size, self.counts, self._sweep = size_before, counts_before, sweep_before
            raise
        self.fence = fence  # only once it is durable: the loop reads it to hand rows over
        return kept

    def _delete(self, cur: sqlite3.Cursor, confirmed: Confirmed) -> None:
        if confirmed.ids:
            cur.executemany("DELETE FROM spool WHERE id = ?", [(i,) for i in confirmed.ids])
            self.size -= max(cur.rowcount, 0)
        if confirmed.ranges:
            cur.executemany("DELETE FROM spool WHERE meter = ? AND seq BETWEEN ? AND ?", confirmed.ranges)
            self.size -= max(cur.rowcount, 0)

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

    def _insert_some(self, cur: sqlite3.Cursor, batch: Sequence[Outgoing]) -> list[int | None]:
        """The spool is full even after compaction: message by message while there is room, then refuse (and once
        a meter's message is refused, its later ones too: each carries its energy relative to the one before)."""
        kept: list[int | None] = []
        refused: set[str] = set()
        for out in batch:
            if self.size >= self.max_messages or out.meter in refused:
                refused.add(out.meter)
                kept.append(None)
                self.counts["refused"] += 1
                continue
            cur.execute("INSERT INTO spool (topic, payload, meter, seq) VALUES (?, ?, ?, ?)",
                        (out.topic, out.payload, out.meter, out.seq))
            kept.append(cur.lastrowid)
            self._save_state(cur, [out])
            self.size += 1
        return kept

    def _compact(self, cur: sqlite3.Cursor, need: int) -> None:
        """Merge pairs of a meter's consecutive never-published messages (above the fence) until at least `need`
        rows (and a sixteenth of the spool, so that this is not done for every batch) are free. Each compaction goes
        on where the last one stopped, wrapping round to the fence, so a long outage loses resolution evenly
        (every sweep halves it) rather than piling into its oldest message. A pair keeps its first row and seq."""
        target = max(need, self.max_messages // 16)
        freed = 0
        first: dict[str, tuple[int, bytes]] = {}  # meter -> the row waiting for its pair
        after = max(self.fence, self._sweep)
        wrapped = after == self.fence
        while freed < target:
            rows = cur.execute("SELECT id, meter, payload FROM spool WHERE id > ? ORDER BY id LIMIT ?",
                               (after, SCAN_ROWS)).fetchall()
            if not rows:
                if wrapped:
                    break
                wrapped, after, first = True, self.fence, {}  # pairs never span the end and the start
                continue
            for row_id, meter, payload in rows:
                after = row_id
                pair = first.pop(meter, None)
                if pair is None:
                    first[meter] = (row_id, bytes(payload))
                    continue
                try:
                    merged = merge([pair[1], bytes(payload)])
                except (msgspec.DecodeError, msgspec.ValidationError, WireError, ValueError) as exc:
                    log.warning("spool: messages %d and %d of %s not merged: %s", pair[0], row_id, meter, exc)
                    first[meter] = (row_id, bytes(payload))
                    continue
                cur.execute("UPDATE spool SET payload = ? WHERE id = ?", (merged, pair[0]))
                cur.execute("DELETE FROM spool WHERE id = ?", (row_id,))
                freed += 1
                if freed >= target:
                    break
        self._sweep = after
        if freed:
            self.size -= freed
            self.counts["compactions"] += 1
            self.counts["merged"] += freed

    @staticmethod
    def _save_state(cur: sqlite3.Cursor, outs: Iterable[Outgoing]) -> None:
        """Counter baselines and next sequence numbers after these messages (one per meter)."""
        outs = list(outs)
        cur.executemany(
            "INSERT INTO counters (meter, quantity, raw, ts, state) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (meter, quantity) DO UPDATE SET raw = excluded.raw, ts = excluded.ts, state = excluded.state",
            [(out.meter, q, json.dumps(s.raw), s.ts.isoformat(),
              _track_encoder.encode(s.track).decode() if s.track is not None else None)
             for out in outs for q, s in out.state.items()])
        cur.executemany("INSERT INTO seqs (meter, next_seq) VALUES (?, ?) "
                        "ON CONFLICT (meter) DO UPDATE SET next_seq = excluded.next_seq",
                        [(out.meter, out.seq + 1) for out in outs])

    @staticmethod
    def _write_fence(cur: sqlite3.Cursor, fence: int) -> None:
        cur.execute("INSERT INTO meta (key, value) VALUES ('fence', ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (fence,))

    def forget(self, confirmed: Confirmed) -> None:
        self.commit((), confirmed)

    # -- reading ----------------------------------------------------------------------------------------
    def take(self, after_id: int, limit: int, upto_id: int) -> list[SpoolRow]:
        """Rows with after_id < id <= upto_id, oldest first, for the publisher: the fence is raised past them
        (durably) before they are returned."""
        rows = self.fetch(after_id, limit, upto_id)
        self._cover(rows)
        return rows

    def _cover(self, rows: Sequence[SpoolRow]) -> None:
        newest = max((r.id for r in rows), default=0)
        if newest <= self.fence:
            return
        cur = self._db.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            self._write_fence(cur, newest + self.fence_step)
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        self.fence = newest + self.fence_step

    def fetch(self, after_id: int, limit: int, upto_id: int | None = None) -> list[SpoolRow]:
        """Rows with id > after_id (and <= upto_id), oldest first (to look at; `take` them to publish)."""
        if upto_id is None:
            rows = self._db.execute("SELECT id, topic, payload, meter, seq FROM spool WHERE id > ? "
                                    "ORDER BY id LIMIT ?", (after_id, limit))
        else:
            rows = self._db.execute("SELECT id, topic, payload, meter, seq FROM spool WHERE id > ? AND id <= ? "
                                    "ORDER BY id LIMIT ?", (after_id, upto_id, limit))
        return [SpoolRow(int(i), t, bytes(p), m, int(s)) for i, t, p, m, s in rows]

    def rows(self, ids: Sequence[int]) -> list[SpoolRow]:
        """The rows with these ids that are still spooled, in id order (messages to publish again)."""
        out: list[SpoolRow] = []
        for start in range(0, len(ids), 500):
            chunk = list(ids[start:start + 500])
            marks = ",".join("?" * len(chunk))
            out += [SpoolRow(int(i), t, bytes(p), m, int(s)) for i, t, p, m, s in self._db.execute(
                f"SELECT id, topic, payload, meter, seq FROM spool WHERE id IN ({marks})", chunk)]
        out.sort(key=lambda r: r.id)
        self._cover(out)  # they were published already, so this never writes; but a row handed out is fenced
        return out

    def max_id(self) -> int:
        row = self._db.execute("SELECT MAX(id) FROM spool").fetchone()
        return int(row[0]) if row and row[0] is not None else 0
