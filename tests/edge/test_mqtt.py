"""MQTT side of the agent: falls back to 3.1.1 on a broker that refuses MQTT 5 (amqtt) unless told `protocol =
"5"`, speaks 3.1.1 from the start when told so, and talks to a Mosquitto that requires TLS, a client certificate
and a password (from the keys or the URL; `tls_insecure` for a broker known by another name); a refused login
loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import os
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from amqtt.broker import Broker
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from deploy.services import Mosquitto, free_port
from edge.agent import Agent
from edge.config import parse_config
from tests.edge.helpers import Collector, eventually, unique_site
from tests.edge.modbus_server import Meter, start_tcp

pytestmark = pytest.mark.integration


@pytest.fixture
async def modbus_port() -> AsyncIterator[int]:
    port = free_port()
    meter = Meter("schneider_pm5000")
    meter.put("active_energy_import", 123_000)
    meter.put("active_power", 12.5)
    server = await start_tcp({1: meter}, port)
    yield port
    await server.shutdown()


def edge_data(site: str, modbus_port: int, mqtt: dict[str, object], state_dir: Path,
              confirm: str = "ingest") -> dict[str, object]:
    return {
        "site": {"id": site, "region": "CN", "start": "2026-01-01T00:00:00Z"},
        "gateways": [{"id": "gw", "kind": "modbus_tcp", "host": "127.0.0.1", "port": modbus_port}],
        "meters": [{"id": "m1", "area": "a", "carrier": "electricity", "gateway": "gw", "unit_id": 1,
                    "map": "schneider_pm5000", "interval_s": 0.1}],
        "mqtt": mqtt,
        "edge": {"state_dir": str(state_dir), "confirm": confirm},
    }


async def run_agent_until(agent: Agent, condition: Callable[[], bool], what: str) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    try:
        await eventually(lambda: task.done() or condition(), 20, what)
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


@contextlib.asynccontextmanager
async def mqtt311_broker() -> AsyncIterator[str]:
    """An amqtt broker on loopback (it speaks MQTT 3.1.1 only); yields its URL."""
    port = free_port()
    broker = Broker({"listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
                     "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}}})
    await broker.start()
    try:
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        await broker.shutdown()


async def test_falls_back_to_mqtt_311_on_a_broker_without_mqtt5(modbus_port: int, tmp_path: Path) -> None:
    async with mqtt311_broker() as url:
        site = unique_site()
        collector = await asyncio.to_thread(Collector, url, site)
        agent = Agent(parse_config(edge_data(site, modbus_port, {"url": url}, tmp_path / "s"), "<test>"))
        await run_agent_until(agent, lambda: len(collector.messages("m1")) >= 5, "readings through amqtt")
        collector.close()
    assert agent.publisher.protocol_name == "3.1.1"
    seqs = [m.seq for m in collector.messages("m1")]
    assert seqs[:5] == [0, 1, 2, 3, 4]


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write(path: Path, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> tuple[Path, Path]:
    path.with_suffix(".key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                           serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption()))
    path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path.with_suffix(".crt"), path.with_suffix(".key")


def make_pki(directory: Path) -> dict[str, Path]:
    """A throw-away CA, a server certificate for 127.0.0.1 and a client certificate."""
    now = dt.datetime.now(dt.UTC)
    ca_key = _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "carbonwatch test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    out = {"ca": _write(directory / "ca", ca_key, ca)[0]}
    for name, san in (("server", True), ("client", False)):
        key = _key()
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"carbonwatch {name}")]))
                   .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1)))
        if san:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        out[f"{name}_crt"], out[f"{name}_key"] = _write(directory / name, key, builder.sign(ca_key, hashes.SHA256()))
    return out


class SecureMosquitto(Mosquitto):
    """Mosquitto that wants TLS, a client certificate from our CA, and a user name and password."""

    scheme = "mqtts"

    def __init__(self, workdir: Path, pki: dict[str, Path], passwords: Path) -> None:
        super().__init__(workdir)
        self.pki, self.passwords = pki, passwords

    def command(self) -> list[str]:
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} {self.host}\nallow_anonymous false\npassword_file {self.passwords}\n"
            f"cafile {self.pki['ca']}\ncertfile {self.pki['server_crt']}\nkeyfile {self.pki['server_key']}\n"
            "require_certificate true\nmax_queued_messages 0\npersistence false\nlog_dest stdout\n"
            + ("user root\n" if os.geteuid() == 0 else ""))
        return ["-c", str(conf)]


@pytest.fixture
def secure_broker(tmp_path: Path) -> Iterator[SecureMosquitto]:
    pki_dir = tmp_path / "pki"
    pki_dir.mkdir()
    pki = make_pki(pki_dir)
    for path in pki.values():
        path.chmod(0o644)
    passwords = tmp_path / "passwd"
    passwords.write_text("")
    subprocess.run(["mosquitto_passwd", "-b", str(passwords), "edge", "correct horse"], check=True)
    broker = SecureMosquitto(tmp_path / "mosq", pki, passwords)
    broker.start()
    yield broker
    broker.stop()


async def test_tls_client_certificate_and_password(secure_broker: SecureMosquitto, modbus_port: int,
                                                   tmp_path: Path) -> None:
    pki = secure_broker.pki
    site = unique_site()
    tls = {"url": secure_broker.url, "ca_file": str(pki["ca"]), "cert_file": str(pki["client_crt"]),
           "key_file": str(pki["client_key"])}

    # a wrong password: refused, and every reading stays in the spool
    refused = Agent(parse_config(edge_data(site, modbus_port, tls | {"username": "edge", "password": "wrong"},
                                           tmp_path / "state"), "<test>"))
    await run_agent_until(refused, lambda: refused.spool.size >= 5 and refused.publisher.last_error is not None,
                          "readings spooled while the broker refuses the login")
    assert refused.acknowledged == 0
    spooled = refused.spool.size

    collector = await asyncio.to_thread(Collector, secure_broker.url, site, "edge", "correct horse", pki["ca"],
                                        pki["client_crt"], pki["client_key"])
    agent = Agent(parse_config(edge_data(site, modbus_port, tls | {"username": "edge", "password": "correct horse"},
                                         tmp_path / "state"), "<test>"))
    await run_agent_until(agent, lambda: len(collector.messages("m1")) >= spooled + 3, "the spool and fresh readings")
    collector.close()
    seqs = sorted({m.seq for m in collector.messages("m1")})
    assert seqs[:spooled + 3] == list(range(spooled + 3)), "what was spooled during the refusal arrived too"


async def test_url_login_and_tls_insecure_for_a_broker_known_by_another_name(
        secure_broker: SecureMosquitto, modbus_port: int, tmp_path: Path) -> None:
    # the broker's certificate names 127.0.0.1; as "localhost" only tls_insecure gets the agent through
    pki = secure_broker.pki
    site = unique_site()
    url = f"mqtts://edge:correct%20horse@localhost:{secure_broker.port}"
    files = {"ca_file": str(pki["ca"]), "cert_file": str(pki["client_crt"]), "key_file": str(pki["client_key"])}

    checked = Agent(parse_config(edge_data(site, modbus_port, files | {"url": url}, tmp_path / "a"), "<test>"))
    await run_agent_until(checked, lambda: checked.spool.size >= 3 and checked.publisher.last_error is not None,
                          "a refused host name")
    assert checked.acknowledged == 0 and "certificate" in (checked.publisher.last_error or "").lower()

    collector = await asyncio.to_thread(Collector, secure_broker.url, site, "edge", "correct horse", pki["ca"],
                                        pki["client_crt"], pki["client_key"])
    # confirmed by the broker's PUBACK: no ingest here, and the broker's acknowledgement is what this is about
    insecure = Agent(parse_config(edge_data(site, modbus_port, files | {"url": url, "tls_insecure": True},
                                            tmp_path / "b", confirm="broker"), "<test>"))
    await run_agent_until(insecure, lambda: len(collector.messages("m1")) >= 3, "readings with the URL's login")
    collector.close()
    assert insecure.acknowledged >= 3


async def test_protocol_311_is_used_from_the_start(mqtt_url: str, modbus_port: int, tmp_path: Path) -> None:
    site = unique_site()
    collector = await asyncio.to_thread(Collector, mqtt_url, site)
    agent = Agent(parse_config(edge_data(site, modbus_port, {"url": mqtt_url, "protocol": "3.1.1"}, tmp_path),
                               "<test>"))
    await run_agent_until(agent, lambda: len(collector.messages("m1")) >= 3, "readings over MQTT 3.1.1")
    collector.close()
    assert agent.publisher.generation == 0, "no MQTT 5 attempt was made and dropped"
    assert {s.get("protocol") for s in collector.status if s.get("status") == "online"} == {"3.1.1"}


async def test_protocol_5_does_not_fall_back_and_says_why(modbus_port: int, tmp_path: Path) -> None:
    async with mqtt311_broker() as url:
        agent = Agent(parse_config(edge_data(unique_site(), modbus_port, {"url": url, "protocol": "5"}, tmp_path),
                                   "<test>"))
        await run_agent_until(agent, lambda: "no fallback" in (agent.publisher.last_error or ""),
                              "the refusal of MQTT 5 reported")
    assert agent.publisher.protocol_name == "5" and agent.acknowledged == 0
    assert agent.spool.size > 0, "what was polled waits in the spool"
