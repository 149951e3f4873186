"""The API database's audit log (clause 7.5): append-only (triggers refuse UPDATE and DELETE) and hash-chained,
each row's SHA-256 covering the previous row's hash; appended in the transaction of the change it records."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from typing import Any, Final

from records.base import Repository

GENESIS = "0" * 64

HEAD: Final = "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1"
INSERT: Final = ("INSERT INTO audit (seq, ts, site, actor, action, entity, entity_id, body, prev_hash, hash) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
ALL: Final = "SELECT * FROM audit ORDER BY seq"
# (site, after_seq, limit) or (site, after_seq, entity, limit)
PAGE: Final = "SELECT * FROM audit WHERE site = ? AND seq > ? ORDER BY seq LIMIT ?"
PAGE_OF_ENTITY: Final = "SELECT * FROM audit WHERE site = ? AND seq > ? AND entity = ? ORDER BY seq LIMIT ?"


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def row_hash(prev_hash: str, seq: int, ts: str, site: str, actor: str, action: str, entity: str, entity_id: str,
             body: str) -> str:
    """SHA-256 over the previous row's hash and this row's content: changing any row breaks every later link."""
    content = _canonical([prev_hash, seq, ts, site, actor, action, entity, entity_id, body])
    return hashlib.sha256(content.encode()).hexdigest()


def append(conn: sqlite3.Connection, ts: str, site: str, actor: str, action: str, entity: str, entity_id: str,
           body: Any) -> int:
    """Append one row inside the caller's transaction, linked to the current head; returns its sequence number."""
    last: sqlite3.Row | None = conn.execute(HEAD).fetchone()
    seq = (last["seq"] + 1) if last else 1
    prev = last["hash"] if last else GENESIS
    text = _canonical(body)
    digest = row_hash(prev, seq, ts, site, actor, action, entity, entity_id, text)
    conn.execute(INSERT, (seq, ts, site, actor, action, entity, entity_id, text, prev, digest))
    return seq


@dataclass(frozen=True, slots=True)
class ChainReport:
    ok: bool
    rows: int
    first_bad_seq: int | None
    reason: str | None
    head: str


class AuditLog(Repository):
    """Reading the log: pages of a site's rows, and the check of the whole chain."""

    def page(self, site: str, after_seq: int, limit: int, entity: str | None = None) -> list[dict[str, Any]]:
        """The site's rows after `after_seq`, oldest first (only `entity`'s when given)."""
        rows = (self.db.query(PAGE_OF_ENTITY, (site, after_seq, entity, limit)) if entity
                else self.db.query(PAGE, (site, after_seq, limit)))
        return [{k: r[k] for k in r.keys()} for r in rows]  # noqa: SIM118 (sqlite3.Row has no items())

    def verify(self) -> ChainReport:
        """Recompute every link; the first row whose content or link does not match is reported."""
        rows = self.db.query(ALL)
        prev = GENESIS
        expected_seq = 1
        for r in rows:
            if r["seq"] != expected_seq:
                return ChainReport(False, len(rows), r["seq"], f"row {expected_seq} is missing", prev)
            if r["prev_hash"] != prev:
                return ChainReport(False, len(rows), r["seq"], "link to the previous row does not match", prev)
            digest = row_hash(prev, r["seq"], r["ts"], r["site"], r["actor"], r["action"], r["entity"],
                              r["entity_id"], r["body"])
            if digest != r["hash"]:
                return ChainReport(False, len(rows), r["seq"], "content does not match its hash", prev)
            prev = r["hash"]
            expected_seq += 1
        return ChainReport(True, len(rows), None, None, prev)
