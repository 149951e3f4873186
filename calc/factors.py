"""Emission factors as versioned data: parse a factor file, and choose the factor for a sample.

Every factor keeps its value, unit, gas, scope, region, validity period and source. A factor set's
version is a content hash, so any stored result can name exactly which data produced it.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from calc.units import UnitError, conversion_factor


class FactorError(ValueError):
    """A factor file or a factor lookup that cannot be honoured; the message names the key path."""


class Factor(BaseModel):
    """One sourced value (an emission factor, a calorific value, a GWP, a constant)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    id: str
    value: float = Field(allow_inf_nan=False)
    unit: str
    gas: str = ""
    kind: str
    scope: str
    region: str
    region_name: str | None = None
    fuel: str | None = None
    year: int | None = None
    valid_from: date | None = None
    valid_to: date | None = None
    published: date | None = None
    confidence: str | None = None
    source: str
    source_url_title: str | None = None
    notes: str | None = None

    def covers(self, day: date) -> bool:
        """True when `day` lies in the factor's validity period (open ends are unbounded)."""
        if self.valid_from is not None and day < self.valid_from:
            return False
        return not (self.valid_to is not None and day > self.valid_to)


class FactorChoice(BaseModel):
    """The factor selected for a sample, converted to the unit the formula needs."""

    model_config = ConfigDict(frozen=True)

    factor: Factor
    set_version: str
    value: float  # in the unit the caller asked for
    unit: str
    fallback: bool = False  # True when no factor was valid at the sample's time

    @property
    def factor_id(self) -> str:
        return self.factor.id

    @property
    def version(self) -> str:
        """Factor version: set version plus the factor's own content hash, stable across reorderings."""
        return f"{self.set_version}:{factor_hash(self.factor)}"


def _canonical(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, default=str, ensure_ascii=False).encode()


def factor_hash(factor: Factor) -> str:
    return hashlib.sha256(_canonical(factor.model_dump(mode="json"))).hexdigest()[:12]


# Which factor kinds serve which electricity method (location-based averages, market residuals).
ELECTRICITY_KINDS: dict[str, tuple[str, ...]] = {
    "location": ("grid_average",),
    "market": ("grid_residual_like",),
}


class FactorSet(BaseModel):
    """A named, versioned collection of factors."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: str
    factors: dict[str, Factor]

    def get(self, factor_id: str) -> Factor:
        try:
            return self.factors[factor_id]
        except KeyError:
            raise FactorError(f"no factor {factor_id!r} in set {self.name!r}") from None

    def choose(self, factor: Factor, unit: str, fallback: bool = False) -> FactorChoice:
        try:
            value = factor.value * conversion_factor(factor.unit, unit)
        except UnitError as exc:
            raise FactorError(f"factors.{factor.id}.unit: {exc}") from exc
        return FactorChoice(factor=factor, set_version=self.version, value=value, unit=unit,
                            fallback=fallback)

    def grid_factor(self, region: str, at: datetime | date, method: str = "location",
                    unit: str = "kg / kWh") -> FactorChoice:
        """The grid electricity factor for a region at a time.

        Fallback, documented: when no factor of the region is valid at `at`, the latest vintage
        (greatest valid_to, then year) is used and the choice says `fallback=True`.
        """
        kinds = ELECTRICITY_KINDS.get(method)
        if kinds is None:
            raise FactorError(f"unknown electricity method {method!r}; use one of {sorted(ELECTRICITY_KINDS)}")
        candidates = [f for f in self.factors.values() if f.region == region and f.kind in kinds]
        if not candidates:
            raise FactorError(f"no {method}-based grid factor for region {region!r} in set {self.name!r}")
        day = at.date() if isinstance(at, datetime) else at
        valid = [f for f in candidates if f.covers(day)]
        if valid:
            return self.choose(max(valid, key=_vintage), unit)
        return self.choose(max(candidates, key=_vintage), unit, fallback=True)


def _vintage(f: Factor) -> tuple[date, int, str]:
    return (f.valid_to or f.valid_from or date.min, f.year or 0, f.id)


def parse_factor_set(data: Mapping[str, Any], name: str) -> FactorSet:
    """Validate a factor document (already parsed TOML). Raises FactorError listing every problem."""
    raw = data.get("factors")
    if not isinstance(raw, Mapping) or not raw:
        raise FactorError("factors: missing or empty table")
    problems: list[str] = []
    factors: dict[str, Factor] = {}
    for fid, body in raw.items():
        if not isinstance(body, Mapping):
            problems.append(f"factors.{fid}: must be a table")
            continue
        try:
            factor = Factor.model_validate({**body, "id": fid})
        except ValidationError as exc:
            for err in exc.errors():
                loc = ".".join(str(p) for p in err["loc"])
                problems.append(f"factors.{fid}.{loc}: {err['msg']}")
            continue
        try:
            conversion_factor(factor.unit, factor.unit)
        except UnitError as exc:
            problems.append(f"factors.{fid}.unit: {exc}")
        if factor.valid_from and factor.valid_to and factor.valid_from > factor.valid_to:
            problems.append(f"factors.{fid}.valid_to: before valid_from")
        factors[fid] = factor
    if problems:
        raise FactorError("; ".join(problems))
    meta = data.get("meta", {})
    version = str(meta.get("version") or "") if isinstance(meta, Mapping) else ""
    if not version:
        digest = hashlib.sha256(_canonical({k: f.model_dump(mode="json") for k, f in factors.items()}))
        version = "sha256-" + digest.hexdigest()[:12]
    return FactorSet(name=name, version=version, factors=factors)


def parse_factor_toml(text: str, name: str) -> FactorSet:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FactorError(f"not valid TOML: {exc}") from exc
    return parse_factor_set(data, name)


def default_factor_set() -> FactorSet:
    """The factor set shipped with carbonwatch (see calc/data/default_factors.toml)."""
    from calc.data import default_factor_text

    return parse_factor_toml(default_factor_text(), "default")
