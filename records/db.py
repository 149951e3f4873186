"""Opening the API's own SQLite database: read-write for the API (schema migrated at open, one write transaction
at a time, each change with its audit row), read-only for SCADA (opened when the file appears, never written).

Rules, alerts, allowances, offsets, contractual instruments (certificates, PPAs), factor-set uploads and key
revocations live here (documented information, clause 7.5); every change is written in the same transaction as
its audit row (records.audit), so the log and the data cannot disagree. The file carries its schema version
(PRAGMA user_version); records.schema.MIGRATIONS bring an older file to SCHEMA_VERSION in one transaction at
open, and a file of a newer version is refused (ingest.store.sqlite_migrations.SchemaError).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ingest.store.sqlite_migrations import migrate
from records import audit
from records.base import Params, RecordsUnreadable
from records.schema import MIGRATIONS


def now_iso(clock: Callable[[], datetime] | None = None) -> str:
    return (clock or (lambda: datetime.now(UTC)))().astimezone(UTC).isoformat()


class ApiDb:
    """The API's read-write connection; calls are serialised by a lock (the API's write volume is tiny)."""

    def __init__(self, path: Path, clock: Callable[[], datetime] | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.lock = threading.RLock()
        self.conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30.0)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA busy_timeout=30000")
        try:
            migrate(self.conn, MIGRATIONS, f"API database {self.path}")
        except BaseException:
            self.conn.close()
            raise

    def now(self) -> str:
        return now_iso(self.clock)

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE ... COMMIT, rolled back on any error); the repositories' write
        methods take the connection it yields."""
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def query(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        with self.lock:
            return self.conn.execute(sql, params).fetchall()

    def audit(self, conn: sqlite3.Connection, site: str, actor: str, action: str, entity: str, entity_id: str,
              body: Any) -> int:
        """Append one audit row inside the caller's transaction (records.audit.append); returns its number."""
        return audit.append(conn, self.now(), site, actor, action, entity, entity_id, body)

    def close(self) -> None:
        with self.lock:
            self.conn.close()


class ReadOnlyDb:
    """A read-only connection to the API database, opened when the file appears. A file that does not exist yet
    (the API has not started) or has no schema yet reads as empty, exactly what the API would report then."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection | None:
        if self._conn is None:
            if not self.path.exists():
                return None
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False, timeout=10.0)
            conn.row_factory = sqlite3.Row
            self._conn = conn
        return self._conn

    def query(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        """The rows, or none before the API made the file; raises RecordsUnreadable (and reconnects next time)."""
        with self._lock:
            conn = self._connect()
            if conn is None:
                return []
            try:
                return conn.execute(sql, params).fetchall()
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):  # the API has created the file but not its schema yet
                    return []
                self._drop(conn)
                raise RecordsUnreadable(f"{self.path}: {exc}") from exc
            except sqlite3.DatabaseError as exc:
                self._drop(conn)
                raise RecordsUnreadable(f"{self.path}: {exc}") from exc

    def _drop(self, conn: sqlite3.Connection) -> None:
        self._conn = None
        conn.close()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._drop(self._conn)
