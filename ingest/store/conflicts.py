"""What every store says about a key it sees again and about input it dead-letters: one classification (new,
duplicate, conflict), one reason text for each refusal and one dead-letter topic, shared by SQLite and InfluxDB.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from enum import Enum
from typing import Any

from ingest.points import (
    CONTENT_IDX,
    CONTENT_NAMES,
    METER,
    QUANTITY,
    SEQ,
    TS,
    Batch,
    DeadLetter,
    HeldRow,
    Point,
    us_to_iso,
)

TOPIC_ROOT = "carbonwatch/v1"
HELD_REASON_MAX = 1000  # characters of a held record's conflict reason (it quotes the stored content)


class Seen(Enum):
    """A key met again: nothing stored there, the same content (a replay: stored once), or other content."""

    NEW = "new"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"


def same(a: Sequence[Any], b: Sequence[Any]) -> bool:
    """Field-by-field equality of stored and offered content: numbers as floats (a store may answer 2 for 2.0),
    a missing text (InfluxDB drops empty fields) equal to an empty one."""
    for x, y in zip(a, b, strict=True):
        if isinstance(x, float) or isinstance(y, float):
            if x is None or y is None or float(x) != float(y):
                return False
        elif (x or "") != (y or ""):
            return False
    return True


def classify(stored: Sequence[Any] | None, content: Sequence[Any]) -> Seen:
    """What a write of `content` at a key is, given what is `stored` there (None: nothing)."""
    if stored is None:
        return Seen.NEW
    return Seen.DUPLICATE if same(stored, content) else Seen.CONFLICT


def content_of(p: Point) -> tuple[Any, ...]:
    """The columns of a point compared when its key is seen again."""
    return tuple(p[i] for i in CONTENT_IDX)


def reading_topic(batch: Batch, meter: str) -> str:
    """The reading topic a meter's point came in on (for its dead letter); empty for a meter the batch lacks."""
    info = batch.meters.get(meter) or batch.variables.get(meter)
    return f"{TOPIC_ROOT}/{info.site}/{info.area}/{meter}/reading" if info else ""


def site_of_topic(topic: str) -> str:
    """The site of a carbonwatch topic, empty for any other (dead letters are kept per site)."""
    parts = topic.split("/")
    return parts[2] if len(parts) > 2 and "/".join(parts[:2]) == TOPIC_ROOT else ""


def dead_point(now_us: int, p: Point, batch: Batch, reason: str) -> DeadLetter:
    """A point refused for `reason`, as a dead letter carrying the point as JSON."""
    return DeadLetter(now_us, reading_topic(batch, p[METER]), json.dumps(batch.describe(p)).encode(), reason,
                      p[METER], p[SEQ])


def point_conflict(p: Point, stored: Sequence[Any]) -> str:
    """Why a point is refused: its key holds a stored point with other content (named field by field)."""
    diff = ", ".join(f"{n}: stored {a!r}, got {b!r}" for n, a, b in zip(CONTENT_NAMES, stored, content_of(p),
                                                                          strict=True) if not same((a,), (b,)))
    return (f"conflict: meter {p[METER]!r} {p[QUANTITY]} at {us_to_iso(p[TS])} is already stored with other "
            f"content; kept the stored point; differs in {diff}")


def held_conflict(h: HeldRow, what: str, stored: Sequence[Any]) -> str:
    """Why a held record is refused: its key holds a stored `what` ("held record" or "point") with other content."""
    return (f"conflict: meter {h.meter!r} {h.quantity} at {us_to_iso(h.ts_us)} is already stored as a {what} with "
            f"other content ({tuple(stored)!r}); kept the stored one; this one would have been held: "
            f"{h.reason}")[:HELD_REASON_MAX]


def older_than_kept(ts_us: int, cutoff_us: int) -> str:
    """Why a point older than the raw points retention kept is not counted."""
    return (f"ts: {us_to_iso(ts_us)} is older than the raw points kept (from {us_to_iso(cutoff_us)}, retention): a "
            f"replay could not be told from a new reading, so it is not counted")
