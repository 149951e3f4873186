"""The processes a fault scenario kills: carbonwatch services as children, Mosquitto with persistence as shipped,
and a small HTTP proxy in front of influxd that can answer 503 instead of passing requests on.

Every child has its log in the scenario's folder; a SIGSTOPped child gets SIGCONT before it is stopped or
killed, and `stop()` ends with SIGKILL for whatever does not exit on SIGTERM.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from deploy.services import Mosquitto, free_port, wait_for_port

REPO = Path(__file__).resolve().parents[2]
SHIPPED_MOSQUITTO_CONF = REPO / "deploy" / "mosquitto" / "mosquitto.conf"
SHIPPED_KEYS = ("persistence", "autosave_interval", "max_queued_messages", "max_inflight_messages", "max_packet_size")


def tail(path: Path, chars: int = 6000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"


class Child:
    """One carbonwatch service (`python -m deploy.cli ...`) as a child process of the test."""

    def __init__(self, name: str, argv: list[str], workdir: Path, env: Mapping[str, str] | None = None,
                 ports: tuple[int, ...] = ()) -> None:
        self.name = name
        self.argv = argv
        self.workdir = workdir
        self.env = dict(env or {})
        self.ports = ports  # listening ports that say it is up
        self.log_path = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.stopped = False  # SIGSTOPped
        self.starts = 0
        self.ended_pids: list[int] = []  # of runs that have ended (what they leave behind is cleaned by pid)

    @classmethod
    def carbonwatch(cls, name: str, args: list[str], workdir: Path, **kwargs: object) -> Child:
        return cls(name, [sys.executable, "-m", "deploy.cli", *args], workdir, **kwargs)  # type: ignore[arg-type]

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} is not running"
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout_s: float = 60.0) -> None:
        assert not self.alive, f"{self.name} is already running"
        with self.log_path.open("ab") as log:
            log.write(f"\n===== start {self.starts + 1} =====\n".encode())
            log.flush()
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         cwd=self.workdir, env={**os.environ, **self.env})
        self.starts += 1
        self.stopped = False
        for port in self.ports:
            wait_for_port("127.0.0.1", port, timeout_s, self.proc)

    def pause(self) -> None:
        """SIGSTOP: the process holds its sockets but does nothing (a hung service)."""
        os.kill(self.pid, signal.SIGSTOP)
        self.stopped = True

    def resume(self) -> None:
        if self.alive and self.stopped:
            os.kill(self.pid, signal.SIGCONT)
        self.stopped = False

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would: nothing is flushed."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)
        self.ended_pids.append(proc.pid)
        self.stopped = False

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM (after SIGCONT when stopped), SIGKILL after `timeout_s`."""
        self.resume()
        proc, self.proc = self.proc, None
        if proc is None:
            return
        self.ended_pids.append(proc.pid)
        if proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)

    def log(self, chars: int = 6000) -> str:
        return tail(self.log_path, chars)


def shipped_broker_settings() -> dict[str, str]:
    """persistence, autosave_interval, the queue limits and the packet cap as deploy/mosquitto/mosquitto.conf has
    them."""
    found = {}
    for line in SHIPPED_MOSQUITTO_CONF.read_text().splitlines():
        m = re.match(r"^\s*(\w+)\s+(\S+)\s*$", line)
        if m and m.group(1) in SHIPPED_KEYS:
            found[m.group(1)] = m.group(2)
    missing = set(SHIPPED_KEYS) - set(found)
    assert not missing, f"{SHIPPED_MOSQUITTO_CONF} no longer sets {sorted(missing)}"
    assert found["persistence"] == "true", "the shipped broker config no longer persists sessions"
    return found


class PersistentMosquitto(Mosquitto):
    """Our own Mosquitto with the shipped persistence and queue settings, plain TCP on loopback, anonymous.
    Restarts on the same port with the same persistence file, as a broker on a plant's server would."""

    def command(self) -> list[str]:
        conf = self.workdir / "mosquitto.conf"
        data = self.workdir / "data"
        data.mkdir(exist_ok=True)
        shipped = "\n".join(f"{k} {v}" for k, v in shipped_broker_settings().items())
        text = (f"# fault suite: the shipped persistence and queue settings, loopback TCP, anonymous\n"
                f"listener {self.port} {self.host}\nallow_anonymous true\n{shipped}\n"
                f"persistence_location {data}/\n"
                # a file, not stdout: stdout into a file is block-buffered and its tail would be missing
                f"log_dest file {self.workdir / 'mosquitto.log'}\nlog_type error\nlog_type warning\n"
                f"log_type notice\nconnection_messages true\n")
        if os.geteuid() == 0:
            text += "user root\n"  # it would drop to user mosquitto, who cannot write our folder
        conf.write_text(text)
        return ["-c", str(conf)]

    def log(self, chars: int = 6000) -> str:
        return tail(self.workdir / "mosquitto.log", chars)


class _ProxyHandler(BaseHTTPRequestHandler):
    server: _ProxyServer
    protocol_version = "HTTP/1.1"

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        proxy = self.server.proxy
        if proxy.failing:
            proxy.count("503")
            self._answer(503, b'{"error":"fault suite: service unavailable"}', "application/json")
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "authorization",
                                                                          "accept", "content-encoding")}
        try:
            resp = proxy.client.request(self.command, proxy.target + self.path, content=body, headers=headers)
        except httpx.TimeoutException:
            proxy.count("504")
            self._answer(504, b'{"error":"fault suite proxy: upstream timed out"}', "application/json")
            return
        except httpx.HTTPError:
            proxy.count("502")
            self._answer(502, b'{"error":"fault suite proxy: upstream unreachable"}', "application/json")
            return
        proxy.count("passed")
        self._answer(resp.status_code, resp.content, resp.headers.get("content-type", "application/json"),
                     {k: v for k, v in resp.headers.items() if k.lower().startswith("x-influxdb")})

    def _answer(self, status: int, body: bytes, content_type: str, extra: Mapping[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the client gave up (its timeout) while upstream was hung
            pass

    do_GET = do_POST = do_HEAD = _forward

    def log_message(self, format: str, *args: object) -> None:
        pass


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    proxy: InfluxProxy


class InfluxProxy:
    """A real HTTP proxy on a loopback port in front of influxd; `failing = True` answers 503 to everything."""

    def __init__(self, target: str, upstream_timeout_s: float = 120.0) -> None:
        self.target = target.rstrip("/")
        self.port = free_port()
        self.failing = False
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self.client = httpx.Client(timeout=upstream_timeout_s)
        self._server = _ProxyServer(("127.0.0.1", self.port), _ProxyHandler)
        self._server.proxy = self
        self._thread = threading.Thread(target=self._server.serve_forever, name="influx-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def count(self, what: str) -> None:
        with self._lock:
            self.counts[what] = self.counts.get(what, 0) + 1

    def seen(self, what: str) -> int:
        with self._lock:
            return self.counts.get(what, 0)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self.client.close()
