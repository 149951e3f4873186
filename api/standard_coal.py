"""The plant's standard-coal book and factor table for the API's views, built once per plant (calc.plant_coal), and
each meter's current factor as the live rate's basis before energy is stored (calc.rate.FactorBasis)."""

from __future__ import annotations

from datetime import date, datetime

from api.settings import Settings
from calc.coal import CoalError, CoalMethod, default_coefficients
from calc.factors import default_factor_set
from calc.plant_coal import CoalBook, coal_settings
from calc.plant_factors import PlantFactors, plant_factors
from calc.rate import FactorBasis
from calc.rate import factor_bases as rate_factor_bases
from calc.table import FactorTable

#: settings id -> (the settings, their merged factors, factor table): built once per plant, not per request
_MERGED: dict[int, tuple[Settings, PlantFactors, FactorTable]] = {}
_MERGED_MAX = 8


def merged_factors(settings: Settings) -> tuple[PlantFactors, FactorTable]:
    """The plant's merged factors and ingest's factor table for them (the same build ingest converts with)."""
    found = _MERGED.get(id(settings))
    if found is None or found[0] is not settings:
        pf = plant_factors(default_factor_set(), settings.plant, settings.plant_data)
        if len(_MERGED) >= _MERGED_MAX:
            _MERGED.pop(next(iter(_MERGED)))
        found = _MERGED[id(settings)] = (settings, pf, FactorTable.build(pf, settings.plant))
    return found[1], found[2]


_BOOKS: dict[tuple[int, date], tuple[Settings, CoalBook]] = {}


def coal_book(settings: Settings, at: date) -> CoalBook:
    """The plant's book for a day (kept: its recipes are evaluated once per meter and unit, not per request): its
    plant file's [factors], overrides, conditions and [standard_coal]."""
    found = _BOOKS.get((id(settings), at))
    if found is None or found[0] is not settings:
        refused = None
        try:
            method, coefficients = coal_settings(settings.plant_data)
        except CoalError as exc:   # the balance still answers, its kgce refused with the reason (check-config too)
            method, coefficients, refused = CoalMethod.EQUIVALENT, default_coefficients(), str(exc)
        if len(_BOOKS) >= _MERGED_MAX:
            _BOOKS.pop(next(iter(_BOOKS)))
        found = _BOOKS[(id(settings), at)] = (settings, CoalBook(merged_factors(settings)[0], settings.plant,
                                                                 coefficients, method, at, refused))
    return found[1]


def factor_bases(settings: Settings, now: datetime) -> list[FactorBasis]:
    """Each meter's current factor as a rate basis (calc.rate.factor_bases over the plant's factor table)."""
    return rate_factor_bases(merged_factors(settings)[1], now.timestamp())
