"""`carbonwatch run`: the whole system on one machine from one plant file.

Starts a broker (unless one is configured), the simulated plant, ingest into the embedded store, the edge
agent and the API, each as a child process with its log under the data folder; Ctrl-C stops them all.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from deploy.broker import mosquitto_command
from deploy.services import ServiceError, free_port, wait_for_port

STOP_TIMEOUT_S = 4.0


def default_plant() -> Path:
    return Path(str(resources.files("deploy").joinpath("examples/demo-plant.toml")))


@dataclass
class Child:
    name: str
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None


def _port_free(host: str, port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "deploy.cli", *args]


class Runner:
    """Owns the child processes; stops them in reverse order, TERM then KILL, within STOP_TIMEOUT_S."""

    def __init__(self, plant_file: Path, data_dir: Path, mqtt_url: str | None, api_port: int | None,
                 broker: str = "auto") -> None:
        self.plant_file = plant_file.resolve()
        self.data: dict[str, Any] = tomllib.loads(self.plant_file.read_text(encoding="utf-8"))
        self.data_dir = data_dir
        self.logs = data_dir / "logs"
        self.mqtt_url = mqtt_url or str(self.data.get("mqtt", {}).get("url") or "")
        api = self.data.get("api", {})
        self.api_host = str(api.get("host", "127.0.0.1"))
        self.api_port = api_port if api_port is not None else int(api.get("port", 8000))
        self.broker = broker
        self.children: list[Child] = []

    def _spawn(self, child: Child) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        with (self.logs / f"{child.name}.log").open("ab") as log:
            child.proc = subprocess.Popen(child.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          start_new_session=True)
        self.children.append(child)

    def _broker(self) -> str:
        host, port = "127.0.0.1", 1883
        if not _port_free(host, port):
            port = free_port(host)
        cmd = mosquitto_command(self.data_dir / "broker", host, port) if self.broker != "amqtt" else None
        if cmd is None and self.broker == "mosquitto":
            raise ServiceError("--broker mosquitto: no mosquitto binary on PATH")
        name = "mosquitto" if cmd else "amqtt"
        self._spawn(Child(name, cmd or _cli("broker", "--host", host, "--port", str(port))))
        assert self.children[-1].proc is not None
        wait_for_port(host, port, 15.0, self.children[-1].proc)
        return f"mqtt://{host}:{port}"

    def _start_ingest(self, plant: str) -> None:
        """Start ingest and wait until it has subscribed (it then writes its first metrics snapshot), so that
        the edge's first readings are not published before ingest's persistent session exists."""
        from ingest.metrics import metrics_paths

        snapshot = metrics_paths(self.data, Path.cwd())[0]
        snapshot.unlink(missing_ok=True)
        self._spawn(Child("ingest", _cli("ingest", "--config", plant, "--mqtt-url", self.mqtt_url)))
        deadline = time.monotonic() + 30.0
        while not snapshot.exists():
            if self.failed() is not None or time.monotonic() > deadline:
                raise ServiceError(f"ingest did not subscribe; see {self.logs / 'ingest.log'}")
            time.sleep(0.05)

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

    def start(self) -> dict[str, str]:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not _port_free(self.api_host, self.api_port):
            raise ServiceError(f"port {self.api_port} on {self.api_host} is taken: stop what runs there or "
                               f"pass --api-port")
        shown: dict[str, str] = {}
        if not self.mqtt_url:
            self.mqtt_url = self._broker()
            shown["broker"] = f"{self.mqtt_url} (embedded {self.children[-1].name})"
        else:
            shown["broker"] = self.mqtt_url
        plant = str(self.plant_file)
        sim = self.data.get("simulator")
        if sim is not None:
            self._spawn(Child("simulate", _cli("simulate", "--plant", plant)))
            shown["simulators"] = f"{sim.get('control_url', 'http://127.0.0.1:8021')}/truth (ground truth)"
        self._start_ingest(plant)
        self._spawn(Child("edge", _cli("edge", "--config", plant, "--mqtt-url", self.mqtt_url,
                                       "--state-dir", str(self.data_dir / "edge"))))
        if "scada" in self.data:
            self._spawn(Child("scada", _cli("scada", "--config", plant, "--mqtt-url", self.mqtt_url)))
            shown["scada"] = "OPC UA / Sparkplug B / Modbus as configured in [scada] (docs/scada.md)"
        key = self._api_key()
        self._spawn(Child("api", _cli("api", "--config", plant, "--host", self.api_host,
                                      "--port", str(self.api_port), "--mqtt-url", self.mqtt_url)))
        api_proc = self.children[-1].proc
        assert api_proc is not None
        wait_for_port(self.api_host, self.api_port, 30.0, api_proc)
        url = f"http://{self.api_host}:{self.api_port}"
        shown["dashboard"] = f"{url}/#key={key}"
        shown["api"] = f"{url}  (docs {url}/docs)"
        shown["balance"] = f"curl -H 'Authorization: Bearer {key}' '{url}/v1/balance?period=today'"
        shown["api key"] = f"{key}  (admin; kept in {self.data_dir / 'demo-api-key'})"
        store = self.data.get("store", {})
        shown["store"] = str(store.get("path", "var/carbonwatch.sqlite"))
        shown["logs"] = str(self.logs)
        return shown

    def failed(self) -> Child | None:
        for child in self.children:
            if child.proc is not None and child.proc.poll() is not None:
                return child
        return None

    def stop(self) -> None:
        order = {"edge": 0, "simulate": 1, "scada": 2, "api": 3, "ingest": 4}
        live = sorted(self.children, key=lambda c: order.get(c.name, 9))
        for child in live:
            if child.proc is not None and child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for child in live:
            if child.proc is None:
                continue
            try:
                child.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait()


def _cmd_run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    runner = Runner(Path(args.plant) if args.plant else default_plant(), Path(args.data_dir), args.mqtt_url,
                    args.api_port, args.broker)
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        shown = runner.start()
    except (ServiceError, OSError) as exc:
        console.print(f"[red]could not start:[/red] {exc}")
        runner.stop()
        return 1
    table = Table(title=f"carbonwatch is running: {runner.plant_file.name}", show_header=False)
    for name, where in shown.items():
        table.add_row(name, where)
    console.print(table)
    console.print("Press Ctrl-C to stop.")
    code = 0
    while not stopping:
        child = runner.failed()
        if child is not None:
            console.print(f"[red]{child.name} exited unexpectedly[/red]; see {runner.logs / (child.name + '.log')}")
            code = 1
            break
        time.sleep(0.2)
    console.print("stopping ...")
    runner.stop()
    console.print("stopped.")
    return code


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
