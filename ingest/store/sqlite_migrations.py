"""Versioned SQLite files, for the store's file and the API's database alike: the version in `PRAGMA user_version`,
an ordered list of steps that bring an older file up, run in one transaction at open; a newer file refused."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence

from ingest.errors import IngestError

Step = Callable[[sqlite3.Connection], None]


class SchemaError(IngestError, RuntimeError):
    """A file this code cannot use (written by a newer version)."""


def statements(script: str) -> Iterator[str]:
    """The SQL statements of a script, one by one (a trigger's body with its own semicolons stays whole)."""
    text = ""
    for line in script.splitlines(keepends=True):
        text += line
        if sqlite3.complete_statement(text):
            yield text.strip()
            text = ""
    if text.strip():
        raise ValueError(f"incomplete SQL statement: {text.strip()[:80]!r}")


def sql_step(script: str) -> Step:
    """A step that runs a script's statements (inside the migration's transaction, unlike executescript)."""

    def run(db: sqlite3.Connection) -> None:
        for statement in statements(script):
            db.execute(statement)

    return run


def migrate(db: sqlite3.Connection, steps: Sequence[tuple[int, Step]], what: str, finish: Step | None = None) -> int:
    """Bring the file to the last version of `steps`: every step above the file's version, in order, then `finish`
    (e.g. create what is missing), then the new version, all in one transaction (a failure leaves the file as it
    was). A file of a newer version raises SchemaError, untouched. Returns the version the file had. Two processes
    opening an old file at once: the second waits for the first's write lock, then finds the file current."""
    target = steps[-1][0]
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if version == target:
        return version
    db.execute("BEGIN IMMEDIATE")
    try:
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        if version > target:
            raise SchemaError(f"{what}: schema version {version} is newer than this carbonwatch knows ({target}): "
                              f"open it with the release that wrote it, or a later one")
        if version < target:
            for step_version, step in steps:
                if version < step_version:
                    step(db)
            if finish is not None:
                finish(db)
            db.execute(f"PRAGMA user_version = {target}")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return version
