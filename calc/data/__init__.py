"""Factor data shipped with carbonwatch (read-only package resources; the only files calc touches)."""

from __future__ import annotations

from importlib import resources


def default_factor_text() -> str:
    """Text of the default factor set, built from the sourced reference data in shared/reference."""
    return resources.files(__name__).joinpath("default_factors.toml").read_text(encoding="utf-8")
