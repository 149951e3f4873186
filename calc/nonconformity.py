"""Nonconformities' effectiveness check (ISO 50001 10.2): a corrective action is effective when the rule it
addresses stayed clear for N days after the action, ineffective when it fired again within them, pending before."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from calc.errors import CalcError


class EffectivenessError(CalcError):
    """An effectiveness check that cannot be made (naive times, a negative period)."""


class Verdict(StrEnum):
    PENDING = "pending"            # the N days are not over and the rule has not fired again
    EFFECTIVE = "effective"        # N days over without the rule firing
    INEFFECTIVE = "ineffective"    # the rule fired again within the N days


@dataclass(frozen=True, slots=True)
class Effectiveness:
    verdict: Verdict
    from_: datetime                # the action's time: the check starts here
    until: datetime                # from_ + N days
    fired_again: tuple[datetime, ...]   # the rule's alerts fired in [from_, until)


def effectiveness(action_at: datetime, clear_days: float, now: datetime,
                  fired_at: Iterable[datetime]) -> Effectiveness:
    """The verdict at `now` for an action taken at `action_at`, from the times the rule fired."""
    if action_at.tzinfo is None or now.tzinfo is None:
        raise EffectivenessError("times need their time zone")
    if clear_days <= 0:
        raise EffectivenessError(f"clear_days must be positive, got {clear_days}")
    until = action_at + timedelta(days=clear_days)
    again = tuple(sorted(t for t in fired_at if action_at <= t < min(until, now)))
    if again:
        verdict = Verdict.INEFFECTIVE
    elif now >= until:
        verdict = Verdict.EFFECTIVE
    else:
        verdict = Verdict.PENDING
    return Effectiveness(verdict, action_at, until, again)
