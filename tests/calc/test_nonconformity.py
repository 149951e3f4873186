"""calc.nonconformity: the effectiveness check's verdicts (pending, effective, ineffective) on worked cases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from calc.nonconformity import EffectivenessError, Verdict, effectiveness


def test_effectiveness_verdicts() -> None:
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    day = timedelta(days=1)
    assert effectiveness(t0, 7, t0 + 3 * day, []).verdict is Verdict.PENDING
    assert effectiveness(t0, 7, t0 + 7 * day, [t0 - day]).verdict is Verdict.EFFECTIVE   # fired before the action
    late = effectiveness(t0, 7, t0 + 9 * day, [t0 + 2 * day, t0 + 8 * day])
    assert late.verdict is Verdict.INEFFECTIVE and late.fired_again == (t0 + 2 * day,)
    assert late.until == t0 + 7 * day
    with pytest.raises(EffectivenessError):
        effectiveness(t0, 0, t0, [])
