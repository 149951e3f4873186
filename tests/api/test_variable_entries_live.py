"""The API's live production (for the intensity rules) counts a manual entry's message once and never its void's
samples as output (a void is taken back in the store; live, at the next start-up)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from api.live.production import Production
from calc.entries import Entry, message
from calc.plant import Variable

PIECES = Variable(id="out-1", area="press", kind="production", quantity="production", unit="count",
                  measure="counter")
T = datetime(2026, 12, 3, 6, tzinfo=UTC)


def test_live_production_counts_an_entry_once_and_never_its_void_as_output() -> None:
    live = Production((PIECES,), "UTC")
    e = Entry(1, PIECES, T, T + timedelta(hours=8), 4200.0, 0)
    live.apply(message(e, voided=False))
    live.apply(message(e, voided=False))   # a re-send adds nothing
    live.apply(message(e, voided=True))    # left to the store (and the next start-up), never added
    assert live.variables["out-1"].period_amount["today"][1] == 4200.0
