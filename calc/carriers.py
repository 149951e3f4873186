"""The energy carriers, one row each: name, family (which recipe folds its factors), default unit, methods and
the standard-coal coefficient key.

Everything else derives from this table: the plant model's `Carrier` (calc.plant), the carriers a factor file
may name (calc.factors), each carrier's methods and recipe (calc.recipes), the unit a meter counts in when
none is given (calc.table) and the GB/T 2589 coefficient that turns it into kgce (calc.coal). Adding a carrier
is one row here, its factors (and kgce coefficient) in the data, and its docs line (docs/calculations.md);
tests/calc/test_carriers.py and tests/calc/test_coal.py check every row.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

#: which recipe (calc.recipes) turns a quantity of the carrier into emissions
Family = Literal["electricity", "fuel", "heat"]

GRID_METHODS = ("location", "market", "ets")  # scope 2 electricity: grid average, contractual, ETS parameter
FUEL_METHODS = ("gbt32150", "ipcc")  # scope 1 combustion: GB/T 32150 carbon content, IPCC 2006 per-gas factors
HEAT_METHODS = ("default",)  # purchased heat: one heat emission factor


class Carrier(StrEnum):
    """Energy carriers; these names are used everywhere (config, CLI, API, stored points)."""

    # each member is one row: name, family, default unit, methods (the first is the default), kgce key: the
    # coefficient in calc/data/energy_coefficients.toml (electricity and heat: `<key>_<coal method>`; steam and
    # hot water count as the heat they carry)

    family: Family
    default_unit: str
    methods: tuple[str, ...]
    kgce_key: str

    def __new__(cls, value: str, family: Family, default_unit: str, methods: tuple[str, ...],
                kgce_key: str) -> Carrier:
        member = str.__new__(cls, value)
        member._value_ = value
        member.family, member.default_unit, member.methods, member.kgce_key = family, default_unit, methods, kgce_key
        return member

    ELECTRICITY = "electricity", "electricity", "kWh", GRID_METHODS, "electricity"
    NATURAL_GAS = "natural_gas", "fuel", "m^3", FUEL_METHODS, "natural_gas"
    RAW_COAL = "raw_coal", "fuel", "t", FUEL_METHODS, "raw_coal"
    DIESEL = "diesel", "fuel", "t", FUEL_METHODS, "diesel"
    GASOLINE = "gasoline", "fuel", "t", FUEL_METHODS, "gasoline"
    LPG = "lpg", "fuel", "t", FUEL_METHODS, "lpg"
    FUEL_OIL = "fuel_oil", "fuel", "t", FUEL_METHODS, "fuel_oil"
    HEAT = "heat", "heat", "GJ", HEAT_METHODS, "heat"
    STEAM = "steam", "heat", "t", HEAT_METHODS, "heat"
    HOT_WATER = "hot_water", "heat", "t", HEAT_METHODS, "heat"

    @property
    def default_method(self) -> str:
        return self.methods[0]


#: every row by its name (`Carrier(name)` does the same at run time; type checkers see the row's fields there)
BY_NAME: dict[str, Carrier] = {c.value: c for c in Carrier}


def of_family(family: Family) -> tuple[str, ...]:
    """The names of a family's carriers, in table order."""
    return tuple(c.value for c in Carrier if c.family == family)
