"""`carbonwatch ingest --config FILE [--mqtt-url URL]`: run one ingest worker until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import sqlite3
import sys
import threading
from pathlib import Path
from types import FrameType

from ingest.buffer import DiskBufferError
from ingest.config import load_config

log = logging.getLogger("carbonwatch.ingest")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=getattr(logging, args.log_level), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # errors reach deploy.exit_codes: a ConfigError exits 2; StoreError, MqttError, DiskBufferError (all IngestError)
    # and FactorError (a CalcError) exit 1
    config = load_config(Path(args.config), args.mqtt_url)
    from ingest.service import IngestWorker

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        worker = IngestWorker(config)
    except (OSError, sqlite3.Error) as exc:  # e.g. a buffer folder that cannot be written
        raise DiskBufferError(f"cannot open the disk buffer {config.buffer_path}: {exc}") from exc
    worker.run(stop, threading.Event())
    m = worker.metrics
    print(f"carbonwatch ingest: stopped; received {m.received_messages} messages, stored {m.stored} points, "
          f"{m.duplicates} duplicates, {m.conflicts} conflicts, {m.dead_lettered} dead-lettered", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("ingest", help="subscribe to readings, convert to CO2e, store exactly once",
                            description=__doc__)
    parser.add_argument("--config", required=True, help="plant file (TOML) with [site], [[meters]], [mqtt], [store]")
    parser.add_argument("--mqtt-url", default=None, help="broker URL, overrides [mqtt] url (mqtt:// or mqtts://)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="what to log (default INFO: start, stop, store outages and recoveries, refused input)")
    parser.set_defaults(func=run)
