"""The embedded MQTT broker for single-machine use: Mosquitto when installed, else amqtt (pure Python).

amqtt speaks MQTT 3.1.1 only, ignores shared subscriptions and can deliver a stray retained message;
the services are written to cope with that. Its persistent sessions are kept (deploy/broker_auth.py).
Mosquitto's queue limit is lifted (max_queued_messages 0), packets are capped at MAX_PACKET_BYTES, and its
sessions and queued messages persist under the data folder like the shipped broker's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from pathlib import Path

from deploy.services import MAX_PACKET_BYTES, find_binary

EMBEDDED_MOSQUITTO_CONF = """\
# Written by `carbonwatch run` (deploy/broker.py): loopback only, anonymous, persisted under the data folder.
listener {port} {host}
allow_anonymous true
# The default of 1000 silently drops QoS 1 messages to a slow subscriber: never cap the queue.
max_queued_messages 0
max_inflight_messages 0
# Above the largest message the reading schema allows (docs/deployment.md); a bigger packet costs its sender
# the connection, never the broker. Not message_size_limit: see deploy/services.py.
max_packet_size {max_packet_bytes}
# Sessions (ingest's subscription) and queued QoS 1 messages survive a restart of the broker; saved every
# autosave_interval seconds and on a clean stop.
persistence true
persistence_location {workdir}/
autosave_interval 30
log_dest stdout
log_type error
log_type warning
log_type notice
"""


def mosquitto_command(workdir: Path, host: str, port: int) -> list[str] | None:
    """Command line that runs Mosquitto in the foreground on host:port, or None when it is not installed."""
    exe = find_binary("mosquitto")
    if exe is None:
        return None
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "mosquitto.conf"
    text = EMBEDDED_MOSQUITTO_CONF.format(port=port, host=host, max_packet_bytes=MAX_PACKET_BYTES,
                                          workdir=workdir.resolve())
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
