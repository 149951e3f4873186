"""The simulator's HTTP control and ground-truth interface (FastAPI on the loopback control_url).

GET /healthz, GET /truth, GET /truth/intervals, POST /pause, POST /resume,
GET /faults, POST /faults {"meter": ID, "fault": KIND, ...params}, DELETE /faults?meter=ID[&fault=KIND],
GET /edge_clock, POST /edge_clock {"seconds": OFFSET}, DELETE /edge_clock (back to real time).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import uvicorn
from fastapi import FastAPI, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

from simulators.errors import StartError
from simulators.faults import FaultKind, FaultSpec

if TYPE_CHECKING:
    from simulators.edgeclock import EdgeClock
    from simulators.plant import SimulatedPlant


class FaultRequest(FaultSpec):
    """POST /faults body: the meter and the fault with its parameters."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    meter: str


class EdgeClockRequest(BaseModel):
    """POST /edge_clock body: the edge's wall clock, in seconds ahead (+) or behind (-) real time (not a step
    added to the current offset)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seconds: float = Field(allow_inf_nan=False, ge=-10 * 365 * 86400, le=10 * 365 * 86400)


def build_app(plant: SimulatedPlant) -> FastAPI:
    app = FastAPI(title="carbonwatch simulators", version="1", docs_url=None, redoc_url=None)

    def meter_or_404(meter_id: str) -> None:
        if meter_id not in plant.meters:
            raise HTTPException(404, f"no meter {meter_id!r}; meters: {sorted(plant.meters)}")

    @app.get("/healthz")
    async def healthz() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/truth")
    async def truth() -> dict[str, Any]:
        return plant.truth()

    @app.get("/truth/intervals")
    async def intervals(meter: str | None = None, limit: int = Query(default=1000, ge=1, le=100_000)
                        ) -> dict[str, Any]:
        if meter is not None:
            meter_or_404(meter)
        return {"interval_s": plant.config.simulator.truth_interval_s,
                "intervals": plant.intervals(meter, limit)}

    @app.post("/pause")
    async def pause(idle: bool = False) -> dict[str, Any]:
        """Stop simulated time; `?idle=true` also reads the rate gauges as zero (a stopped line, not a frozen
        one: a gauge still showing load while its counter stands still is what a stuck counter looks like)."""
        return plant.pause(idle=idle)

    @app.post("/resume")
    async def resume() -> dict[str, Any]:
        return plant.resume()

    @app.get("/faults")
    async def faults() -> dict[str, Any]:
        return {"faults": {mid: m.faults.as_list() for mid, m in plant.meters.items()}}

    @app.post("/faults")
    async def set_fault(body: FaultRequest) -> dict[str, Any]:
        meter_or_404(body.meter)
        spec = FaultSpec.model_validate(body.model_dump(exclude={"meter"}))
        try:
            plant.set_fault(body.meter, spec)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from exc
        return {"meter": body.meter, "faults": plant.meters[body.meter].faults.as_list()}

    @app.delete("/faults")
    async def clear_fault(meter: str, fault: FaultKind | None = None) -> dict[str, Any]:
        meter_or_404(meter)
        plant.clear_fault(meter, fault)
        return {"meter": meter, "faults": plant.meters[meter].faults.as_list()}

    def edge_clock_or_409() -> EdgeClock:
        if plant.edge_clock is None:
            raise HTTPException(409, "no [simulator] edge_clock_file in the plant file: the edge's clock is not "
                                     "simulated")
        return plant.edge_clock

    @app.get("/edge_clock")
    async def edge_clock() -> dict[str, object]:
        return edge_clock_or_409().as_dict()

    @app.post("/edge_clock")
    async def set_edge_clock(body: EdgeClockRequest) -> dict[str, object]:
        clock = edge_clock_or_409()
        await asyncio.to_thread(clock.set, body.seconds)
        return clock.as_dict()

    @app.delete("/edge_clock")
    async def reset_edge_clock() -> dict[str, object]:
        clock = edge_clock_or_409()
        await asyncio.to_thread(clock.set, 0.0)
        return clock.as_dict()

    return app


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the CLI owns SIGINT/SIGTERM and stops the whole plant."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ControlServer:
    """Runs the control app in the plant's event loop."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._server = _Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off",
                                              access_log=False))
        self._task: asyncio.Task[None] | None = None

    async def start(self, timeout_s: float = 10.0) -> None:
        # bind here so that a taken port is a clear error (uvicorn would sys.exit inside the task)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise StartError(f"control server cannot listen on {self.host}:{self.port}: {exc.strerror}") from exc
        self.port = int(sock.getsockname()[1])
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name=f"control-http-{self.port}")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises the start-up error (e.g. port in use)
                raise StartError(f"control server on {self.host}:{self.port} exited at start")
            if loop.time() > deadline:
                raise StartError(f"control server on {self.host}:{self.port} did not start in {timeout_s} s")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=5.0)
