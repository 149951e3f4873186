"""calc.entries: an entry's message sums exactly to its amount per quarter hour, its void cancels it through the
stores' one rule (ingest.store.variables.amounts), stamps of two entries over the same time never collide, and
intervals, values and units that cannot be entered are refused with the reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from calc.entries import Entry, EntryError, check_interval, message, overlap_quarters, samples, to_variable_unit
from calc.plant import Variable
from calc.schema import decode, encode
from ingest.points import VariableInfo
from ingest.store.variables import amounts

PIECES = Variable(id="out-1", area="press", kind="production", quantity="production", unit="count",
                  measure="counter")
TEMP = Variable(id="temp", area="utilities", kind="driver", quantity="outdoor_temperature", unit="degC",
                measure="gauge")
T = datetime(2026, 12, 3, 6, tzinfo=UTC)


def info(v: Variable) -> VariableInfo:
    return VariableInfo("s1", v.area, v.line or "", v.kind, v.quantity, v.unit, v.measure)


def added(v: Variable, msg_samples: list[object]) -> tuple[float, float, float, float]:
    """What the stores add for these samples (as points), summed."""
    total = [0.0, 0.0, 0.0, 0.0]
    for s in msg_samples:
        point = [v.id, 0, s.quantity, s.value, s.unit, s.delta, s.interval_s, None, None,  # type: ignore[attr-defined]
                 s.quality.value, ",".join(f.value for f in s.flags), None, 0, "manual"]  # type: ignore[attr-defined]
        add = amounts(point, info(v))
        assert add is not None
        total = [a + b for a, b in zip(total, add, strict=True)]
    return (total[0], total[1], total[2], total[3])


def test_a_shift_of_pieces_is_one_share_per_quarter_hour_summing_exactly() -> None:
    e = Entry(7, PIECES, T, T + timedelta(hours=8), 4200.0 / 7.0, 0)
    got = samples(e)
    assert len(got) == 32 and sum(s.delta or 0.0 for s in got) == e.amount
    assert all(T <= s.ts < T + timedelta(hours=8) for s in got)
    assert [s.ts.minute % 15 for s in got] == [14] * 32   # one per quarter, 1 µs before its end
    assert added(PIECES, got)[0] == pytest.approx(e.amount, rel=1e-15)


def test_the_void_message_carries_the_entry_and_takes_it_back() -> None:
    e = Entry(7, PIECES, T, T + timedelta(hours=8), 4200.0, 0)
    entry_msg, void_msg = message(e, voided=False), message(e, voided=True)
    assert (entry_msg.seq, void_msg.seq, entry_msg.agent) == (14, 15, "manual")
    assert void_msg.samples[:32] == entry_msg.samples   # a void never takes back what was not counted
    assert added(PIECES, list(void_msg.samples))[0] == 0.0
    assert decode(encode(void_msg)) == void_msg
    assert message(e, voided=True) == void_msg       # the same entry, the same message: a re-send is a duplicate


def test_a_gauge_entry_is_its_mean_over_the_interval_and_its_void_cancels_the_weight() -> None:
    e = Entry(3, TEMP, T, T + timedelta(days=1), 4.1, 0)
    weighted, weight_s = added(TEMP, samples(e))[2:]
    assert weight_s == 86_400 and weighted / weight_s == pytest.approx(4.1)
    weighted, weight_s = added(TEMP, list(message(e, voided=True).samples))[2:]
    assert weight_s == 0.0 and weighted == pytest.approx(0.0, abs=1e-6)   # no weight left: no mean (floats)


def test_entries_over_the_same_time_never_share_a_stamp() -> None:
    stamps = set()
    for slot in range(5):
        e = Entry(slot + 1, PIECES, T, T + timedelta(hours=1), 10.0, slot)
        for s in samples(e) + samples(e, void=True):
            assert s.ts not in stamps
            stamps.add(s.ts)
    assert len(stamps) == 5 * 2 * 4


@pytest.mark.parametrize(("start", "end", "why"), [
    (T + timedelta(minutes=5), T + timedelta(hours=8), "start: .* not on a quarter hour"),
    (T, T, "end: .* not after start"),
    (T, T + timedelta(days=32), "end: an entry covers at most 31 days"),
    (T.replace(tzinfo=None), T + timedelta(hours=1), "start: .* no time zone"),
])
def test_intervals_that_cannot_be_entered(start: datetime, end: datetime, why: str) -> None:
    with pytest.raises(EntryError, match=why):
        check_interval(start, end)


def test_units_convert_with_pint_pieces_included() -> None:
    assert to_variable_unit(PIECES, 4200, "piece") == 4200
    assert to_variable_unit(PIECES, 3.1, "kpiece") == pytest.approx(3100)
    assert to_variable_unit(PIECES, 12, "pcs") == 12
    assert to_variable_unit(TEMP, 39.2, "degF") == pytest.approx(4.0)
    with pytest.raises(EntryError, match="'kWh' cannot be converted to 'count'"):
        to_variable_unit(PIECES, 1, "kWh")
    with pytest.raises(EntryError, match="not negative"):
        to_variable_unit(PIECES, -1, "piece")
    with pytest.raises(EntryError, match="cannot be converted"):
        to_variable_unit(PIECES, 1, "((")


def test_overlap_in_quarters() -> None:
    assert overlap_quarters(T, T + timedelta(hours=8), T + timedelta(hours=7), T + timedelta(hours=9)) == 4
    assert overlap_quarters(T, T + timedelta(hours=8), T + timedelta(hours=8), T + timedelta(hours=9)) == 0

