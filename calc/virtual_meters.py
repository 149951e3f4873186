"""Virtual meters (`[[virtual_meters]]`): a meter computed as a sum and difference of other meters, e.g. the
unmetered rest `main - press-1 - press-2`; the declaration, its expression and the plant-wide checks.

Evaluation over series is calc.virtual_series; this module knows meters only by id and carrier, so calc.plant
can use it without a cycle.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from calc.carriers import BY_NAME, Carrier
from calc.errors import CalcError
from calc.schema import METER_PATTERN, UNIT_MAX, MeterId
from calc.units import UnitError, conversion_factor, known_unit

Sign = Literal[1, -1]
_ID = re.compile(METER_PATTERN)


class VirtualMeterError(CalcError):
    """A virtual meter that does not hold together (raised inside pydantic validation: the plant file's error
    then names the file and key path)."""


@dataclass(frozen=True, slots=True)
class Term:
    """One operand of an expression: +1 or -1 times a meter (or another virtual meter)."""

    sign: Sign
    meter: str


def parse_expression(expression: str) -> tuple[Term, ...]:
    """`main - press-1 - press-2` as its terms. Operators stand between spaces (meter ids may hold a hyphen);
    the first term may carry a sign of its own (`- a + b`). A meter named twice is refused."""
    tokens = expression.split()
    if not tokens:
        raise VirtualMeterError("expression is empty; write e.g. 'main - press-1 - press-2'")
    sign: Sign = 1
    if tokens[0] in "+-" and len(tokens[0]) == 1:
        sign = -1 if tokens[0] == "-" else 1
        tokens = tokens[1:]
    terms: list[Term] = []
    expect_meter = True
    for token in tokens:
        if expect_meter:
            if token in ("+", "-"):
                raise VirtualMeterError(f"expression {expression!r}: two operators in a row at {token!r}")
            if not _ID.match(token):
                raise VirtualMeterError(f"expression {expression!r}: {token!r} is not a meter id (only sums and "
                                        "differences of meters, operators between spaces)")
            if any(t.meter == token for t in terms):
                raise VirtualMeterError(f"expression {expression!r}: meter {token!r} appears twice")
            terms.append(Term(sign, token))
        elif token in ("+", "-"):
            sign = -1 if token == "-" else 1
        else:
            raise VirtualMeterError(f"expression {expression!r}: expected + or - before {token!r} (operators "
                                    "stand between spaces: 'main - press-1')")
        expect_meter = not expect_meter
    if expect_meter:
        raise VirtualMeterError(f"expression {expression!r} ends with an operator")
    return tuple(terms)


class VirtualMeter(BaseModel):
    """A meter computed from others (sum and difference), never read from a device: its energy and CO2e per
    bucket are its terms' with their signs, as complete as its least complete input; a negative result
    (submeters above the main) is kept and flagged. It counts nowhere twice: balances add the real meters."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: MeterId
    area: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    line: str | None = None
    expression: str = Field(min_length=1, max_length=2000, description="sum and difference of meter ids (or other "
                            "virtual meters'), operators between spaces, e.g. 'main - press-1 - press-2'")
    unit: str | None = Field(default=None, max_length=UNIT_MAX, description="unit of its energy (default: the "
                             "carrier's, e.g. kWh); the inputs' must convert to it")
    description: str = Field(default="", max_length=200, description="what it stands for, for people (e.g. "
                             "'unmetered load and losses of the main feeder')")

    @field_validator("expression")
    @classmethod
    def _parses(cls, expression: str) -> str:
        parse_expression(expression)
        return expression

    @field_validator("unit")
    @classmethod
    def _known_unit(cls, unit: str | None) -> str | None:
        return None if unit is None else known_unit(unit)

    @property
    def terms(self) -> tuple[Term, ...]:
        return parse_expression(self.expression)

    @model_validator(mode="after")
    def _not_itself(self) -> VirtualMeter:
        if any(t.meter == self.id for t in self.terms):
            raise VirtualMeterError(f"expression: virtual meter {self.id!r} refers to itself")
        return self


@dataclass(frozen=True, slots=True)
class Resolved:
    """A checked virtual meter: its carrier and unit (from its inputs) and the real meters it rests on."""

    meter: VirtualMeter
    carrier: Carrier
    unit: str
    base: tuple[Term, ...]  # the expression with every virtual meter expanded into real ones


def check_virtual_meters(virtual: Sequence[VirtualMeter], carriers: Mapping[str, Carrier],
                         variables: Sequence[str] = ()) -> dict[str, Resolved]:
    """Every virtual meter resolved, in an order where a virtual meter comes after those it uses (evaluate in
    this order). Raises VirtualMeterError naming `virtual_meters.<i> (<id>)`: an id already taken, an unknown
    meter, a variable in an expression, a cycle, mixed carriers, or a unit its inputs do not convert to."""
    by_id: dict[str, tuple[int, VirtualMeter]] = {}
    for i, vm in enumerate(virtual):
        where = f"virtual_meters.{i} ({vm.id})"
        if vm.id in carriers or vm.id in variables:
            raise VirtualMeterError(f"{where}: id {vm.id!r} is already a meter's or a variable's")
        if vm.id in by_id:
            raise VirtualMeterError(f"{where}: id {vm.id!r} appears twice")
        by_id[vm.id] = (i, vm)
        for term in vm.terms:
            if term.meter in variables:
                raise VirtualMeterError(f"{where}.expression: {term.meter!r} is a production or driver variable, "
                                        "not an energy meter")
            if term.meter not in carriers and term.meter not in {v.id for v in virtual}:
                raise VirtualMeterError(f"{where}.expression: unknown meter {term.meter!r}")
    out: dict[str, Resolved] = {}
    visiting: list[str] = []

    def resolve(vid: str) -> Resolved:
        if vid in out:
            return out[vid]
        i, vm = by_id[vid]
        where = f"virtual_meters.{i} ({vid})"
        if vid in visiting:
            cycle = " -> ".join([*visiting[visiting.index(vid):], vid])
            raise VirtualMeterError(f"{where}.expression: a cycle of virtual meters: {cycle}")
        visiting.append(vid)
        found: dict[str, list[str]] = {}
        base: dict[str, int] = {}
        for term in vm.terms:
            if term.meter in by_id:
                inner = resolve(term.meter)
                found.setdefault(inner.carrier.value, []).append(term.meter)
                for t in inner.base:
                    base[t.meter] = base.get(t.meter, 0) + term.sign * t.sign
            else:
                found.setdefault(carriers[term.meter].value, []).append(term.meter)
                base[term.meter] = base.get(term.meter, 0) + term.sign
        visiting.pop()
        if len(found) > 1:
            mixed = "; ".join(f"{c}: {', '.join(ids)}" for c, ids in found.items())
            raise VirtualMeterError(f"{where}.expression: mixes carriers ({mixed}); a virtual meter adds one carrier")
        carrier = BY_NAME[next(iter(found))]
        unit = vm.unit or carrier.default_unit
        try:
            conversion_factor(carrier.default_unit, unit)
        except UnitError as exc:
            raise VirtualMeterError(f"{where}.unit: {unit!r} is not a unit of {carrier.value} (its meters count in "
                                    f"{carrier.default_unit!r}): {exc}") from exc
        terms = tuple(Term(1 if n > 0 else -1, m) for m, n in base.items() if n != 0)
        if any(abs(n) > 1 for n in base.values()):
            raise VirtualMeterError(f"{where}.expression: counts a meter more than once through other virtual "
                                    f"meters ({', '.join(m for m, n in base.items() if abs(n) > 1)})")
        out[vid] = Resolved(vm, carrier, unit, terms)
        return out[vid]

    for vid in by_id:
        resolve(vid)
    return out
