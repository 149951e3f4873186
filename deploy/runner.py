"""`carbonwatch run`: the whole system on one machine from one plant file.

Starts a broker (unless one is configured), the simulated plant, ingest into the embedded store, the edge
agent and the API, each as a supervised child process with its log under the data folder (deploy/supervisor.py):
one that exits is restarted after a capped, jittered backoff; Ctrl-C stops them all.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from deploy.broker import mosquitto_command
from deploy.services import ServiceError, free_port
from deploy.supervisor import STOP_TIMEOUT_S, Child, Supervisor, wait_interruptibly
from plantfile import read_plant_file, validate_section

START_TIMEOUT_S = 60.0     # the plant must be up (broker, ingest subscribed, API listening) within this
START_ATTEMPTS = 3         # a service that exits this often before it was ever ready is a start failure
STOP_STAGES = [["edge", "simulate", "scada", "api"], ["ingest"], ["mosquitto", "amqtt"]]
__all__ = ["STOP_TIMEOUT_S", "Runner"]


def default_plant() -> Path:
    return Path(str(resources.files("deploy").joinpath("examples/demo-plant.toml")))


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _listening(host: str, port: int) -> Callable[[Child], bool]:
    def probe(child: Child) -> bool:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return True
        except OSError:
            return False
    return probe


def _subscribed(snapshot: Path) -> Callable[[Child], bool]:
    """Ingest is ready once this process has subscribed: it then writes its metrics snapshot, whose `started`
    is later than our spawn (a snapshot left by an earlier ingest does not count)."""
    def probe(child: Child) -> bool:
        try:
            started = float(json.loads(snapshot.read_text()).get("started", 0.0))
        except (OSError, ValueError, AttributeError):
            return False
        return started >= child.started_wall
    return probe


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "deploy.cli", *args]


class Runner:
    """The plant's services as supervised children, in dependency order: broker, then ingest (subscribed),
    then the edge; the simulators, SCADA and the API beside them. A service that exits is restarted; when
    the embedded broker exits, ingest and the edge are stopped and started again after it, in that order."""

    def __init__(self, plant_file: Path, data_dir: Path, mqtt_url: str | None, api_port: int | None,
                 broker: str = "auto") -> None:
        from api.settings import ApiSection
        from ingest.config import config_from_data

        self.plant_file = plant_file.resolve()
        # read and validated as the services will read it: a bad file stops here, naming file, key and why
        self.data: dict[str, Any] = read_plant_file(self.plant_file).data
        source = str(self.plant_file)
        self.ingest = config_from_data(self.data, Path.cwd(), source)
        api: ApiSection = validate_section(self.data, "api", ApiSection, source)
        self.data_dir = data_dir
        self.logs = data_dir / "logs"
        self.mqtt_url = mqtt_url or self.ingest.mqtt.url  # empty: no broker configured, an embedded one runs
        self.api_host = api.host
        self.api_port = api_port if api_port is not None else api.port
        self.broker = broker
        self.sup = Supervisor(self.logs, state_file=data_dir / "run.json")

    def _add_broker(self) -> str:
        host, port = "127.0.0.1", 1883
        if not _port_free(host, port):
            port = free_port(host)
        cmd = mosquitto_command(self.data_dir / "broker", host, port) if self.broker != "amqtt" else None
        if cmd is None and self.broker == "mosquitto":
            raise ServiceError("--broker mosquitto: no mosquitto binary on PATH")
        name = "mosquitto" if cmd else "amqtt"
        # the same port on every restart: the clients reconnect to the URL they were given
        self.sup.add(Child(name, cmd or _cli("broker", "--host", host, "--port", str(port)),
                           ready_probe=_listening(host, port), restarts_with=("ingest", "edge")))
        self.mqtt_url = f"mqtt://{host}:{port}"
        return name

    def _api_key(self) -> str:
        demo_key = self.data_dir / "demo-api-key"
        if demo_key.exists():
            return demo_key.read_text().strip()
        from api.auth import write_key
        from api.settings import load_settings

        settings = load_settings(self.plant_file, Path.cwd())
        secret = write_key(settings.keys_path, "demo-admin", "admin")
        demo_key.write_text(secret + "\n")
        demo_key.chmod(0o600)
        return secret

    def plan(self) -> dict[str, str]:
        """Declare the children (nothing starts yet); returns what to show the operator once all are up."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not _port_free(self.api_host, self.api_port):
            raise ServiceError(f"port {self.api_port} on {self.api_host} is taken: stop what runs there or "
                               f"pass --api-port")
        shown: dict[str, str] = {}
        broker: tuple[str, ...] = ()
        if not self.mqtt_url:
            name = self._add_broker()
            broker = (name,)
            shown["broker"] = f"{self.mqtt_url} (embedded {name})"
        else:
            shown["broker"] = self.mqtt_url
        plant = str(self.plant_file)
        if "simulator" in self.data:
            from simulators.config import parse_config

            sim = parse_config(self.data, plant).simulator
            self.sup.add(Child("simulate", _cli("simulate", "--plant", plant)))
            shown["simulators"] = f"{sim.control_url}/truth (ground truth)"
        # the edge starts once ingest has subscribed, so that its first readings find ingest's persistent session
        snapshot = self.ingest.metrics_path
        self.sup.add(Child("ingest", _cli("ingest", "--config", plant, "--mqtt-url", self.mqtt_url), after=broker,
                           ready_probe=_subscribed(snapshot)))
        self.sup.add(Child("edge", _cli("edge", "--config", plant, "--mqtt-url", self.mqtt_url,
                                        "--state-dir", str(self.data_dir / "edge")), after=("ingest",)))
        if "scada" in self.data:
            self.sup.add(Child("scada", _cli("scada", "--config", plant, "--mqtt-url", self.mqtt_url), after=broker))
            shown["scada"] = "OPC UA / Sparkplug B / Modbus as configured in [scada] (docs/scada.md)"
        key = self._api_key()
        self.sup.add(Child("api", _cli("api", "--config", plant, "--host", self.api_host, "--port",
                                       str(self.api_port), "--mqtt-url", self.mqtt_url), after=broker,
                           ready_probe=_listening(self.api_host, self.api_port)))
        url = f"http://{self.api_host}:{self.api_port}"
        shown["dashboard"] = f"{url}/#key={key}"
        shown["api"] = f"{url}  (docs {url}/docs)"
        shown["balance"] = f"curl -H 'Authorization: Bearer {key}' '{url}/v1/balance?period=today'"
        shown["api key"] = f"{key}  (admin; kept in {self.data_dir / 'demo-api-key'})"
        store = self.ingest.store
        shown["store"] = store.path if store.kind == "sqlite" else f"{store.url} (InfluxDB {store.database})"
        shown["logs"] = f"{self.logs}  (pids and restarts: {self.data_dir / 'run.json'})"
        return shown

    def start(self, stop_requested: Callable[[], bool], report: Callable[[str], None]) -> bool:
        """Start the children in order and wait until every one is ready. False if a stop was requested first;
        raises ServiceError when the plant does not come up (a service keeps exiting, or the deadline passes)."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.sup.all_ready():
            for line in self.sup.tick():
                report(line)
            for child in self.sup.children:
                if child.failures >= START_ATTEMPTS and not child.was_ready:
                    raise ServiceError(f"{child.name} exited {child.failures} times while starting; see {child.log}")
            if time.monotonic() > deadline:
                waiting = ", ".join(f"{c.name} (log {c.log})" for c in self.sup.children if not c.ready)
                raise ServiceError(f"not ready after {START_TIMEOUT_S:.0f} s: {waiting}")
            if wait_interruptibly(0.05, stop_requested):
                return False
        return True

    def supervise(self, stop_requested: Callable[[], bool], report: Callable[[str], None]) -> None:
        """Keep the plant running (restarting what exits) until a stop is requested."""
        while not wait_interruptibly(0.2, stop_requested):
            for line in self.sup.tick():
                report(line)

    def stop(self) -> None:
        self.sup.stop(STOP_STAGES)


def _cmd_run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    try:
        runner = Runner(Path(args.plant) if args.plant else default_plant(), Path(args.data_dir), args.mqtt_url,
                        args.api_port, args.broker)
    except ValueError as exc:  # the plant file's own errors (plantfile, ingest, API, simulators): file, key, why
        console.print(f"[red]could not start:[/red] {escape(str(exc))}")
        return 1
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    def report(line: str) -> None:
        console.print(line, style="yellow", markup=False, highlight=False, soft_wrap=True)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        shown = runner.plan()
        up = runner.start(lambda: stopping, report)
    except (ServiceError, OSError) as exc:
        console.print(f"[red]could not start:[/red] {escape(str(exc))}")
        runner.stop()
        return 1
    if up:
        table = Table(title=f"carbonwatch is running: {runner.plant_file.name}", show_header=False)
        for name, where in shown.items():
            table.add_row(name, escape(where))
        console.print(table)
        console.print("Press Ctrl-C to stop. A service that exits is restarted (capped, jittered backoff).")
        runner.supervise(lambda: stopping, report)
    console.print("stopping ...")
    runner.stop()
    console.print("stopped.")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("run", help="run the whole system (simulated demo plant by default)")
    parser.add_argument("--plant", default=None, help="plant file (default: the demo plant)")
    parser.add_argument("--data-dir", default=os.environ.get("CARBONWATCH_DATA_DIR", "var"),
                        help="folder for the store, state, keys and logs (default ./var)")
    parser.add_argument("--mqtt-url", default=None, help="use this broker instead of an embedded one")
    parser.add_argument("--api-port", type=int, default=None)
    parser.add_argument("--broker", choices=["auto", "mosquitto", "amqtt"], default="auto",
                        help="embedded broker when no URL is configured (auto: mosquitto if installed, else amqtt)")
    parser.set_defaults(func=_cmd_run)
