"""A child process for the power-cut check: commits readings of one meter to the edge's real spool, one
transaction each, and prints `SEQ RAW` after each commit (the moment the agent would publish the message).

    python -m tests.faults.spool_writer STATE_DIR shipped|normal|full

`normal` and `full` set `PRAGMA synchronous` on the spool's connection (NORMAL: what the spool had before the
fault suite); `shipped` leaves the spool as the edge opens it. Runs until killed.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from calc import topics
from edge.readings import CounterState
from edge.spool import Outgoing, Spool

METER = "press-1"
QUANTITY = "active_energy_import"
WH_PER_READING = 1000


def main(argv: list[str]) -> int:
    state_dir, mode = Path(argv[0]), argv[1]
    spool = Spool(state_dir / "edge.sqlite")
    if mode in ("normal", "full"):
        spool._db.execute(f"PRAGMA synchronous={mode.upper()}")
    states, seqs = spool.load_state()
    seq = seqs.get(METER, 0)
    raw = int(states[METER][QUANTITY].raw) if METER in states else 0
    t0 = datetime(2026, 6, 1, tzinfo=UTC)
    topic = topics.reading("powercut", "pressing", METER)
    while True:
        raw += WH_PER_READING
        ts = t0 + timedelta(seconds=seq)
        state = {QUANTITY: CounterState(raw, ts)}
        payload = f'{{"meter": "{METER}", "seq": {seq}, "counter_wh": {raw}}}'.encode()
        spool.commit([Outgoing(METER, topic, payload, seq, state)])
        print(seq, raw, flush=True)
        seq += 1
        time.sleep(0.002)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
