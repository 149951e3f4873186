"""Start and stop the real services that tests and benchmarks talk to: Mosquitto and InfluxDB on loopback.

Each service runs in a folder of its own on a port of its own, as a child process we own, so that
tests can also stop and restart one to show what happens during an outage.
`python -m deploy.services up --env FILE` starts both and writes their URLs; `down --env FILE` stops them.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from deploy.errors import DeployError

SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin", "/sbin"])


class ServiceError(DeployError, RuntimeError):
    """A service binary that is missing or a service that did not become ready."""


def find_binary(name: str) -> str | None:
    return shutil.which(name, path=SEARCH_PATH)


_GIVEN: set[int] = set()  # ports this process handed out already (a child may not have bound its port yet)


def _ephemeral_low() -> int:
    """The lowest port the kernel hands to outgoing connections (Linux: ip_local_port_range; else IANA's)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 49152


def free_port(host: str = "127.0.0.1") -> int:
    """A port free to listen on now, for a child to bind later: drawn at random below the kernel's ephemeral range
    (a port the kernel picked for `bind(0)` can be taken meanwhile by any outgoing connection on the machine) and
    never the same twice in this process."""
    top = _ephemeral_low() - 1
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randint(min(20000, top - 1000), top)
        if port in _GIVEN:
            continue
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
        _GIVEN.add(port)
        return port
    with socket.socket() as sock:  # a machine whose low ports are all taken: the kernel's pick then
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout_s: float = 10.0, proc: subprocess.Popen[bytes] | None = None,
                  ) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServiceError(f"process exited with {proc.returncode} before listening on {host}:{port}")
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise ServiceError(f"nothing listening on {host}:{port} after {timeout_s} s")


def wait_port_free(host: str, port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                time.sleep(0.05)
        except OSError:
            return


class Service:
    """A daemon run in the foreground as our child, with its files under `workdir`."""

    name = "service"
    binary = ""
    scheme = "tcp"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def __init__(self, workdir: Path | None = None, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port or free_port(host)
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix=f"cw-{self.name}-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout_s: float = 15.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        exe = find_binary(self.binary)
        if exe is None:
            raise ServiceError(f"{self.binary} not found on PATH; the test command installs it (deploy/test.sh)")
        wait_port_free(self.host, self.port)
        log = (self.workdir / f"{self.name}.log").open("ab")
        self.proc = subprocess.Popen([exe, *self.command()], stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        try:
            wait_for_port(self.host, self.port, timeout_s, self.proc)
        except ServiceError:
            self.stop()   # a daemon that never listened is not left behind
            raise

    def stop(self, timeout_s: float = 10.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout_s)

    def kill(self) -> None:
        """Stop abruptly (SIGKILL), as a crash would."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)

    def __enter__(self) -> Service:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# Every shipped Mosquitto config caps packets at this size (max_packet_size): 32 MiB is above the largest reading
# message calc.schema accepts (10,000 samples, every text field at its longest, ~21 MB; typically ~2 MB) and
# the largest ack (tests/deploy/test_broker_limits.py computes both). A client sending a bigger packet is
# disconnected before the broker reads it, so one message costs its sender the connection, never the broker.
# Not `message_size_limit`: Mosquitto 2.0.11 answers a too-large QoS 1 publish with a success PUBACK to MQTT
# 3.1.1 clients (the message is gone but the sender believes it delivered) and with a reason code that is invalid
# for a PUBACK (0x95) to MQTT 5 clients, which paho 2.2 takes for a malformed packet.
MAX_PACKET_BYTES = 32 * 1024 * 1024

MOSQUITTO_CONF = """\
# Written by deploy/services.py for tests: loopback only, anonymous, nothing persisted.
listener {port} {host}
allow_anonymous true
# The default of 1000 silently drops QoS 1 messages to a slow subscriber: never cap the queue.
max_queued_messages 0
max_inflight_messages 0
max_packet_size 33554432
persistence false
log_dest stdout
log_type error
log_type warning
"""


class Mosquitto(Service):
    name = "mosquitto"
    binary = "mosquitto"
    scheme = "mqtt"

    def command(self) -> list[str]:
        conf = self.workdir / "mosquitto.conf"
        text = MOSQUITTO_CONF.format(port=self.port, host=self.host)
        if os.geteuid() == 0:
            text += "user root\n"  # it would drop to user mosquitto, who cannot write our folder
        conf.write_text(text)
        return ["-c", str(conf)]


INFLUX_CONF = """\
# Written by deploy/services.py for tests: loopback only, nothing reported home.
reporting-disabled = true
bind-address = "{host}:{rpc_port}"
[meta]
  dir = "{dir}/meta"
[data]
  dir = "{dir}/data"
  wal-dir = "{dir}/wal"
  query-log-enabled = false
[http]
  enabled = true
  bind-address = "{host}:{port}"
  auth-enabled = false
  log-enabled = false
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
"""


class InfluxDB(Service):
    name = "influxdb"
    binary = "influxd"
    scheme = "http"

    def __init__(self, workdir: Path | None = None, port: int | None = None, host: str = "127.0.0.1") -> None:
        super().__init__(workdir, port, host)
        self.rpc_port = free_port(host)

    def command(self) -> list[str]:
        conf = self.workdir / "influxdb.conf"
        conf.write_text(INFLUX_CONF.format(host=self.host, port=self.port, rpc_port=self.rpc_port,
                                           dir=self.workdir))
        return ["run", "-config", str(conf)]

    def start(self, timeout_s: float = 60.0) -> None:   # influxd takes > 30 s on a machine at load 14
        super().start(timeout_s)
        import httpx

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/ping", timeout=1.0).status_code == 204:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise ServiceError(f"influxd on {self.url} did not answer /ping")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.services", description=__doc__)
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("--env", type=Path, required=True, help="file of KEY=VALUE lines written by `up`")
    parser.add_argument("--dir", type=Path, default=Path("var/test-services"))
    args = parser.parse_args(argv)
    if args.action == "up":
        args.dir.mkdir(parents=True, exist_ok=True)
        services: list[tuple[str, Service]] = [("MQTT", Mosquitto(args.dir / "mosquitto")),
                                               ("INFLUX", InfluxDB(args.dir / "influxdb"))]
        lines = []
        for key, svc in services:
            try:
                svc.start()
            except ServiceError:
                for _, started in services:   # stop what did start: nothing is left running without `down`
                    started.stop()
                raise
            assert svc.proc is not None
            lines.append(f"CARBONWATCH_TEST_{key}_URL={svc.url}  # pid {svc.proc.pid}")
            print(f"started {svc.name} on {svc.host}:{svc.port} (pid {svc.proc.pid})")
        args.env.write_text("\n".join(lines) + "\n")
        # Detach: the children stay up for pytest; `down` stops them by pid.
        for _, svc in services:
            svc.proc = None
        return 0
    if not args.env.exists():
        return 0
    for line in args.env.read_text().splitlines():
        if "# pid" in line:
            pid = int(line.rsplit("# pid", 1)[1])
            if _pid_alive(pid):
                os.kill(pid, signal.SIGTERM)
                for _ in range(200):
                    if not _pid_alive(pid):
                        break
                    time.sleep(0.05)
                else:
                    os.kill(pid, signal.SIGKILL)
            print(f"stopped pid {pid}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
