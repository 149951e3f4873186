"""Data shipped with carbonwatch: emission factors and standard-coal coefficients (read-only package resources;
the only files calc touches)."""

from __future__ import annotations

from importlib import resources


def default_factor_text() -> str:
    """Text of the default factor set, built from the sourced reference data in shared/reference."""
    return resources.files(__name__).joinpath("default_factors.toml").read_text(encoding="utf-8")


def energy_coefficient_text() -> str:
    """Text of the GB/T 2589 standard-coal coefficients, copied unchanged from shared/reference."""
    return resources.files(__name__).joinpath("energy_coefficients.toml").read_text(encoding="utf-8")


def activity_factor_text() -> str:
    """Text of the refrigerant GWPs, blend compositions and carbonate factors that activity entries use."""
    return resources.files(__name__).joinpath("activity_factors.toml").read_text(encoding="utf-8")
