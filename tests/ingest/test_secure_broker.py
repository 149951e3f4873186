"""Ingest against a Mosquitto that requires a password, over TLS: the [mqtt] login and CA settings work."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from deploy.services import Mosquitto, find_binary
from ingest.store.sqlite import SqliteStore
from tests.ingest.helpers import SITE, T0, IngestProcess, day_of_messages, plant_file, wait_for

pytestmark = pytest.mark.integration


class SecureMosquitto(Mosquitto):
    """Loopback Mosquitto with a password file and a TLS listener (certificates made for the test)."""

    def command(self) -> list[str]:
        conf = self.workdir / "mosquitto.conf"
        lines = [f"listener {self.port} {self.host}", "allow_anonymous false",
                 f"password_file {self.workdir / 'passwd'}", f"cafile {self.workdir / 'ca.crt'}",
                 f"certfile {self.workdir / 'server.crt'}", f"keyfile {self.workdir / 'server.key'}",
                 "max_queued_messages 0", "persistence false", "log_dest stdout"]
        if os.geteuid() == 0:
            lines.append("user root")
        conf.write_text("\n".join(lines) + "\n")
        return ["-c", str(conf)]


def run(*args: str, cwd: Path) -> None:
    subprocess.run(args, cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def secure_broker(tmp_path: Path) -> Iterator[SecureMosquitto]:
    work = tmp_path / "broker"
    work.mkdir()
    openssl, passwd = find_binary("openssl"), find_binary("mosquitto_passwd")
    assert openssl and passwd, "openssl and mosquitto_passwd come with the test services (deploy/test.sh)"
    run(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
        "-keyout", "ca.key", "-out", "ca.crt", cwd=work)
    run(openssl, "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key",
        "-out", "server.csr", cwd=work)
    (work / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    run(openssl, "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-extfile", "ext.cnf", "-out", "server.crt", cwd=work)
    (work / "passwd").write_text("")
    run(passwd, "-b", str(work / "passwd"), "ingest", "s3cret pass", cwd=work)
    run(passwd, "-b", str(work / "passwd"), "edge", "edge-pw", cwd=work)
    os.chmod(work / "passwd", 0o600)
    broker = SecureMosquitto(work)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def test_password_and_tls(secure_broker: SecureMosquitto, tmp_path: Path) -> None:
    ca = secure_broker.workdir / "ca.crt"
    url = f"mqtts://127.0.0.1:{secure_broker.port}"
    config = plant_file(tmp_path, url, client_id="secure")
    config.write_text(config.read_text().replace(
        f'url = "{url}"', f'url = "{url}"\nusername = "ingest"\npassword = "s3cret pass"\nca_file = "{ca}"'))
    proc = IngestProcess(config, tmp_path / "metrics-secure.json", tmp_path)
    proc.start()
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    pub.username_pw_set("edge", "edge-pw")
    pub.tls_set(ca_certs=str(ca))
    pub.connect("127.0.0.1", secure_broker.port)
    pub.loop_start()
    for topic, payload in day_of_messages("press-1", T0, 30, 10, lambda i: 1.0):
        pub.publish(topic, payload, qos=1).wait_for_publish(10)
    pub.disconnect()
    pub.loop_stop()
    db = tmp_path / "store.sqlite"
    wait_for(lambda: SqliteStore(db).point_count() == 30, what="30 readings over TLS with a password")
    assert proc.stop() == 0
    store = SqliteStore(db)
    (total,) = store.totals(SITE, T0, T0 + timedelta(hours=1))
    assert total.energy == pytest.approx(30.0)
    store.close()


def test_a_wrong_password_is_a_clear_start_up_error(secure_broker: SecureMosquitto, tmp_path: Path) -> None:
    ca = secure_broker.workdir / "ca.crt"
    url = f"mqtts://127.0.0.1:{secure_broker.port}"
    config = plant_file(tmp_path, url, client_id="wrong")
    config.write_text(config.read_text().replace(
        f'url = "{url}"', f'url = "{url}"\nusername = "ingest"\npassword = "nope"\nca_file = "{ca}"'))
    proc = IngestProcess(config, tmp_path / "metrics-wrong.json", tmp_path)
    with pytest.raises(AssertionError, match="ingest exited with 1") as err:
        proc.start(timeout_s=30)
    assert "refused" in str(err.value).lower() or "not authorized" in str(err.value).lower(), str(err.value)
