"""Unit conversion at the boundaries: right factors, and one clear error type for anything pint refuses."""

from __future__ import annotations

import pytest

from calc.units import UnitError, conversion_factor, convert


@pytest.mark.parametrize(("value", "src", "dst", "expected"), [
    (1.0, "MWh", "kWh", 1000.0),
    (2500.0, "Wh", "kWh", 2.5),
    (1.0, "GJ", "kWh", 1e6 / 3600),
    (3.0, "t", "kg", 3000.0),
])
def test_conversions(value: float, src: str, dst: str, expected: float) -> None:
    assert convert(value, src, dst) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("bad", ["(", "]", "foo", "kWh/", "kg"])
def test_anything_pint_refuses_is_a_unit_error_naming_the_units(bad: str) -> None:
    with pytest.raises(UnitError, match="cannot convert"):
        conversion_factor(bad, "kWh")
