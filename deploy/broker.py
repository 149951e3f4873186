"""The embedded MQTT broker for single-machine use: Mosquitto when installed, else amqtt (pure Python).

amqtt speaks MQTT 3.1.1 only, ignores shared subscriptions and can deliver a stray retained message;
the services are written to cope with that. Its persistent sessions are kept (deploy/broker_auth.py).
Mosquitto's queue limit is lifted (max_queued_messages 0).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from pathlib import Path

from deploy.services import MOSQUITTO_CONF, find_binary


def mosquitto_command(workdir: Path, host: str, port: int) -> list[str] | None:
    """Command line that runs Mosquitto in the foreground on host:port, or None when it is not installed."""
    exe = find_binary("mosquitto")
    if exe is None:
        return None
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "mosquitto.conf"
    text = MOSQUITTO_CONF.format(port=port, host=host)
    import os

    if os.geteuid() == 0:
        text += "user root\n"
    conf.write_text(text)
    return [exe, "-c", str(conf)]


def amqtt_config(host: str, port: int) -> dict[str, object]:
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        # every client admitted (loopback only) and persistent sessions kept: see deploy/broker_auth.py
        "plugins": {"deploy.broker_auth.SessionKeepingAuthPlugin": {}},
    }


async def run_amqtt(host: str, port: int, stop: asyncio.Event) -> None:
    from amqtt.broker import Broker

    broker = Broker(amqtt_config(host, port))
    await broker.start()
    try:
        await stop.wait()
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(broker.shutdown(), 3)


def _cmd_broker(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("amqtt").setLevel(logging.ERROR)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_amqtt(args.host, args.port, stop)

    asyncio.run(main())
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("broker", help="run the embedded MQTT broker (amqtt, MQTT 3.1.1)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1883)
    parser.set_defaults(func=_cmd_broker)
