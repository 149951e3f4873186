"""The edge agent's state file read from outside (read-only), only to know that an outage has lasted long enough:
how many messages the spool holds and how far the meters' counter baselines have moved.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from tests.faults.plant import METERS
from tests.faults.system import SiteSystem


def _spool_query(system: SiteSystem, sql: str) -> int:
    path = system.state_dir / "edge.sqlite"
    if not path.exists():
        return 0
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        row = con.execute(sql).fetchone()
        return int(row[0] or 0)
    except sqlite3.Error:
        return 0
    finally:
        con.close()


def spooled(system: SiteSystem) -> int:
    return _spool_query(system, "SELECT COUNT(*) FROM spool")


def readings_made(system: SiteSystem) -> int:
    """Messages the edge has made (sum of the meters' next sequence numbers)."""
    return _spool_query(system, "SELECT SUM(next_seq) FROM seqs")


def readings_since(system: SiteSystem, moment: datetime) -> float:
    """Seconds of readings every meter has had kept since `moment`: its counter baseline's time, which moves with
    every reading the spool keeps, merged ones included (a merge adds no sequence number)."""
    path = system.state_dir / "edge.sqlite"
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        stamps = [datetime.fromisoformat(ts) for (ts,) in con.execute("SELECT MAX(ts) FROM counters GROUP BY meter")]
    except sqlite3.Error:
        return 0.0
    finally:
        con.close()
    if len(stamps) < len(METERS):
        return 0.0
    return min((ts - moment).total_seconds() for ts in stamps)
