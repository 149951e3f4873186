"""Emission factors as versioned data: parse a factor file, and choose the factor for a sample.

Every factor keeps its value, unit, gas, scope, region, validity period and source. A factor set's
version is a content hash, so any stored result can name exactly which data produced it.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from calc.carriers import Carrier
from calc.errors import CalcError
from calc.units import UnitError, conversion_factor


class FactorError(CalcError):
    """A factor file or a factor lookup that cannot be honoured; the message names the key path."""


KINDS = frozenset({
    "grid_average", "grid_residual_like", "grid_fossil_only", "grid_ets_parameter", "grid_td_losses",
    "electricity_carbon_footprint", "net_calorific_value", "carbon_content_per_heat", "carbon_oxidation_rate",
    "derived_emission_factor", "fuel_emission_factor", "heat_emission_factor", "method_constant", "gwp100",
    "instrument_unit", "instrument_rule", "contractual_instrument",
})
SCOPES = frozenset({"scope1_stationary", "scope2_location", "scope2_market", "scope2_heat", "scope3",
                    "product_footprint", "gwp", "instrument", "reference"})
CARRIERS = frozenset(c.value for c in Carrier)
GASES = frozenset({"CO2", "CO2e", "CH4", "CH4_fossil", "CH4_non_fossil", "N2O", "C", ""})


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
    carrier: str | None = None      # carbonwatch carrier a fuel parameter serves
    sector: str | None = None       # IPCC CH4 rows: energy_industries | manufacturing
    assessment: str | None = None   # GWP rows: AR4 | AR5 | AR6
    variant: str | None = None      # a non-default variant (e.g. GWP with climate-carbon feedback)
    only_when_pinned: bool = False  # used only where a plant's [[factor_overrides]] names it
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
    fallback: bool = False  # True when no factor was valid at the sample's time (or for the exact region)

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


def combined_hash(factors: Iterable[Factor]) -> str:
    """One hash for a group of factors used together (equals `factor_hash` for a single factor)."""
    hashes = sorted({factor_hash(f) for f in factors})
    if len(hashes) == 1:
        return hashes[0]
    return hashlib.sha256(",".join(hashes).encode()).hexdigest()[:12]


# Which factor kinds serve which electricity method (location-based averages, market residuals, ETS parameter).
ELECTRICITY_KINDS: dict[str, tuple[str, ...]] = {
    "location": ("grid_average",),
    "market": ("grid_residual_like",),
    "ets": ("grid_ets_parameter",),
}
PRIMARY_GASES = ("CO2", "CO2e")
GLOBAL = "GLOBAL"


def region_chain(region: str) -> list[str]:
    """The region, its parent (the part before the first '-', e.g. CN-grid-east -> CN), then GLOBAL."""
    chain = [region]
    if "-" in region:
        chain.append(region.split("-", 1)[0])
    if region != GLOBAL:
        chain.append(GLOBAL)
    return chain


def _same_dimension(unit: str, like: str) -> bool:
    try:
        conversion_factor(unit, like)
    except UnitError:
        return False
    return True


def _vintage(f: Factor) -> tuple[date, int, str]:
    return (f.valid_to or f.valid_from or date.min, f.year or 0, f.id)


class FactorSet(BaseModel):
    """A named, versioned collection of factors, and the rules that choose one for a sample."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: str
    factors: dict[str, Factor]
    gwp_set: str = "AR5"  # IPCC assessment whose GWP100 values turn CH4 and N2O into CO2e

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

    def candidates(self, kind: str | tuple[str, ...], *, region: str | None = None, carrier: str | None = None,
                   gas: str | tuple[str, ...] | None = None, sector: str | None = None,
                   like: str | None = None) -> list[Factor]:
        """Factors of a kind, filtered by region, carrier, gas, sector and unit dimension (`like`)."""
        kinds = (kind,) if isinstance(kind, str) else kind
        gases = (gas,) if isinstance(gas, str) else gas
        return [f for f in self.factors.values()
                if f.kind in kinds and not f.only_when_pinned
                and (region is None or f.region == region)
                and (carrier is None or f.carrier == carrier)
                and (gases is None or f.gas in gases)
                and (sector is None or f.sector in (None, sector))
                and (like is None or _same_dimension(f.unit, like))]

    def select(self, kind: str | tuple[str, ...], *, at: datetime | date | None = None, region: str = GLOBAL,
               carrier: str | None = None, gas: str | tuple[str, ...] | None = None, sector: str | None = None,
               unit: str | None = None, region_fallback_flags: bool = False,
               like: str | None = None) -> FactorChoice:
        """Choose one factor; the documented fallback rule (docs/calculations.md) in one place.

        1. Regions are tried in `region_chain(region)` order; the first with any candidate wins. Using a
           parent region counts as a fallback when `region_fallback_flags` (grid factors), not for
           national or global defaults such as fuel parameters.
        2. Among that region's candidates, those valid at `at` (validity period) are preferred, the latest
           vintage first. When none is valid, the latest vintage is used and the choice says fallback.
        """
        for i, reg in enumerate(region_chain(region)):
            found = self.candidates(kind, region=reg, carrier=carrier, gas=gas, sector=sector, like=like or unit)
            if not found:
                continue
            parent = i > 0 and region_fallback_flags
            day = (at.date() if isinstance(at, datetime) else at) if at is not None else None
            if day is not None:
                valid = [f for f in found if f.covers(day)]
                if valid:
                    best = max(valid, key=_vintage)
                    return self.choose(best, unit or best.unit, fallback=parent)
            best = max(found, key=_vintage)
            out_of_period = day is not None and not best.covers(day)
            return self.choose(best, unit or best.unit, fallback=parent or out_of_period)
        what = "/".join((kind,) if isinstance(kind, str) else kind)
        extra = f" for carrier {carrier!r}" if carrier else ""
        raise FactorError(f"no {what} factor{extra} for region {region!r} (or its parents) in set {self.name!r}")

    def grid_factor(self, region: str, at: datetime | date, method: str = "location",
                    unit: str = "kg / kWh") -> FactorChoice:
        """The grid electricity factor (its CO2 or CO2e row) for a region at a time.

        Fallback, documented: when no factor of the region is valid at `at`, the latest vintage
        (greatest valid_to, then year) is used; when the region has none of this method, its parent
        region's (CN-grid-east -> CN) is used; both say `fallback=True`.
        """
        kinds = ELECTRICITY_KINDS.get(method)
        if kinds is None:
            raise FactorError(f"unknown electricity method {method!r}; use one of {sorted(ELECTRICITY_KINDS)}")
        chain = [r for r in region_chain(region) if r != GLOBAL]
        if not any(self.candidates(kinds, region=r, gas=PRIMARY_GASES) for r in chain):
            raise FactorError(f"no {method}-based grid factor for region {region!r} in set {self.name!r}")
        return self.select(kinds, at=at, region=region, gas=PRIMARY_GASES, unit=unit, region_fallback_flags=True)

    def companions(self, primary: Factor) -> list[Factor]:
        """Non-CO2 rows published with a grid factor (same kind, region, period), e.g. eGRID CH4 and N2O."""
        return [f for f in self.factors.values()
                if f.id != primary.id and f.kind == primary.kind and f.region == primary.region
                and f.valid_from == primary.valid_from and f.valid_to == primary.valid_to
                and f.gas not in PRIMARY_GASES and f.gas != ""]

    def gwp(self, gas: str, assessment: str | None = None) -> FactorChoice:
        """GWP100 of a gas in the set's assessment (or the one given)."""
        wanted = assessment or self.gwp_set
        found = [f for f in self.candidates("gwp100", gas=gas)
                 if (f.assessment or "").upper() == wanted.upper() and f.variant is None]
        if not found:
            raise FactorError(f"no GWP100 for gas {gas!r} in assessment {wanted!r} in set {self.name!r}")
        return self.choose(max(found, key=_vintage), "dimensionless")

    def with_factors(self, extra: Mapping[str, Factor], name: str | None = None,
                     gwp_set: str | None = None) -> FactorSet:
        """A new set with `extra` added (same id replaces); its version hashes the whole content."""
        factors = {**self.factors, **extra}
        gwp = gwp_set or self.gwp_set
        return FactorSet(name=name or self.name, version=content_version(factors, gwp), factors=factors,
                         gwp_set=gwp)


def content_version(factors: Mapping[str, Factor], gwp_set: str) -> str:
    body = {"factors": {k: f.model_dump(mode="json") for k, f in factors.items()}, "gwp": gwp_set}
    return "sha256-" + hashlib.sha256(_canonical(body)).hexdigest()[:12]


def check_factor_document(data: Mapping[str, Any]) -> tuple[dict[str, Factor], list[str]]:
    """Validate a factor document: the factors that are valid, and one `key.path: why` line per problem."""
    raw = data.get("factors")
    if not isinstance(raw, Mapping) or not raw:
        return {}, ["factors: missing or empty table"]
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
        for key, allowed in (("kind", KINDS), ("scope", SCOPES), ("gas", GASES)):
            if getattr(factor, key) not in allowed:
                problems.append(f"factors.{fid}.{key}: {getattr(factor, key)!r} is not one of {sorted(allowed)}")
        if factor.carrier is not None and factor.carrier not in CARRIERS:
            problems.append(f"factors.{fid}.carrier: {factor.carrier!r} is not one of {sorted(CARRIERS)}")
        if not factor.source.strip():
            problems.append(f"factors.{fid}.source: empty; every value needs its source")
        factors[fid] = factor
    meta = data.get("meta", {})
    if isinstance(meta, Mapping) and "gwp" in meta:
        gwp = str(meta["gwp"]).upper()
        rows = [f for f in factors.values() if f.kind == "gwp100"]
        if rows and not any((f.assessment or "").upper() == gwp for f in rows):
            problems.append(f"meta.gwp: no gwp100 factors of assessment {gwp!r} in this file")
    return factors, problems


def parse_factor_set(data: Mapping[str, Any], name: str) -> FactorSet:
    """Validate a factor document (already parsed TOML). Raises FactorError listing every problem."""
    factors, problems = check_factor_document(data)
    if problems:
        raise FactorError("; ".join(problems))
    meta = data.get("meta", {})
    meta = meta if isinstance(meta, Mapping) else {}
    gwp_set = str(meta.get("gwp") or "AR5")
    version = str(meta.get("version") or "") or content_version(factors, gwp_set)
    return FactorSet(name=name, version=version, factors=factors, gwp_set=gwp_set)


def load_toml(text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FactorError(f"not valid TOML: {exc}") from exc


def parse_factor_toml(text: str, name: str) -> FactorSet:
    return parse_factor_set(load_toml(text), name)


@cache
def default_factor_set() -> FactorSet:
    """The factor set shipped with carbonwatch (see calc/data/default_factors.toml); parsed once."""
    from calc.data import default_factor_text

    return parse_factor_toml(default_factor_text(), "default")
