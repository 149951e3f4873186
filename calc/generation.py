"""On-site generation and export (solar): the direction of an energy counter, net import, self-consumption, and
how generation enters location- and market-based scope 2 (docs/calculations.md, section 4a).

Exported and generated energy are never emissions of the site: only imported energy carries a grid factor.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Direction(StrEnum):
    """Which way a counter's energy flows: bought from the grid, sold to it, or made on site."""

    IMPORT = "import"          # active_energy_import and every other energy counter: counted, with CO2e
    EXPORT = "export"          # *_export: sent to the grid (a bidirectional meter's export register)
    GENERATION = "generation"  # *_generation: made on site (an inverter's or a generation meter's counter)


#: quantity endings of the counters whose energy is not imported (ingest stores it by direction, without CO2e)
FLOW_SUFFIXES = ("_export", "_generation")


def direction_of(quantity: str) -> Direction:
    """A counter's direction from its quantity: `..._export`, `..._generation`, else import."""
    if quantity.endswith("_export"):
        return Direction.EXPORT
    if quantity.endswith("_generation"):
        return Direction.GENERATION
    return Direction.IMPORT


@dataclass(frozen=True, slots=True)
class Flows:
    """A meter's, area's or site's energy by direction over one period, in one unit (e.g. kWh)."""

    import_energy: float
    export_energy: float = 0.0
    generation_energy: float = 0.0

    @property
    def net_import(self) -> float:
        """Import − export: negative when the site sold more than it bought."""
        return self.import_energy - self.export_energy

    @property
    def self_consumed(self) -> float:
        """Generation used on site: generation − export (clipped at 0: an export beyond the generation measured
        is grid energy passing through, or a generation meter missing)."""
        return max(self.generation_energy - self.export_energy, 0.0)

    @property
    def consumption(self) -> float:
        """What the site used: import + self-consumed generation."""
        return self.import_energy + self.self_consumed

    def __add__(self, other: Flows) -> Flows:
        return Flows(self.import_energy + other.import_energy, self.export_energy + other.export_energy,
                     self.generation_energy + other.generation_energy)


@dataclass(frozen=True, slots=True)
class Scope2WithGeneration:
    """Scope 2 electricity of a period with on-site generation, in kg CO2e."""

    location_kg: float        # import × grid factor: export and generation change nothing
    market_kg: float          # import not covered by instruments, plus self-consumed generation whose
                              # attributes were sold, × the market (residual) factor
    avoided_location_kg: float  # what the self-consumed generation would have cost at the grid factor (a memo)
    self_consumed_kwh: float


def scope2_with_generation(flows_kwh: Flows, grid_kg_per_kwh: float, market_kg_per_kwh: float,
                           covered_kwh: float = 0.0, sold_attributes_kwh: float = 0.0) -> Scope2WithGeneration:
    """Scope 2 with on-site generation (GHG Protocol Scope 2 Guidance; the location-based rule of DESIGN.md):

    - location-based = import × grid factor. Export is not subtracted (it is not negative consumption) and
      self-consumed generation has no scope 2 (a fuel-fired generator's emissions are scope 1, solar's zero);
    - market-based = max(import − instruments covering it, 0) × market factor + the part of the self-consumed
      generation whose certificates were sold (`sold_attributes_kwh`, at most the self-consumed) × market
      factor: whoever holds the certificate claims that energy, so the site reports it at the residual mix;
    - avoided = self-consumed × grid factor, shown beside the figures, never subtracted from them.
    """
    if min(flows_kwh.import_energy, flows_kwh.export_energy, flows_kwh.generation_energy, covered_kwh,
           sold_attributes_kwh) < 0:
        raise ValueError("scope2_with_generation: energies must be >= 0")
    self_consumed = flows_kwh.self_consumed
    location = flows_kwh.import_energy * grid_kg_per_kwh
    market = (max(flows_kwh.import_energy - covered_kwh, 0.0) + min(sold_attributes_kwh, self_consumed)) \
        * market_kg_per_kwh
    return Scope2WithGeneration(location, market, self_consumed * grid_kg_per_kwh, self_consumed)
