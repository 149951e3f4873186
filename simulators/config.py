"""The simulators' view of a plant file: gateways, meters' `sim` tables and the [simulator] section.

Validated with pydantic at start-up; keys of sections owned by other packages are ignored, and a bad
file fails naming the file, the key path and why (calc.plant.describe_errors).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from calc.devices import MAPS
from calc.entries import with_devices
from calc.plant import Carrier, describe_errors
from calc.schema import MeterId
from plantfile import read_plant_file
from simulators.errors import ConfigError as ConfigError  # raised by load_config; imported from here too
from simulators.faults import FaultSpec

Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]+$")]
Port = Annotated[int, Field(ge=1, le=65535)]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class ModbusTcpGateway(_Section):
    """An RS-485-to-TCP gateway: one TCP port, several unit ids behind it."""

    id: Name
    kind: Literal["modbus_tcp"]
    host: str = "127.0.0.1"
    port: Port
    offline_response: Literal["gateway_exception", "silent"] = Field(
        default="gateway_exception",
        description="what an offline meter behind the gateway looks like: exception 0x0B or no answer")


class ModbusRtuGateway(_Section):
    """A serial line (RS-485); in tests one end of a socat pty pair."""

    id: Name
    kind: Literal["modbus_rtu"]
    device: str = Field(min_length=1, description="serial port the simulated meters answer on")
    baudrate: int = Field(default=9600, gt=0)
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1


class OpcUaGateway(_Section):
    """An OPC UA server (a flow computer or a SCADA gateway) exposing several meters."""

    id: Name
    kind: Literal["opcua"]
    host: str = "127.0.0.1"
    port: Port
    security: tuple[Literal["None", "Basic256Sha256"], ...] = ("None", "Basic256Sha256")
    cert_dir: Path | None = Field(default=None, description="where the generated certificate is kept")
    username: str | None = None
    password: str | None = None

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://{self.host}:{self.port}/carbonwatch/sim"


Gateway = Annotated[ModbusTcpGateway | ModbusRtuGateway | OpcUaGateway, Field(discriminator="kind")]

# the device maps (calc/devices) and the suffix of each one's rate keys in the `sim` table (base_kw, peak_m3_h)
RATE_KEYS = {name: device.rate_key for name, device in MAPS.items()}


class Weather(_Section):
    """An outdoor temperature sensor's air temperature: a daily swing around a mean that drifts from day to day
    (seeded), without sensor noise (the device adds 0.2 K)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mean_c: float = Field(default=5.0, ge=-60, le=60, allow_inf_nan=False, description="mean air temperature")
    swing_c: float = Field(default=4.0, ge=0, le=30, allow_inf_nan=False, description="half the daily range")
    warmest_hour: float = Field(default=15.0, ge=0, lt=24, description="local hour of the daily maximum")
    day_sd_c: float = Field(default=3.0, ge=0, le=30, allow_inf_nan=False,
                            description="standard deviation of a day's mean around mean_c (seeded per local day)")


class EnergyModel(_Section):
    """A meter whose rate follows a known model (a test recovers its coefficients from stored data):
    rate = base + per_unit x production rate + per_degree_day x HDD rate + noise, in the map's rate unit, with
    the HDD rate = max(0, hdd_base_c - T) / 24 degree-days per hour. Energy per interval is then
    base x hours + per_unit x production + per_degree_day x HDD + noise. The noise is normal, `noise_sd` in the
    rate unit, one draw per block of `noise_block_s` simulated seconds (seeded), so an interval's noise does not
    average away. The `waste` fault multiplies the rate by its factor."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    production: MeterId = Field(description="the production counter variable that drives it")
    temperature: MeterId | None = Field(default=None, description="the outdoor temperature variable, if any")
    base: float = Field(ge=0, allow_inf_nan=False, description="a: rate with no production and no HDD (e.g. kW)")
    per_unit: float = Field(default=0.0, ge=0, allow_inf_nan=False,
                            description="b: energy per unit of production (rate unit x h, e.g. kWh per count)")
    per_degree_day: float = Field(default=0.0, ge=0, allow_inf_nan=False,
                                  description="c: energy per heating degree-day (rate unit x h per K d)")
    hdd_base_c: float = Field(default=18.0, ge=-30, le=40, description="base of the degree-days, degC")
    noise_sd: float = Field(default=0.0, ge=0, allow_inf_nan=False, description="noise, in the rate unit")
    noise_block_s: int = Field(default=900, ge=1, le=86400, description="seconds one noise draw lasts")


class SimSpec(_Section):
    """How one meter behaves: its load profile, noise, starting counter and faults from the config."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    profile: Literal["shift", "continuous", "solar"] = Field(default="continuous", description="solar: a PV "
                                                             "generation meter on a clear-sky day curve (peak at "
                                                             "solar noon, zero outside `daylight_h`)")
    daylight_h: tuple[float, float] = Field(default=(6.0, 18.0), description="solar: sunrise and sunset, local "
                                            "hours (the curve is sin(pi x day fraction)^1.5 times the peak)")
    generation: MeterId | None = Field(default=None, description="a grid meter with a PV generation meter behind "
                                       "it (that meter's id): this one imports max(0, load - generation) and its "
                                       "export register counts max(0, generation - load)")
    base_kw: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    peak_kw: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    base_m3_h: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    peak_m3_h: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    base_kg_h: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    peak_kg_h: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    base_per_h: float | None = Field(default=None, ge=0, allow_inf_nan=False, description="production counters: "
                                     "output per hour off shift")
    peak_per_h: float | None = Field(default=None, ge=0, allow_inf_nan=False, description="production counters: "
                                     "output per hour at a shift's start-up peak (0.75 of the span above base runs "
                                     "through the shift)")
    model: EnergyModel | None = Field(default=None, description="the rate follows this model instead of a profile")
    weather: Weather | None = Field(default=None, description="outdoor temperature sensors: the air temperature")
    noise: float = Field(default=0.03, ge=0, le=1, description="relative standard deviation per step")
    shifts: tuple[tuple[int, int], ...] = Field(default=((6, 14), (14, 22)),
                                                description="(start hour, end hour) in the site's time zone")
    startup_min: float = Field(default=15.0, ge=0, description="minutes of start-up peak after a shift starts")
    weekend_factor: float = Field(default=0.0, ge=0, le=1, description="weekend load between base (0) and shift")
    counter_start: int = Field(default=0, ge=0, description="register counter at start, in counts (rollover tests)")
    pressure_bar: float = Field(default=4.0, gt=0, description="opcua meters: gauge pressure")
    temperature_c: float = Field(default=15.0, description="opcua meters: line temperature")
    faults: tuple[FaultSpec, ...] = ()

    def rate_bounds(self, key: str) -> tuple[float, float] | None:
        base, peak = getattr(self, f"base_{key}"), getattr(self, f"peak_{key}")
        if base is None or peak is None:
            return None
        return float(base), float(peak)


class SimMeter(_Section):
    """A simulated meter, or a production counter or driver variable ([[variables]]: no carrier)."""

    id: MeterId
    area: str
    carrier: Carrier | None = None
    gateway: Name
    map: str = Field(description="a device map of calc/devices (its name, not an alias)")
    unit_id: int | None = Field(default=None, ge=1, le=247)
    pulse_m3: float | None = Field(default=None, gt=0, allow_inf_nan=False,
                                   description="pulse-counter maps (adam6051_counter): m3 of gas per counted pulse "
                                   "(the scale factor)")
    sim: SimSpec = SimSpec()

    @field_validator("map")
    @classmethod
    def _known_map(cls, name: str) -> str:
        if name not in MAPS:
            raise ValueError(f"unknown register map {name!r}; known: {', '.join(sorted(MAPS))}")
        return name

    @model_validator(mode="after")
    def _rates_match_map(self) -> SimMeter:
        device = MAPS[self.map]
        if MAPS[self.map].protocol == "modbus" and self.unit_id is None:
            raise ValueError(f"map {self.map!r} is a Modbus device and needs unit_id")
        if not device.has_counter:
            if self.sim.weather is None:
                raise ValueError(f"map {self.map!r} is a temperature sensor and needs sim.weather")
            return self
        if device.pulse_scaled and self.pulse_m3 is None:
            raise ValueError(f"map {self.map!r} needs pulse_m3 (m3 per pulse, the counter's scale factor)")
        if self.sim.model is not None:
            return self
        key = RATE_KEYS[self.map]
        bounds = self.sim.rate_bounds(key)
        if bounds is None:
            raise ValueError(f"map {self.map!r} needs sim.base_{key} and sim.peak_{key}")
        if bounds[1] < bounds[0]:
            raise ValueError(f"sim.peak_{key} ({bounds[1]}) is below sim.base_{key} ({bounds[0]})")
        return self

    @property
    def rate_bounds(self) -> tuple[float, float]:
        """The profile's base and peak; (0, 0) for a sensor or a meter that follows a model."""
        if not RATE_KEYS[self.map] or self.sim.model is not None:
            return 0.0, 0.0
        bounds = self.sim.rate_bounds(RATE_KEYS[self.map])
        assert bounds is not None
        return bounds


class SimulatorSection(_Section):
    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = 0
    acceleration: float = Field(default=1.0, gt=0, le=1_000_000, allow_inf_nan=False,
                                description="simulated seconds per real second")
    control_url: str = "http://127.0.0.1:8021"
    start: AwareDatetime | None = Field(default=None, description="simulated time at start; default: now")
    step_s: int = Field(default=1, ge=1, le=3600, description="simulated seconds per integration step")
    truth_interval_s: int = Field(default=900, ge=1, description="length of the ground-truth intervals")
    truth_file: Path | None = Field(default=None, description="append each closed truth interval here (JSON lines)")
    edge_clock_file: Path | None = Field(
        default=None, description="libfaketime timestamp file of the edge agent's wall clock (simulators/README.md): "
        "the simulator writes the offset there at start and on POST /edge_clock")
    edge_clock_offset_s: float = Field(default=0.0, allow_inf_nan=False, ge=-10 * 365 * 86400, le=10 * 365 * 86400,
                                       description="the edge's wall clock at start: seconds ahead (+) or behind (-) "
                                       "real time; needs edge_clock_file")

    @model_validator(mode="after")
    def _loopback_url(self) -> SimulatorSection:
        parts = urlsplit(self.control_url)
        if parts.scheme != "http" or not parts.hostname or parts.port is None:
            raise ValueError(f"control_url must look like http://HOST:PORT, got {self.control_url!r}")
        if self.edge_clock_offset_s and self.edge_clock_file is None:
            raise ValueError("edge_clock_offset_s needs edge_clock_file (where the edge's libfaketime reads it)")
        return self


class SiteRef(_Section):
    id: Name
    timezone: str = "UTC"


class SimConfig(_Section):
    site: SiteRef
    gateways: tuple[Gateway, ...] = ()
    meters: tuple[SimMeter, ...] = Field(min_length=1)
    variables: tuple[SimMeter, ...] = ()
    simulator: SimulatorSection = SimulatorSection()

    @property
    def devices(self) -> tuple[SimMeter, ...]:
        """Every simulated device: the meters, then the variables (production counters, sensors)."""
        return self.meters + self.variables

    @model_validator(mode="after")
    def _references(self) -> SimConfig:
        gateways = {g.id: g for g in self.gateways}
        if len(gateways) != len(self.gateways):
            raise ValueError("two gateways share an id")
        seen: set[tuple[str, int]] = set()
        meter_ids: set[str] = set()
        places = [(f"meters.{i}", m) for i, m in enumerate(self.meters)]
        places += [(f"variables.{i}", m) for i, m in enumerate(self.variables)]
        for place, meter in places:
            where = f"{place} ({meter.id})"
            if meter.id in meter_ids:
                raise ValueError(f"{where}: meter id appears twice")
            meter_ids.add(meter.id)
            gw = gateways.get(meter.gateway)
            if gw is None:
                raise ValueError(f"{where}: gateway {meter.gateway!r} is not in [[gateways]]")
            if (gw.kind == "opcua") != (MAPS[meter.map].protocol == "opcua"):
                raise ValueError(f"{where}: map {meter.map!r} cannot be served by a {gw.kind} gateway")
            if meter.unit_id is not None and gw.kind != "opcua":
                key = (gw.id, meter.unit_id)
                if key in seen:
                    raise ValueError(f"{where}: unit_id {meter.unit_id} is used twice on gateway {gw.id}")
                seen.add(key)
        earlier: set[str] = set()
        for place, meter in places:
            gen = meter.sim.generation
            if gen is not None and (gen not in earlier or not any(p.shows == "export_counter"
                                                                  for p in MAPS[meter.map].points)):
                raise ValueError(f"{place}.sim.generation: {gen!r} is not a meter with profile \"solar\" declared "
                                 f"before this one, or map {meter.map!r} has no export register")
            if meter.sim.profile == "solar":
                earlier.add(meter.id)
        variables = {v.id: v for v in self.variables}
        for place, meter in places:
            model = meter.sim.model
            if model is None:
                continue
            made = variables.get(model.production)
            if made is None or not MAPS[made.map].has_counter:
                raise ValueError(f"{place}.sim.model.production: {model.production!r} is not a production counter "
                                 "in [[variables]]")
            if model.temperature is not None:
                sensor = variables.get(model.temperature)
                if sensor is None or sensor.sim.weather is None:
                    raise ValueError(f"{place}.sim.model.temperature: {model.temperature!r} is not a temperature "
                                     "sensor in [[variables]] (with sim.weather)")
        return self

    def gateway(self, gateway_id: str) -> ModbusTcpGateway | ModbusRtuGateway | OpcUaGateway:
        for gw in self.gateways:
            if gw.id == gateway_id:
                return gw
        raise KeyError(gateway_id)

    def meters_on(self, gateway_id: str) -> list[SimMeter]:
        return [m for m in self.devices if m.gateway == gateway_id]

    def start_time(self, now: datetime) -> datetime:
        return self.simulator.start or now


def parse_config(data: dict[str, Any], source: str = "<plant>") -> SimConfig:
    try:
        return SimConfig.model_validate(with_devices(data))   # a variable entered by hand has no device
    except ValidationError as exc:
        raise ConfigError(describe_errors(source, exc)) from exc


def load_config(path: Path | str) -> SimConfig:
    """Read and validate a plant TOML file (the simulators' sections only; secrets as plantfile reads them)."""
    plant_file = read_plant_file(path, ConfigError)
    return parse_config(plant_file.data, plant_file.source)
