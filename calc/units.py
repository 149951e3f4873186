"""One pint unit registry for the whole project, and helpers to convert at the boundaries."""

from __future__ import annotations

import tokenize
from functools import cache

import pint

from calc.errors import CalcError

ureg: pint.UnitRegistry[float] = pint.UnitRegistry()
# pint counts things in `count` (dimensionless); a plant says "4,200 pieces" (calc.entries, production counters)
ureg.define("piece = count = pcs")
Q_ = ureg.Quantity


class UnitError(CalcError):
    """A unit string that pint cannot parse, or that has the wrong dimension."""


@cache
def _conversion(from_unit: str, to_unit: str) -> float | str:
    """The multiplier, or why pint refuses it: refusals are cached too (callers probe units that may not fit)."""
    try:
        return float(Q_(1.0, from_unit).to(to_unit).magnitude)
    except (pint.errors.UndefinedUnitError, pint.errors.DimensionalityError, AssertionError, TypeError,
            ValueError, AttributeError, tokenize.TokenError) as exc:  # "(" makes pint's tokenizer raise
        return f"cannot convert {from_unit!r} to {to_unit!r}: {exc}"


def conversion_factor(from_unit: str, to_unit: str) -> float:
    """Multiplier that turns a magnitude in `from_unit` into `to_unit` (cached: pint is slow per call)."""
    result = _conversion(from_unit, to_unit)
    if isinstance(result, str):
        raise UnitError(result)
    return result


def convert(value: float, from_unit: str, to_unit: str) -> float:
    """Convert one magnitude between units."""
    return value * conversion_factor(from_unit, to_unit)


def check_dimension(unit: str, like: str) -> None:
    """Raise UnitError unless `unit` has the same dimension as `like`."""
    conversion_factor(unit, like)


def known_unit(unit: str) -> str:
    """`unit` when pint knows it; a ValueError naming it otherwise (for pydantic validators: `KnownUnit`)."""
    try:
        check_dimension(unit, unit)
    except UnitError as exc:
        raise ValueError(f"unknown unit {unit!r}") from exc
    return unit
