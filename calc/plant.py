"""The plant model every service shares: the site, its areas and lines, each meter's carrier, and the production
counters and driver variables (`[[variables]]`: read like meters, stored with their units, never CO2e), and the
virtual meters computed from meters (`[[virtual_meters]]`, calc.virtual_meters).

A plant file (TOML) also holds sections owned by other packages (gateways and register maps for the
edge, load profiles for the simulators, broker and store settings for the wiring); each package
validates its own section, and this model reads only the hierarchy.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from calc.carriers import Carrier as Carrier  # the table of carriers; imported from here too
from calc.errors import CalcError
from calc.schema import QUANTITY_MAX, UNIT_MAX, MeterId
from calc.units import UnitError, check_dimension, known_unit
from calc.virtual_meters import Resolved, VirtualMeter, check_virtual_meters

Name = str


class PlantError(CalcError):
    """A plant file that does not validate; the message names the file, the key path and why."""


class Site(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    name: str = ""
    region: str = Field(description="grid region code for electricity factors, e.g. CN or CN-grid-east")
    timezone: str = "UTC"
    start: AwareDatetime = Field(description="readings timestamped before this are rejected")


class Meter(BaseModel):
    """A meter's place in the hierarchy and what it measures (device details belong to the edge)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: MeterId
    area: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    line: str | None = None
    carrier: Carrier
    region: str | None = Field(default=None, description="overrides the site's region")
    max_power_kw: float | None = Field(default=None, gt=0, allow_inf_nan=False)


VariableKind = Literal["production", "driver"]
#: how a variable adds up over a period: a counter's deltas are summed, a gauge is averaged over time
Measure = Literal["counter", "gauge"]


class Variable(BaseModel):
    """A production counter (pieces, tonnes, m2) or a driver variable (outdoor temperature, operating hours).

    Read over Modbus or OPC UA like a meter (the device keys are the edge's), published on the meter topic under
    its id, stored with its unit; it has no carrier and never a CO2e. `quantity` names the device point that
    carries it (other points of the device are stored as plain samples); `unit` is the unit its totals (a
    counter) or time-weighted means (a gauge) are kept in, which the device's unit must convert to.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: MeterId
    area: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    line: str | None = None
    kind: VariableKind = Field(description="production: output of the area or line; driver: what else drives "
                               "its energy use (weather, operating hours)")
    quantity: str = Field(min_length=1, max_length=QUANTITY_MAX, pattern=r"^[a-z0-9_]+$",
                          description="the device point that carries the variable, e.g. production")
    unit: str = Field(min_length=1, max_length=UNIT_MAX, description="unit of its totals or means, e.g. count, t, "
                      "m**2, degC, h")
    measure: Measure = Field(description="counter: summed over a period (production, operating hours); gauge: "
                             "time-weighted mean (outdoor temperature). A production variable is a counter")
    product: str = Field(default="", max_length=200, description="what a production counter counts, for people")
    degree_day_base_c: float | None = Field(default=None, ge=-50, le=50, allow_inf_nan=False,
                                            description="a temperature gauge: base of its degree-days, in degC")

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if "carrier" in data:
            raise ValueError("a variable has no carrier (it is not energy); an energy meter goes in [[meters]]")
        if data.get("kind") == "production" and "measure" not in data:
            return {**data, "measure": "counter"}
        return data

    @field_validator("unit")
    @classmethod
    def _known_unit(cls, unit: str) -> str:
        return known_unit(unit)

    @model_validator(mode="after")
    def _consistent(self) -> Variable:
        if self.kind == "production" and self.measure != "counter":
            raise ValueError("measure: a production variable is a counter (its output is summed over a period)")
        if self.degree_day_base_c is not None:
            if self.measure != "gauge":
                raise ValueError("degree_day_base_c: only a temperature gauge has degree-days")
            try:
                check_dimension(self.unit, "degC")
            except UnitError as exc:
                raise ValueError(f"degree_day_base_c: unit {self.unit!r} is not a temperature") from exc
        return self


class Plant(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    site: Site
    meters: tuple[Meter, ...] = Field(min_length=1)
    variables: tuple[Variable, ...] = ()
    virtual_meters: tuple[VirtualMeter, ...] = ()

    @model_validator(mode="after")
    def _unique_ids(self) -> Plant:
        seen: set[str] = set()
        for meter in self.meters:
            if meter.id in seen:
                raise ValueError(f"meter id {meter.id!r} appears twice")
            seen.add(meter.id)
        for variable in self.variables:
            if variable.id in seen:
                raise ValueError(f"variables: id {variable.id!r} is already a meter's or another variable's "
                                 "(they share the reading topics)")
            seen.add(variable.id)
        self.virtual()  # ids, unknown meters, cycles, carriers and units (calc.virtual_meters)
        return self

    def virtual(self) -> dict[str, Resolved]:
        """The virtual meters resolved (carrier, unit, the real meters under each), in an order where each comes
        after the virtual meters it uses: evaluate them in this order (calc.virtual_series.evaluate_all)."""
        carriers = {m.id: m.carrier for m in self.meters}
        return check_virtual_meters(self.virtual_meters, carriers, [v.id for v in self.variables])

    @property
    def variables_by_id(self) -> dict[str, Variable]:
        return {v.id: v for v in self.variables}

    def meter(self, meter_id: str) -> Meter:
        for meter in self.meters:
            if meter.id == meter_id:
                return meter
        raise KeyError(meter_id)

    @property
    def meters_by_id(self) -> dict[str, Meter]:
        return {m.id: m for m in self.meters}

    def region_of(self, meter: Meter) -> str:
        return meter.region or self.site.region

    def started_by(self, ts: datetime) -> bool:
        return ts >= self.site.start


def describe_errors(source: str, exc: ValidationError) -> str:
    """One line per problem: `FILE: key.path: why` (key paths as written in the file)."""
    lines = []
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"{source}: {path}: {err['msg']}")
    return "\n".join(lines)


def parse_plant(data: dict[str, Any], source: str = "<plant>", error: type[Exception] = PlantError) -> Plant:
    """The plant model of a parsed plant file; `error` (a part's own ConfigError) names `FILE: key.path: why`."""
    try:
        return Plant.model_validate(data)
    except ValidationError as exc:
        raise error(describe_errors(source, exc)) from exc
