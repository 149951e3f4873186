"""A manual entry's message and its void through ingest's converter into a real SQLite store: the entry counts,
the void takes it back, a re-sent message is a duplicate, and a `void` flag on a meter's energy is dead-lettered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from calc import topics
from calc.entries import Entry, message
from calc.plant import parse_plant
from calc.schema import encode
from ingest.convert import Converter
from ingest.store.sqlite import SqliteStore
from tests.ingest.helpers import counter_sample
from tests.ingest.helpers import message as reading

PLANT = parse_plant({
    "site": {"id": "s1", "region": "CN", "start": "2026-01-01T00:00:00Z"},
    "meters": [{"id": "m1", "area": "press", "carrier": "electricity"}],
    "variables": [{"id": "out-1", "area": "press", "kind": "production", "quantity": "production",
                   "unit": "count"}],
})
T = datetime(2026, 3, 2, 6, tzinfo=UTC)
NOW = datetime(2026, 4, 1, tzinfo=UTC).timestamp()


def test_entry_void_and_resend_through_the_converter(tmp_path: Path) -> None:
    conv = Converter(PLANT, clock=lambda: NOW)
    store = SqliteStore(tmp_path / "store.sqlite")
    topic = topics.reading("s1", "press", "out-1")
    entry = Entry(1, PLANT.variables[0], T, T + timedelta(hours=8), 4200.0, 0)

    def write(payload: bytes) -> int:
        out = conv.convert(topic, payload)
        assert out.dead == []
        return store.write(conv.batch([out])).duplicates

    def total() -> float | None:
        rows = store.variable_totals("s1", T, T + timedelta(days=1))
        return rows[0].total if rows else None

    try:
        write(encode(message(entry, voided=False)))
        assert total() == 4200.0
        assert write(encode(message(entry, voided=False))) == 32 and total() == 4200.0
        write(encode(message(entry, voided=True)))      # its entry samples are duplicates, its void ones new
        assert total() == 0.0
        assert write(encode(message(entry, voided=True))) == 64 and total() == 0.0
        out = conv.convert(topics.reading("s1", "press", "m1"),
                           reading("m1", 0, [counter_sample(T, 5.0, 100.0, flags=["void"])]))
        assert [d.reason for d in out.dead] == ["samples.0: flags: void takes back a manual production or driver "
                                                "entry, never a meter's energy"]
    finally:
        store.close()
