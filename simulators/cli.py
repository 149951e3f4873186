"""`carbonwatch simulate --plant FILE`: run the simulated meters of a plant file until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from simulators.config import load_config
from simulators.plant import SimulatedPlant


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("simulate", help="run the simulated meters of a plant file",
                            description=__doc__)
    parser.add_argument("--plant", type=Path, required=True, help="plant TOML file")
    parser.add_argument("--paused", action="store_true", help="start with simulated time stopped (POST /resume)")
    parser.add_argument("--control-url", default=None, help="override [simulator] control_url")
    parser.set_defaults(func=run)


async def _serve(plant: SimulatedPlant) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with plant:
        names = ", ".join(f"{g.id} ({g.kind})" for g in plant.config.gateways)
        print(f"simulating {len(plant.meters)} meters on {names}; control {plant.control_url}", flush=True)
        await stop.wait()
    print("simulator stopped", flush=True)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # errors reach deploy.exit_codes: a ConfigError exits 2; a server that cannot start (StartError, OSError) 1
    plant = SimulatedPlant(load_config(args.plant), paused=args.paused, control_url=args.control_url)
    asyncio.run(_serve(plant))
    # Every server is closed and the truth file written. Tearing down the interpreter (asyncua's address
    # space is large) takes over a second, which a supervisor waiting on SIGTERM should not have to wait.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
