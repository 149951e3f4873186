"""`carbonwatch scada --config PLANT [--mqtt-url URL]`: serve the live CO2e figures over OPC UA, Sparkplug B and
Modbus TCP (those switched on in [scada]) until SIGINT or SIGTERM. Also runs as `python -m scada.cli`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from scada.config import load_config
from scada.errors import ConfigError

log = logging.getLogger("carbonwatch.scada")


async def serve(config_path: Path, mqtt_url: str | None) -> int:
    config = load_config(config_path, mqtt_url)
    from scada.service import ScadaService

    service = ScadaService(config)
    if not service.sinks:
        raise ConfigError(f"{config_path}: nothing to serve: switch on [scada.opcua], [scada.sparkplug] "
                          f"or [scada.modbus] with enabled = true")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    ready = asyncio.Event()
    runner = asyncio.create_task(service.run(stop, ready), name="scada")
    waiter = asyncio.create_task(ready.wait(), name="scada-ready")
    await asyncio.wait({runner, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if ready.is_set():
        names = ", ".join(type(s).__name__.removesuffix("Sink") for s in service.sinks)
        print(f"carbonwatch scada: serving {names} for site {config.site}", file=sys.stderr, flush=True)
    else:
        waiter.cancel()
    await runner
    return 0


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("asyncua").setLevel(logging.WARNING)
    logging.getLogger("pymodbus").setLevel(logging.WARNING)
    # errors reach deploy.exit_codes: a ConfigError exits 2; a server that cannot start (ServeError, OSError) 1
    return asyncio.run(serve(Path(args.config), args.mqtt_url))


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("scada", help="serve live CO2e over OPC UA, Sparkplug B and Modbus TCP",
                            description=__doc__)
    parser.add_argument("--config", required=True, help="plant file (TOML) with [site], [[meters]], [store], [scada]")
    parser.add_argument("--mqtt-url", default=None, help="broker URL, overrides [mqtt] url (mqtt:// or mqtts://)")
    parser.set_defaults(func=run)


if __name__ == "__main__":
    from deploy.cli import main

    sys.exit(main(["scada", *sys.argv[1:]]))
