"""`carbonwatch edge --config FILE [--mqtt-url URL] [--state-dir DIR]`: run the edge agent until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from pathlib import Path

from edge.config import load_config

log = logging.getLogger("edge")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("edge", help="run the edge agent: poll meters, publish readings over MQTT",
                            description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="plant TOML file")
    parser.add_argument("--mqtt-url", default=None, help="overrides [mqtt] url (mqtt://host:port, mqtts://...)")
    parser.add_argument("--state-dir", type=Path, default=None, help="overrides [edge] state_dir")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.set_defaults(func=run)


async def _main(args: argparse.Namespace) -> int:
    from edge.agent import Agent

    config = load_config(args.config, args.mqtt_url, args.state_dir)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    agent = Agent(config)
    log.info("edge agent %s: %d meters on %d gateways, broker %s, state in %s", config.edge.agent,
             len(config.meters), len(config.gateways), config.mqtt.effective_url, config.edge.state_dir)
    await agent.run(stop)
    log.info("edge agent stopped: %d messages published (%d of them again), %d confirmed (by %s), %d spooled "
             "(%d awaiting ingest's acknowledgement), %d compactions, %d refused", agent.published,
             agent.outbox.resent, agent.acknowledged, agent.config.edge.confirm, agent.spool.size,
             agent.outbox.awaiting_ack, agent.spool.compactions, agent.spool.refused)
    return 0


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # its errors are ours to report, as reasons
    # errors reach deploy.exit_codes: ConfigError exits 2; a state_dir that cannot be written or a missing
    # certificate file (OSError, sqlite3.Error) exits 1
    with _runner() as runner:
        return runner.run(_main(args))


def _runner() -> asyncio.Runner:
    """uvloop's event loop when it is installed (a dependency on Linux): the agent's CPU per read is mostly the
    loop's own work per Modbus request and MQTT message (docs/scaling.md, the edge section); else asyncio's
    (also with CARBONWATCH_EVENT_LOOP=asyncio, to compare or to rule the loop out)."""
    if os.environ.get("CARBONWATCH_EVENT_LOOP") == "asyncio":
        return asyncio.Runner()
    try:
        import uvloop
    except ImportError:
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)
