"""The deployment kit for real: the shipped Mosquitto config (deploy/mosquitto/) with the example secrets its script
makes refuses anonymous clients and wrong passwords, lets a TLS client in with the example certificates, and
keeps each device to its own topics (each edge agent reads only its own ack topic, which only ingest writes);
every shipped broker config lifts the queue cap; the compose file passes `docker compose config`; the systemd
units are complete and restart a failed service without ever giving up.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from deploy.broker import EMBEDDED_MOSQUITTO_CONF
from deploy.services import MOSQUITTO_CONF, Service, free_port
from tests.conftest import DEMO_PLANT

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
KIT = REPO / "deploy" / "mosquitto"
SHIPPED_CONF = KIT / "mosquitto.conf"
TIMEOUT_S = 10.0

SECOND_AGENT = """
[site]
id = "demo"
region = "CN"
start = 2026-01-01T00:00:00Z

[[gateways]]
id = "gw9"
kind = "modbus_tcp"
host = "127.0.0.1"
port = 5029

[[meters]]
id = "chiller-9"
area = "utilities"
carrier = "electricity"
gateway = "gw9"
unit_id = 9
map = "schneider_pm5000"

[edge]
agent = "edge-2"
"""


class ShippedBroker(Service):
    """Mosquitto on the shipped config, as shipped except for where its files are and which ports it uses."""

    name = "mosquitto"
    binary = "mosquitto"
    scheme = "mqtts"

    def __init__(self, workdir: Path, secrets: Path) -> None:
        super().__init__(workdir)
        self.secrets = secrets
        self.mtls_port = free_port()

    def command(self) -> list[str]:
        text = SHIPPED_CONF.read_text()
        text = text.replace("/mosquitto/config/", f"{self.secrets}/").replace("/mosquitto/data/",
                                                                             f"{self.workdir}/data/")
        text = text.replace("listener 8883\n", f"listener {self.port} {self.host}\n")
        text = text.replace("listener 8884\n", f"listener {self.mtls_port} {self.host}\n")
        assert str(self.port) in text and str(self.mtls_port) in text, "the shipped listeners moved"
        (self.workdir / "data").mkdir(exist_ok=True)
        if os.geteuid() == 0:
            text += "user root\n"  # it would drop to user mosquitto, who cannot read our temporary folder
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(text)
        return ["-c", str(conf)]


@pytest.fixture(scope="module")
def secrets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("kit")
    second = work / "second-agent.toml"
    second.write_text(SECOND_AGENT)
    out = work / "secrets"
    subprocess.run(["sh", str(KIT / "make-example-setup.sh"), str(out), str(DEMO_PLANT), str(second)],
                   check=True, cwd=REPO, timeout=120, env={**os.environ, "PYTHON": str(REPO / ".venv/bin/python")})
    return out


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory, secrets: Path) -> Iterator[ShippedBroker]:
    server = ShippedBroker(tmp_path_factory.mktemp("shipped-broker"), secrets)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def password(secrets: Path, user: str) -> str:
    key = "MQTT_PASSWORD_" + user.upper().replace("-", "_").replace(".", "_")
    for line in (secrets / "credentials.env").read_text().splitlines():
        if line.startswith(key + "="):
            return line.split("=", 1)[1]
    raise KeyError(user)


class Client:
    """A paho client (MQTT 5) that records its CONNACK, what it receives and its PUBACK reason codes."""

    def __init__(self, port: int, user: str | None = None, pw: str | None = None, ca: Path | None = None,
                 cert: tuple[Path, Path] | None = None) -> None:
        self.done = threading.Event()
        self.reason: ReasonCode | None = None
        self.received: list[tuple[str, bytes]] = []
        self.arrived = threading.Condition()
        self.acks: dict[int, ReasonCode] = {}
        self.subscribed = threading.Event()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        if user is not None:
            self.c.username_pw_set(user, pw)
        if ca is not None:
            self.c.tls_set(ca_certs=str(ca), certfile=str(cert[0]) if cert else None,
                           keyfile=str(cert[1]) if cert else None, cert_reqs=ssl.CERT_REQUIRED)
        self.c.on_connect = self._on_connect
        self.c.on_connect_fail = lambda *_: self.done.set()
        self.c.on_disconnect = lambda *_: self.done.set()
        self.c.on_message = self._on_message
        self.c.on_publish = self._on_publish
        self.c.on_subscribe = lambda *_: self.subscribed.set()
        try:
            self.c.connect("127.0.0.1", port, keepalive=30)
        except (OSError, ssl.SSLError):
            self.done.set()
            return
        self.c.loop_start()
        assert self.done.wait(TIMEOUT_S), "neither CONNACK nor disconnection"

    def _on_connect(self, c: Any, u: Any, flags: Any, reason: ReasonCode, props: Properties | None) -> None:
        self.reason = reason
        self.done.set()

    def _on_message(self, c: Any, u: Any, msg: mqtt.MQTTMessage) -> None:
        with self.arrived:
            self.received.append((msg.topic, msg.payload))
            self.arrived.notify_all()

    def _on_publish(self, c: Any, u: Any, mid: int, reason: ReasonCode, props: Properties | None) -> None:
        self.acks[mid] = reason

    @property
    def accepted(self) -> bool:
        return self.reason is not None and not self.reason.is_failure

    def subscribe(self, topic: str) -> None:
        self.subscribed.clear()
        self.c.subscribe(topic, qos=1)
        assert self.subscribed.wait(TIMEOUT_S)

    def publish(self, topic: str, payload: bytes) -> ReasonCode | None:
        info = self.c.publish(topic, payload, qos=1)
        info.wait_for_publish(TIMEOUT_S)
        return self.acks.get(info.mid)

    def wait_for(self, payload: bytes) -> list[tuple[str, bytes]]:
        with self.arrived:
            assert self.arrived.wait_for(lambda: any(p == payload for _, p in self.received), TIMEOUT_S), \
                f"{payload!r} never arrived; got {self.received}"
            return list(self.received)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def test_anonymous_client_is_refused(broker: ShippedBroker, secrets: Path) -> None:
    client = Client(broker.port, ca=secrets / "certs" / "ca.crt")
    assert not client.accepted
    assert client.reason is not None and client.reason.value == 135, client.reason  # not authorized
    client.close()


def test_wrong_password_is_refused(broker: ShippedBroker, secrets: Path) -> None:
    client = Client(broker.port, "edge-1", "not-the-password", ca=secrets / "certs" / "ca.crt")
    assert not client.accepted
    client.close()


def test_plain_tcp_gets_no_session(broker: ShippedBroker, secrets: Path) -> None:
    client = Client(broker.port, "edge-1", password(secrets, "edge-1"))  # no TLS
    assert not client.accepted
    client.close()


def test_tls_client_connects_with_the_example_certificates(broker: ShippedBroker, secrets: Path) -> None:
    client = Client(broker.port, "edge-1", password(secrets, "edge-1"), ca=secrets / "certs" / "ca.crt")
    assert client.accepted, client.reason
    client.close()
    # mutual TLS: the certificate alone identifies the client; without one the listener refuses
    certs = secrets / "certs"
    mtls = Client(broker.mtls_port, ca=certs / "ca.crt", cert=(certs / "ingest.crt", certs / "ingest.key"))
    assert mtls.accepted, mtls.reason
    mtls.close()
    bare = Client(broker.mtls_port, "ingest", password(secrets, "ingest"), ca=certs / "ca.crt")
    assert not bare.accepted
    bare.close()


@pytest.mark.parametrize("listener", ["password", "certificate"])
def test_a_device_cannot_publish_to_another_devices_topics(broker: ShippedBroker, secrets: Path,
                                                           listener: str) -> None:
    certs = secrets / "certs"

    def login(user: str) -> Client:
        if listener == "password":
            client = Client(broker.port, user, password(secrets, user), ca=certs / "ca.crt")
        else:
            client = Client(broker.mtls_port, ca=certs / "ca.crt", cert=(certs / f"{user}.crt", certs / f"{user}.key"))
        assert client.accepted, (user, client.reason)
        return client

    ingest, scada = login("ingest"), login("scada-host")
    try:
        ingest.subscribe("$share/workers/carbonwatch/v1/demo/+/+/reading")  # several workers may share
        scada.subscribe("carbonwatch/v1/demo/#")
        forbidden = [
            ("edge-1", "carbonwatch/v1/demo/utilities/chiller-9/reading"),  # edge-2's meter
            ("edge-1", "carbonwatch/v1/demo/edge/edge-2/status"),           # edge-2's status
            ("edge-1", "carbonwatch/v1/demo/pressing/press-1/co2e"),        # ingest's output
            ("edge-1", "carbonwatch/v1/demo/alerts/fake"),                  # the API's output
            ("edge-1", "carbonwatch/v1/other-site/pressing/press-1/reading"),
            ("edge-2", "carbonwatch/v1/demo/pressing/press-1/reading"),     # edge-1's meter
            ("scada-host", "carbonwatch/v1/demo/pressing/press-1/co2e"),    # an outside SCADA only reads
            ("scada", "carbonwatch/v1/demo/pressing/press-1/reading"),      # the SCADA gateway reads CO2e only
        ]
        for user, topic in forbidden:
            # Mosquitto 2.0 answers a forbidden QoS 1 publish with PUBACK "not authorized" (MQTT 5), having
            # routed nothing, then drops the connection: a fresh one per attempt
            forger = login(user)
            reason = forger.publish(topic, f"forged by {user}: {topic}".encode())
            assert reason is not None and reason.value == 135, (user, topic, reason)
            forger.close()
        owner = login("edge-1")
        assert owner.publish("carbonwatch/v1/demo/pressing/press-1/reading", b"own reading") is not None
        assert owner.publish("carbonwatch/v1/demo/edge/edge-1/status", b"own status") is not None
        owner.close()
        # the forged messages were refused before the own ones were even sent: had they been routed, they
        # would have arrived first
        got_ingest = ingest.wait_for(b"own reading")
        got_scada = scada.wait_for(b"own status")
        assert [p for _, p in got_ingest] == [b"own reading"]
        assert [p for _, p in got_scada] == [b"own status"], "scada must not read raw readings nor forged topics"
    finally:
        for client in (ingest, scada):
            client.close()


def test_the_acl_names_each_meter_once_per_owner(secrets: Path) -> None:
    acl = (secrets / "acl").read_text()
    users = re.findall(r"^user (\S+)$", acl, re.M)
    assert users == ["edge-1", "edge-2", "ingest", "api", "scada", "scada-host"]
    edge2 = acl.split("user edge-2\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert edge2 == ["topic write carbonwatch/v1/demo/utilities/chiller-9/reading",
                     "topic write carbonwatch/v1/demo/edge/edge-2/status",
                     "topic read carbonwatch/v1/demo/edge/edge-2/ack"]
    ingest = acl.split("user ingest\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert "topic write carbonwatch/v1/demo/edge/+/ack" in ingest
    assert [line for line in acl.splitlines() if line.endswith("/ack")] == [
        "topic read carbonwatch/v1/demo/edge/edge-1/ack", "topic read carbonwatch/v1/demo/edge/edge-2/ack",
        "topic write carbonwatch/v1/demo/edge/+/ack"], "nobody else reads or writes acks"


@pytest.mark.parametrize("listener", ["password", "certificate"])
def test_each_edge_agent_reads_only_its_own_acks_and_only_ingest_writes_them(broker: ShippedBroker, secrets: Path,
                                                                            listener: str) -> None:
    certs = secrets / "certs"

    def login(user: str) -> Client:
        if listener == "password":
            client = Client(broker.port, user, password(secrets, user), ca=certs / "ca.crt")
        else:
            client = Client(broker.mtls_port, ca=certs / "ca.crt", cert=(certs / f"{user}.crt", certs / f"{user}.key"))
        assert client.accepted, (user, client.reason)
        return client

    edge1, edge2 = login("edge-1"), login("edge-2")
    try:
        edge1.subscribe("carbonwatch/v1/demo/edge/+/ack")  # a wildcard must not widen what it may read
        edge2.subscribe("carbonwatch/v1/demo/edge/edge-2/ack")
        for user in ("edge-1", "api", "scada"):  # an ack forged by anyone but ingest would empty a spool
            forger = login(user)
            reason = forger.publish("carbonwatch/v1/demo/edge/edge-1/ack", f"forged by {user}".encode())
            assert reason is not None and reason.value == 135, (user, reason)
            forger.close()
        ingest = login("ingest")
        for agent in ("edge-2", "edge-1"):
            assert ingest.publish(f"carbonwatch/v1/demo/edge/{agent}/ack", f"ack for {agent}".encode()) is not None
        ingest.close()
        got1, got2 = edge1.wait_for(b"ack for edge-1"), edge2.wait_for(b"ack for edge-2")
        assert got1 == [("carbonwatch/v1/demo/edge/edge-1/ack", b"ack for edge-1")], "edge-1 read another's acks"
        assert got2 == [("carbonwatch/v1/demo/edge/edge-2/ack", b"ack for edge-2")]
    finally:
        edge1.close()
        edge2.close()


def shipped_mosquitto_configs() -> list[tuple[str, str]]:
    """Every Mosquitto config the project ships: *.conf files with a listener, and the one written by code."""
    found = [(str(p.relative_to(REPO)), p.read_text()) for p in sorted((REPO / "deploy").rglob("*.conf"))
             if re.search(r"^listener ", p.read_text(), re.M)]
    found.append(("deploy/services.py MOSQUITTO_CONF", MOSQUITTO_CONF))
    found.append(("deploy/broker.py EMBEDDED_MOSQUITTO_CONF", EMBEDDED_MOSQUITTO_CONF))
    return found


@pytest.mark.parametrize(("name", "text"), shipped_mosquitto_configs())
def test_every_shipped_broker_config_never_caps_the_queue(name: str, text: str) -> None:
    settings = re.findall(r"^max_queued_messages\s+(\S+)\s*$", text, re.M)
    assert settings == ["0"], f"{name}: max_queued_messages must be 0 (got {settings})"


def test_the_shipped_config_refuses_anonymous_and_has_acls() -> None:
    text = SHIPPED_CONF.read_text()
    assert re.search(r"^allow_anonymous false$", text, re.M)
    assert re.search(r"^acl_file ", text, re.M) and re.search(r"^password_file ", text, re.M)
    listeners = re.split(r"^listener ", text, flags=re.M)[1:]
    assert listeners and all("certfile " in block and "keyfile " in block for block in listeners), \
        "every listener is TLS"


# --- compose and systemd ------------------------------------------------------------------------------------
COMPOSE = REPO / "deploy" / "compose" / "compose.yaml"


def compose_command() -> list[str]:
    """`docker compose` (the v2 plugin) where it answers, else Debian's docker-compose; failing if neither."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.fail("no docker compose client: install the docker compose plugin or Debian's docker-compose")


def test_compose_file_passes_docker_compose_config(tmp_path: Path) -> None:
    env = {**os.environ, "INFLUXDB_PASSWORD": "example-only-1234", "INFLUXDB_ADMIN_PASSWORD": "example-admin-1234",
           "GRAFANA_ADMIN_PASSWORD": "example-grafana-1234",
           "GRAFANA_INFLUXDB_PASSWORD": "example-reader-1234", "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    cmd = compose_command()
    out = subprocess.run([*cmd, "--project-directory", str(COMPOSE.parent), "-f", str(COMPOSE),
                          "--profile", "grafana", "config"],
                         capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    rendered = out.stdout
    for service in ("mosquitto", "influxdb", "edge", "ingest", "api", "grafana"):
        assert re.search(rf"^  {service}:$", rendered, re.M), service
    # nothing published beyond loopback unless asked for
    published = re.findall(r"host_ip: (\S+)|- (\d+\.\d+\.\d+\.\d+):\d+:\d+", rendered)
    hosts = {a or b for a, b in published}
    assert hosts == {"127.0.0.1"}, hosts


def test_compose_needs_its_secrets(tmp_path: Path) -> None:
    """Without the passwords the file refuses to render instead of starting with a default."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_PASSWORD")}
    out = subprocess.run([*compose_command(), "--project-directory", str(COMPOSE.parent), "-f", str(COMPOSE),
                          "config"], capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    assert out.returncode != 0
    assert re.search(r"set \w*PASSWORD in \.env", out.stderr), out.stderr


@pytest.mark.parametrize("unit", ["carbonwatch-edge.service", "carbonwatch-ingest.service",
                                  "carbonwatch-api.service"])
def test_systemd_units_run_the_service_hardened(unit: str) -> None:
    text = (REPO / "deploy" / "systemd" / unit).read_text()
    service = unit.removeprefix("carbonwatch-").removesuffix(".service")
    exec_start = re.search(r"^ExecStart=(.+)$", text, re.M)
    assert exec_start and re.search(rf"carbonwatch {service} --config /etc/carbonwatch/plant.toml", exec_start[1])
    for line in ("User=carbonwatch", "Restart=on-failure", "NoNewPrivileges=yes", "ProtectSystem=strict",
                 "ProtectHome=yes", "PrivateTmp=yes", "StateDirectory=carbonwatch"):
        assert re.search(rf"^{re.escape(line)}$", text, re.M), f"{unit}: {line}"
    if service == "edge":  # the edge only connects outward: no listening sockets at all
        assert re.search(r"^SocketBindDeny=any$", text, re.M)
    if shutil.which("systemd-analyze"):
        out = subprocess.run(["systemd-analyze", "verify", str(REPO / "deploy" / "systemd" / unit)],
                             capture_output=True, text=True, timeout=60)
        assert "Unknown key" not in out.stderr and "Unknown section" not in out.stderr, out.stderr


def _section(text: str, name: str) -> str:
    return text.split(f"[{name}]\n", 1)[1].split("\n[", 1)[0]


@pytest.mark.parametrize("unit", ["carbonwatch-edge.service", "carbonwatch-ingest.service",
                                  "carbonwatch-api.service"])
def test_systemd_units_restart_with_a_pause_and_never_give_up(unit: str, tmp_path: Path) -> None:
    text = (REPO / "deploy" / "systemd" / unit).read_text()
    service = _section(text, "Service")
    assert re.search(r"^Restart=on-failure$", service, re.M)
    delay = re.search(r"^RestartSec=(\d+)s$", service, re.M)
    assert delay and int(delay[1]) >= 2, "a crash loop must not spin"
    # the start limit lives in [Unit]; 0 turns it off, so a flapping broker cannot leave the unit failed for good
    assert re.search(r"^StartLimitIntervalSec=0$", _section(text, "Unit"), re.M)
    assert "StartLimitBurst" not in text
    # growing delays (systemd 254+) come as a drop-in that older systemd would warn about, not in the unit
    drop_in = (REPO / "deploy" / "systemd" / "carbonwatch-restart-backoff.conf").read_text()
    assert re.search(r"^RestartSteps=\d+$", _section(drop_in, "Service"), re.M)
    assert re.search(r"^RestartMaxDelaySec=\d+min$", _section(drop_in, "Service"), re.M)
    if shutil.which("systemd-analyze"):  # the unit with the drop-in as it would be installed
        shutil.copy(REPO / "deploy" / "systemd" / unit, tmp_path / unit)
        (tmp_path / f"{unit}.d").mkdir()
        shutil.copy(REPO / "deploy" / "systemd" / "carbonwatch-restart-backoff.conf",
                    tmp_path / f"{unit}.d" / "restart-backoff.conf")
        out = subprocess.run(["systemd-analyze", "verify", str(tmp_path / unit)], capture_output=True, text=True,
                             timeout=60)
        version = int(re.findall(r"\d+", subprocess.run(["systemd-analyze", "--version"], capture_output=True,
                                                        text=True, timeout=60).stdout)[0])
        unknown = sorted(re.findall(r"Unknown key '(\w+)'", out.stderr))
        assert unknown == ([] if version >= 254 else ["RestartMaxDelaySec", "RestartSteps"]), out.stderr


# --- Grafana: the shipped dashboard's queries on a real InfluxDB with ingest's points ----------------------
GRAFANA = REPO / "deploy" / "grafana"


def test_grafana_provisioning_points_at_the_shipped_dashboard() -> None:
    import yaml

    source = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "carbonwatch.yaml").read_text())
    ds = source["datasources"][0]
    assert ds["type"] == "influxdb" and ds["jsonData"]["dbName"] == "carbonwatch"
    assert ds["secureJsonData"]["password"] == "$GRAFANA_INFLUXDB_PASSWORD", "no password in the file"
    dash = json.loads((GRAFANA / "dashboards" / "carbonwatch-site.json").read_text())
    uids = {t["datasource"]["uid"] for p in dash["panels"] for t in p["targets"]}
    assert uids == {ds["uid"]}
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "carbonwatch.yaml").read_text())
    compose = COMPOSE.read_text()
    assert f"../grafana/dashboards:{provider['providers'][0]['options']['path']}:ro" in compose


def test_grafana_queries_run_on_influxdb_and_sum_to_the_store(influx_url: str) -> None:
    from datetime import timedelta

    from calc.plant import parse_plant
    from ingest.config import InfluxStoreSettings
    from ingest.convert import Converter
    from ingest.points import ts_to_us
    from ingest.store.influx import InfluxStore
    from tests.ingest.helpers import METERS, SITE, T0, counter_sample, message

    plant = parse_plant({"site": {"id": SITE, "region": "CN", "start": "2026-01-01T00:00:00Z"},
                         "meters": [{"id": m, "area": a, "carrier": "electricity"} for m, a in METERS.items()]})
    now_us = ts_to_us(T0 + timedelta(days=1))
    conv = Converter(plant, clock=lambda: now_us / 1e6)
    outs = []
    for i, (meter, area) in enumerate(sorted(METERS.items())):
        samples = [counter_sample(T0 + timedelta(minutes=m), 1.5 + i, 100 + m * (1.5 + i)) for m in range(90)]
        out = conv.convert(f"carbonwatch/v1/{SITE}/{area}/{meter}/reading", message(meter, 1, samples), now_us)
        assert out.dead == []
        outs.append(out)
    database = f"grafana_{os.getpid()}_{free_port()}"
    store = InfluxStore(InfluxStoreSettings(kind="influxdb", url=influx_url, database=database))
    try:
        store.write(conv.batch(outs))
        start, end = T0 - timedelta(hours=1), T0 + timedelta(hours=3)
        totals = store.totals(SITE, start, end)
        assert len(totals) == 3
        by_area: dict[str, float] = {}
        for t in totals:
            by_area[t.area] = by_area.get(t.area, 0.0) + t.co2e_kg

        def grafana(query: str) -> list[dict[str, Any]]:
            """The query as Grafana sends it: variables and macros filled in, against the dashboard's database."""
            q = (query.replace("$timeFilter", f"time >= '{start.isoformat()}' AND time < '{end.isoformat()}'")
                 .replace("$__interval", "1h").replace("/^$site$/", f"/^{SITE}$/").replace("/^$area$/", "/^.*$/"))
            resp = httpx.get(f"{influx_url}/query", params={"db": database, "q": q}, timeout=10)
            assert resp.status_code == 200, resp.text
            result = resp.json()["results"][0]
            assert "error" not in result, (q, result)
            series: list[dict[str, Any]] = result.get("series", [])
            return series

        dash = json.loads((GRAFANA / "dashboards" / "carbonwatch-site.json").read_text())
        panels = {p["title"]: p["targets"][0]["query"] for p in dash["panels"]}
        for variable in dash["templating"]["list"]:
            values = {v[0] if len(v) == 1 else v[1] for s in grafana(variable["query"]) for v in s["values"]}
            assert values == ({SITE} if variable["name"] == "site" else set(by_area)), variable["name"]
        total = grafana(panels["Emissions in range (kg CO2e)"])
        assert total[0]["values"][0][1] == pytest.approx(sum(by_area.values()), rel=1e-9)
        areas = grafana(panels["CO2e per interval by area (kg)"])
        assert {s["tags"]["area"]: sum(v[1] for v in s["values"]) for s in areas} == pytest.approx(by_area, rel=1e-9)
        meters = grafana(panels["CO2e per interval by meter (kg)"])
        assert {s["tags"]["meter"] for s in meters} == set(METERS)
        for title, query in panels.items():
            grafana(query)  # every panel's query runs without an InfluxQL error
            assert title
    finally:
        httpx.post(f"{influx_url}/query", params={"q": f'DROP DATABASE "{database}"'}, timeout=10)
        store.close()


def test_the_image_holds_every_package_the_project_installs() -> None:
    import tomllib

    dockerfile = (REPO / "deploy" / "compose" / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\S+) \./\1$", dockerfile, re.M))
    for source in re.findall(r"^COPY (.+) \S+$", dockerfile, re.M):
        for name in source.split():
            assert (REPO / name).exists(), f"COPY {name}: not in the repository"
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert packages <= copied, f"the image misses {packages - copied}"
    assert re.search(r"^USER 10001", dockerfile, re.M), "the services do not run as root"


def test_acl_generator_refuses_what_would_break_the_separation(tmp_path: Path) -> None:
    from deploy.mosquitto.acl import main

    clash = tmp_path / "clash.toml"
    clash.write_text(SECOND_AGENT.replace('agent = "edge-2"', 'agent = "ingest"'))
    assert main([str(clash)]) == 1  # an edge agent named like a service would get the service's rights
    other_site = tmp_path / "other-site.toml"
    other_site.write_text(SECOND_AGENT.replace('id = "demo"', 'id = "plant-b"').replace("edge-2", "edge-1"))
    assert main([str(DEMO_PLANT), str(other_site)]) == 1  # one agent, two sites
    broken = tmp_path / "broken.toml"
    broken.write_text(SECOND_AGENT.replace('gateway = "gw9"', 'gateway = "nowhere"'))
    assert main([str(broken)]) == 1
