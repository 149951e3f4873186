"""The one plant-file loader: every part reads the same file the same way, secrets come from the file itself, an
environment variable or a file, and what is missing is named (file, key path, variable or path)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from api.settings import SettingsError, load_settings
from deploy.check_config import check_file
from deploy.exit_codes import exit_code
from edge.config import load_config as edge_config
from edge.errors import ConfigError as EdgeConfigError
from ingest.config import ConfigError as IngestConfigError
from ingest.config import load_config as ingest_config
from plantfile import PlantFileError, read_plant_file, validate_section
from scada.config import ConfigError as ScadaConfigError
from scada.config import load_config as scada_config
from simulators.config import ConfigError as SimConfigError
from simulators.config import load_config as sim_config

REPO = Path(__file__).resolve().parents[2]
DEMO = (REPO / "deploy" / "examples" / "demo-plant.toml").read_text(encoding="utf-8")
ENV = "CW_TEST_MQTT_PASSWORD"
OPC_ENV = "CW_TEST_OPC_PASSWORD"


def plant(tmp_path: Path, mqtt: str, influx: str = "", opc_user: str = 'password = "opc-user-pw"',
          gateway: str = "") -> Path:
    """The demo plant with [mqtt] login lines, an InfluxDB store, a SCADA OPC UA user and the OPC UA gateway's
    login lines as given."""
    text = DEMO.replace('[mqtt]\nurl = ""\n', f'[mqtt]\nurl = ""\nusername = "cw"\n{mqtt}\n', 1)
    text = text.replace('[store]\nkind = "sqlite"\npath = "var/carbonwatch.sqlite"\n',
                        f'[store]\nkind = "influxdb"\nurl = "http://127.0.0.1:8086"\nusername = "cw"\n{influx}\n', 1)
    text = text.replace('cert_dir = "var/simulators/opc1"\n',
                        f'cert_dir = "var/simulators/opc1"\nusername = "opc"\n{gateway}\n', 1)
    text += f'\n[scada.opcua]\nenabled = true\nusers = [{{ username = "operator", {opc_user} }}]\n'
    path = tmp_path / "plant.toml"
    path.write_text(text, encoding="utf-8")
    return path


def passwords(path: Path) -> dict[str, Any]:
    """Every secret as each part reads it from the plant file."""
    ingest, scada = ingest_config(path, base_dir=path.parent), scada_config(path, base_dir=path.parent)
    edge, api = edge_config(path), load_settings(path, path.parent)
    opc = next(g for g in sim_config(path).gateways if g.id == "opc1")
    edge_opc = edge.gateway("opc1")
    assert ingest.store.kind == "influxdb"
    return {"mqtt": {ingest.mqtt.password, scada.mqtt.password, edge.mqtt.password, api.mqtt.password},
            "influx": ingest.store.password, "scada_user": scada.scada.opcua.users[0].password,
            "opc_gateway": {getattr(opc, "password", None), getattr(edge_opc, "password", None)}}


def test_secrets_written_in_the_plant_file_still_work(tmp_path: Path) -> None:
    path = plant(tmp_path, 'password = "in-file"', 'password = "influx-in-file"', gateway='password = "gw-in-file"')
    assert passwords(path) == {"mqtt": {"in-file"}, "influx": "influx-in-file", "scada_user": "opc-user-pw",
                               "opc_gateway": {"gw-in-file"}}


def test_secrets_from_environment_variables_reach_every_part(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "from-env p@ss")
    monkeypatch.setenv(OPC_ENV, "operator-from-env")
    monkeypatch.setenv("CW_TEST_GW", "gw-from-env")
    path = plant(tmp_path, f'password_env = "{ENV}"', 'password_env = "CW_TEST_MQTT_PASSWORD"',
                 opc_user=f'password_env = "{OPC_ENV}"', gateway='password_env = "CW_TEST_GW"')
    assert passwords(path) == {"mqtt": {"from-env p@ss"}, "influx": "from-env p@ss",
                               "scada_user": "operator-from-env", "opc_gateway": {"gw-from-env"}}
    assert all(r.ok for r in check_file(path)), [r.problems for r in check_file(path)]


def test_secrets_from_files_absolute_or_beside_the_plant_file(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "mqtt").write_text("mqtt-from-file\n")  # the newline an editor or `echo` adds is not the secret's
    (secrets / "influx").write_text("  influx from file  ")  # other white space is
    (secrets / "opc").write_text("operator-from-file\r\n")
    (secrets / "gw").write_text("gw-from-file")
    path = plant(tmp_path, f'password_file = "{secrets / "mqtt"}"', 'password_file = "secrets/influx"',
                 opc_user='password_file = "secrets/opc"', gateway=f'password_file = "{secrets / "gw"}"')
    assert passwords(path) == {"mqtt": {"mqtt-from-file"}, "influx": "  influx from file  ",
                               "scada_user": "operator-from-file", "opc_gateway": {"gw-from-file"}}


LOADERS: list[tuple[str, Callable[[Path], object], type[Exception]]] = [
    ("ingest", lambda p: ingest_config(p, base_dir=p.parent), IngestConfigError),
    ("scada", lambda p: scada_config(p, base_dir=p.parent), ScadaConfigError),
    ("edge", edge_config, EdgeConfigError),
    ("simulators", sim_config, SimConfigError),
    ("api", lambda p: load_settings(p, p.parent), SettingsError),
]


@pytest.mark.parametrize(("part", "load", "error"), LOADERS, ids=[x[0] for x in LOADERS])
def test_a_missing_environment_variable_is_named_by_every_part(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                part: str, load: Callable[[Path], object],
                                                                error: type[Exception]) -> None:
    monkeypatch.delenv(ENV, raising=False)
    path = plant(tmp_path, f'password_env = "{ENV}"', 'password = "x"')
    with pytest.raises(error) as refused:
        load(path)
    assert str(refused.value) == f"{path}: mqtt.password_env: environment variable {ENV} is not set"


@pytest.mark.parametrize(("part", "load", "error"), LOADERS, ids=[x[0] for x in LOADERS])
def test_a_missing_secret_file_is_named_by_every_part(tmp_path: Path, part: str, load: Callable[[Path], object],
                                                      error: type[Exception]) -> None:
    path = plant(tmp_path, 'password = "x"', 'password = "x"', opc_user='password_file = "no/such/file"')
    with pytest.raises(error) as refused:
        load(path)
    assert str(refused.value) == (f"{path}: scada.opcua.users.0.password_file: cannot read secret file "
                                  f"{tmp_path / 'no/such/file'}: No such file or directory")


def test_check_config_names_what_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    path = plant(tmp_path, f'password_env = "{ENV}"', f'password_file = "{tmp_path / "gone"}"')
    [result] = check_file(path)
    assert not result.ok
    assert result.problems == (f"{path}: mqtt.password_env: environment variable {ENV} is not set",
                               f"{path}: store.password_file: cannot read secret file {tmp_path / 'gone'}: "
                               f"No such file or directory")


@pytest.mark.parametrize(("lines", "why"), [
    ('password = "a"\npassword_env = "X"', "`password` and `password_env` both given"),
    ('password_env = "X"\npassword_file = "/x"', "`password_env` and `password_file` both given"),
    ("password_env = 5", "must be an environment variable's name (text), got 5"),
    ('password_file = ""', "must be a file's path (text), got ''"),
])
def test_a_secret_given_twice_or_badly_is_refused(tmp_path: Path, lines: str, why: str) -> None:
    path = plant(tmp_path, lines, 'password = "x"')
    with pytest.raises(PlantFileError) as refused:
        read_plant_file(path, environ={"X": "1"})
    assert str(refused.value).startswith(f"{path}: mqtt.password_")
    assert why in str(refused.value)


@pytest.mark.parametrize(("part", "load", "error"), LOADERS, ids=[x[0] for x in LOADERS])
def test_every_part_names_a_file_it_cannot_read_or_parse(tmp_path: Path, part: str, load: Callable[[Path], object],
                                                         error: type[Exception]) -> None:
    with pytest.raises(error, match=f"^{tmp_path / 'absent.toml'}: cannot read: No such file or directory$"):
        load(tmp_path / "absent.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[site\n")
    with pytest.raises(error, match=f"^{bad}: not valid TOML: "):
        load(bad)


def test_a_section_that_is_not_a_table_is_named() -> None:
    from api.settings import ApiSection

    with pytest.raises(PlantFileError, match=r"^f.toml: api: must be a table$"):
        validate_section({"api": 5}, "api", ApiSection, "f.toml")
    with pytest.raises(PlantFileError, match=r"^f.toml: api.port: Input should be less than or equal to 65535$"):
        validate_section({"api": {"port": 70000}}, "api", ApiSection, "f.toml")


def test_the_runner_reads_validated_sections(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from deploy.runner import Runner

    monkeypatch.setenv(ENV, "runner-pw")
    path = plant(tmp_path, f'password_env = "{ENV}"', 'password = "x"')
    runner = Runner(path, tmp_path / "var", None, None)
    assert (runner.mqtt_url, runner.api_host, runner.api_port) == ("", "127.0.0.1", 8000)
    assert runner.ingest.mqtt.password == "runner-pw" and runner.ingest.store.kind == "influxdb"


def test_carbonwatch_run_refuses_a_missing_secret_before_starting_anything(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != ENV} | {"COLUMNS": "400"}
    path = plant(tmp_path, f'password_env = "{ENV}"', 'password = "x"')
    out = subprocess.run([sys.executable, "-m", "deploy.cli", "run", "--plant", str(path), "--data-dir",
                          str(tmp_path / "var")], capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"could not start: {path}: mqtt.password_env: environment variable {ENV} is not set" in out.stdout
    assert not (tmp_path / "var").exists()  # nothing was started


MQTT_URL_LOADERS: list[tuple[str, Callable[[Path, str], Any], type[Exception]]] = [
    ("edge", lambda p, url: edge_config(p, mqtt_url=url).mqtt, EdgeConfigError),
    ("ingest", lambda p, url: ingest_config(p, url).mqtt, IngestConfigError),
    ("scada", lambda p, url: scada_config(p, url).mqtt, ScadaConfigError),
    ("api", lambda p, url: load_settings(p, mqtt_url=url).mqtt, SettingsError),
]


@pytest.mark.parametrize(("part", "load", "error"), MQTT_URL_LOADERS, ids=[x[0] for x in MQTT_URL_LOADERS])
def test_mqtt_url_overrides_the_file_in_every_part(tmp_path: Path, part: str, load: Callable[[Path, str], Any],
                                                   error: type[Exception]) -> None:
    path = plant(tmp_path, 'password = "file-pw"')
    mqtt = load(path, "mqtts://broker.example:8884")
    assert (mqtt.host, mqtt.port, mqtt.tls) == ("broker.example", 8884, True)
    assert (mqtt.username, mqtt.password) == ("cw", "file-pw")  # the rest of [mqtt] is kept
    with pytest.raises(error) as caught:
        load(path, "http://broker.example")
    assert str(caught.value).startswith("--mqtt-url: mqtt.url: "), str(caught.value)


def test_the_api_refuses_a_bad_standard_coal_section_at_start(tmp_path: Path) -> None:
    # the balance answers such a plant with its kgce refused (tests/api/test_reports_kgce_intensity.py), but the API
    # started on it exits 2 naming the key, as check-config does, instead of meeting it first in a request
    path = tmp_path / "plant.toml"
    path.write_text(DEMO + '\n[standard_coal]\nmethod = "equal"\n', encoding="utf-8")
    with pytest.raises(SettingsError, match=r"standard_coal\.equal") as refused:
        load_settings(path, tmp_path)
    assert str(refused.value).startswith(f"{path}: ")
    assert exit_code(refused.value) == 2
