"""The simulated plant: every meter of a plant file, its Modbus/OPC UA servers and the control interface.

`async with SimulatedPlant(config) as plant:` starts it in-process (tests, `carbonwatch simulate`);
`plant.truth()`, `pause()`, `resume()`, `set_fault()`, `clear_fault()`, `edge_clock` are what the HTTP routes call.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from calc.devices import device_map
from simulators.clock import SimClock
from simulators.config import SimConfig, SimMeter, load_config
from simulators.control import ControlServer, build_app
from simulators.edgeclock import EdgeClock
from simulators.faults import MODBUS_ONLY, OPCUA_ONLY, FaultKind, FaultSpec
from simulators.meter import CounterModel, MeterSim
from simulators.modbus import ModbusGateway
from simulators.profiles import ModelProfile, NetOfGeneration, Rate, Weather, make_profile

log = logging.getLogger(__name__)

TICK_S = 0.25  # real seconds between background integrations (truth intervals close on time)


class Server(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


def counter_model(meter: SimMeter) -> CounterModel:
    """What one count of a meter's counter is and how fast its rate makes counts (from its map's declaration);
    a sensor's counter counts nothing."""
    device = device_map(meter.map)
    if not device.has_counter:
        return CounterModel("", 1.0, 1.0, "", None, "")
    counter = device.counter_point
    if device.pulse_scaled:  # one count is a pulse; the meter's pulse weight makes it a volume
        assert meter.pulse_m3 is not None
        return CounterModel(counter.label, 1.0 / meter.pulse_m3, 1, "count", device.width_bits, device.rate_unit,
                            scale=(meter.pulse_m3, counter.unit))
    return CounterModel(counter.label, device.counts_per_rate_hour, device.count_size, counter.unit,
                        device.width_bits, device.rate_unit)


class SimulatedPlant:
    """All simulated meters of one plant file, served over real sockets."""

    def __init__(self, config: SimConfig, *, paused: bool = False, control_url: str | None = None,
                 serve_control: bool = True, start: datetime | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        sim = config.simulator
        start_time = start or sim.start or datetime.now(UTC).replace(microsecond=0)
        self.clock = SimClock(start_time, sim.acceleration, paused=paused, monotonic=monotonic)
        self.meters: dict[str, MeterSim] = {}  # meters and variables (production counters, sensors), by id
        profiles: dict[str, Rate] = {}
        weathers: dict[str, Weather] = {}
        tz = config.site.timezone
        # variables first: a meter's energy model reads its production counter's profile and its sensor's weather
        for meter in (*config.variables, *config.meters):
            weather = Weather(meter.sim.weather, ZoneInfo(tz), sim.seed, meter.id) if meter.sim.weather else None
            model = meter.sim.model
            profile: Rate
            if model is not None:
                profile = ModelProfile(model, profiles[model.production],
                                       weathers[model.temperature] if model.temperature else None, sim.seed,
                                       meter.id, sim.step_s)
            else:
                profile = make_profile(meter.sim, meter.rate_bounds, tz, sim.seed, meter.id)
            export: Rate | None = None
            if meter.sim.generation is not None:   # generation behind a grid meter: import and export the net
                export = NetOfGeneration(profile, profiles[meter.sim.generation], export=True)
                profile = NetOfGeneration(profile, profiles[meter.sim.generation])
            profiles[meter.id] = profile
            if weather is not None:
                weathers[meter.id] = weather
            self.meters[meter.id] = MeterSim(meter, profile, counter_model(meter), start_time, sim.step_s,
                                             sim.truth_interval_s, weather=weather, export=export)
        self.control_url = control_url or sim.control_url
        self._serve_control = serve_control
        self._servers: list[Server] = []
        self._control: ControlServer | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._truth_file: Path | None = sim.truth_file
        self.gateways: dict[str, Server] = {}
        # the edge agent's wall clock (libfaketime timestamp file), when the plant file names one
        self.edge_clock = EdgeClock(sim.edge_clock_file, sim.edge_clock_offset_s) if sim.edge_clock_file else None

    @classmethod
    def from_file(cls, path: Path | str, **kwargs: Any) -> SimulatedPlant:
        return cls(load_config(path), **kwargs)

    # --- life cycle ----------------------------------------------------------------------------------
    async def start(self) -> None:
        try:
            for gw in self.config.gateways:
                meters = [self.meters[m.id] for m in self.config.meters_on(gw.id)]
                server: Server
                if gw.kind == "opcua":
                    from simulators.opcua import OpcUaGatewayServer  # asyncua is slow to import

                    server = OpcUaGatewayServer(gw, meters, self.clock, self.config.simulator.seed)
                else:
                    server = ModbusGateway(gw, meters, self.clock.elapsed_s, self.config.simulator.seed)
                await server.start()
                self._servers.append(server)
                self.gateways[gw.id] = server
            if self._serve_control:
                parts = urlsplit(self.control_url)
                assert parts.hostname is not None and parts.port is not None
                self._control = ControlServer(build_app(self), parts.hostname, parts.port)
                await self._control.start()
                self.control_url = f"http://{parts.hostname}:{self._control.port}"
            self._ticker = asyncio.create_task(self._tick(), name="simulator-ticker")
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        control, self._control = self._control, None
        if control is not None:
            await control.stop()
        servers, self._servers = self._servers, []
        for server in reversed(servers):
            try:
                await server.stop()
            except Exception:  # one server failing to stop must not leave the others running
                log.exception("stopping %s failed", server)
        self.advance()  # close what is due, then write it out

    async def __aenter__(self) -> SimulatedPlant:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            self.advance()

    # --- state -----------------------------------------------------------------------------------------
    def advance(self) -> None:
        """Integrate every meter up to the simulated now, and write truth intervals that closed."""
        elapsed = self.clock.elapsed_s()
        closed = []
        for meter in self.meters.values():
            meter.advance(elapsed)
            closed.extend(meter.drain_closed())
        if closed and self._truth_file is not None:
            with self._truth_file.open("a", encoding="utf-8") as fh:
                for record in closed:
                    fh.write(json.dumps(record.as_dict()) + "\n")

    def truth(self) -> dict[str, Any]:
        self.advance()
        return {"sim_time": self.clock.now().isoformat(), "paused": self.clock.paused,
                "elapsed_s": self.clock.elapsed_s(),
                "meters": {mid: m.truth() for mid, m in self.meters.items()}}

    def pause(self, idle: bool = False) -> dict[str, Any]:
        """Stop simulated time (the registers stand still, the gauges show what they showed); `idle`: the line
        stops too, so the rate gauges read zero until `resume()`."""
        self.clock.pause()
        for meter in self.meters.values():
            meter.halted = idle
        return self.truth()

    def resume(self) -> dict[str, Any]:
        truth = self.truth()  # the state the plant resumes from: produced from here on is new energy
        self.clock.resume()
        for meter in self.meters.values():
            meter.halted = False
        return truth

    def intervals(self, meter_id: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        self.advance()
        meters = [self.meters[meter_id]] if meter_id is not None else list(self.meters.values())
        records = sorted((r for m in meters for r in m.intervals), key=lambda r: (r.start, r.meter))
        return [r.as_dict() for r in records[-limit:]]

    # --- faults -----------------------------------------------------------------------------------------
    def set_fault(self, meter_id: str, spec: FaultSpec) -> None:
        meter = self.meters[meter_id]
        opcua = device_map(meter.meter.map).protocol == "opcua"
        if opcua and spec.fault in MODBUS_ONLY:
            raise ValueError(f"meter {meter_id} is an OPC UA meter; fault {spec.fault} is a Modbus fault")
        if not opcua and spec.fault in OPCUA_ONLY:
            raise ValueError(f"meter {meter_id} is a Modbus meter; fault {spec.fault} is an OPC UA fault")
        self.advance()
        meter.apply_fault(spec)

    def clear_fault(self, meter_id: str, kind: FaultKind | None = None) -> None:
        self.advance()
        self.meters[meter_id].clear_fault(kind)
