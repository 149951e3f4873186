"""Config loading: the shipped examples validate, and a bad file is refused naming the file, key path and why."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.config import ModbusRtuGateway, OpcUaGateway, load_config
from edge.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]

GOOD = """
[site]
id = "s"
region = "CN"
start = 2026-01-01T00:00:00Z

[[gateways]]
id = "gw"
kind = "modbus_tcp"
offline_response = "silent"   # a simulator key: ignored here

[[meters]]
id = "m"
area = "a"
carrier = "electricity"
gateway = "gw"
map = "schneider_pm5000"
sim = { profile = "shift" }   # the simulators' table: ignored here
{extra}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plant.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("example", [REPO / "edge" / "examples" / "all-drivers.toml",
                                     REPO / "deploy" / "examples" / "demo-plant.toml"])
def test_shipped_examples_validate(example: Path) -> None:
    config = load_config(example)
    assert config.meters and all(m.all_points for m in config.meters)


def test_example_resolves_templates_and_inline_points() -> None:
    config = load_config(REPO / "edge" / "examples" / "all-drivers.toml")
    meters = {m.id: m for m in config.meters}
    gas = {p.quantity: p for p in meters["boiler-gas"].all_points}
    assert gas["volume"].scale == 0.01 and gas["volume"].unit == "m**3"
    steam = {p.quantity: p for p in meters["steam-main"].all_points}
    assert steam["mass"].node == "nsu=urn:carbonwatch:simulators;s=steam-main.Totaliser"
    chiller = {p.quantity: p for p in meters["chiller"].all_points}
    assert chiller["active_energy_import"].width_bits == 32 and chiller["active_power"].max == 400.0
    assert isinstance(config.gateway("bus-utilities"), ModbusRtuGateway)
    opc = config.gateway("opc-steam")
    assert isinstance(opc, OpcUaGateway) and opc.url.endswith("/carbonwatch/sim")
    assert (config.mqtt.host, config.mqtt.port, config.mqtt.tls) == ("broker.plant-a.local", 8883, True)


def test_defaults_and_overrides(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD.replace("{extra}", "")), mqtt_url="mqtt://10.0.0.5:1884",
                         state_dir=tmp_path / "st")
    assert config.edge.agent == "edge-1"
    assert (config.mqtt.host, config.mqtt.port, config.mqtt.tls) == ("10.0.0.5", 1884, False)
    assert config.edge.state_dir == tmp_path / "st"
    assert load_config(write(tmp_path, GOOD.replace("{extra}", ""))).mqtt.effective_url == "mqtt://127.0.0.1:1883"


@pytest.mark.parametrize(("extra", "where", "why"), [
    ('[edge]\nspool_full_policy = "shrug"', "edge.spool_full_policy", "'compact'"),
    ('[edge]\nspool_full_policy = "drop_oldest"', "edge.spool_full_policy", "that energy was lost"),
    ('[edge]\nspool_full_policy = "drop_newest"', "edge.spool_full_policy", "merges never-published messages"),
    ('[edge]\nconfirm = "puback"', "edge.confirm", "'ingest' or 'broker'"),
    ('[edge]\nack_window = 0', "edge.ack_window", "greater than or equal to 1"),
    ('[mqtt]\nurl = "http://x"', "mqtt.url", "must be mqtt://"),
    ('[[meters]]\nid = "m2"\narea = "a"\ncarrier = "electricity"\ngateway = "nope"\nmap = "schneider_pm5000"',
     "(top level)", "gateway 'nope' is not in [[gateways]]"),
    ('[[meters]]\nid = "m2"\narea = "a"\ncarrier = "electricity"\ngateway = "gw"\nmap = "pm9999"',
     "meters.1.map", "unknown register map 'pm9999'"),
    ('[[meters]]\nid = "m2"\narea = "a"\ncarrier = "electricity"\ngateway = "gw"\n'
     'points = [{ quantity = "q", unit = "furlongs_per_blip", address = 1 }]',
     "meters.1.points.0.unit", "unknown unit"),
    ('[[meters]]\nid = "m2"\narea = "a"\ncarrier = "electricity"\ngateway = "gw"\n'
     'points = [{ quantity = "q", unit = "kWh", address = 65535, type = "u32" }]',
     "meters.1.points.0", "runs past 65535"),
    ('[[meters]]\nid = "m2"\narea = "a"\ncarrier = "electricity"\ngateway = "gw"\nmap = "adam6051_counter"',
     "meters.1", "needs pulse_m3"),
    ('[[meters]]\nid = "m2"\narea = "a"\ncarrier = "electricity"\ngateway = "gw"\n'
     'points = [{ quantity = "q", unit = "kWh", node = "ns=2;s=x" }]',
     "(top level)", "needs `address`"),
    ('[[meters]]\nid = "m"\narea = "a"\ncarrier = "electricity"\ngateway = "gw"\nmap = "schneider_pm5000"',
     "(top level)", "meter id 'm' appears twice"),
    ('[[gateways]]\nid = "b1"\nkind = "modbus_rtu"\ndevice = "/dev/ttyS1"\n'
     '[[gateways]]\nid = "b2"\nkind = "modbus_rtu"\ndevice = "/dev/ttyS1"',
     "(top level)", "serial device '/dev/ttyS1' is used by two gateways"),
])
def test_bad_config_names_file_key_and_why(tmp_path: Path, extra: str, where: str, why: str) -> None:
    path = write(tmp_path, GOOD.replace("{extra}", extra))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = str(err.value)
    assert text.startswith(f"{path}: "), text
    assert f": {where}: " in text, text
    assert why in text, text


def test_unreadable_and_not_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[site\n"))


def test_the_mqtt_section_every_service_reads_is_taken_whole(tmp_path: Path) -> None:
    # one [mqtt] for ingest, the API, SCADA and the agent: keys the others read are keys the agent reads too
    section = ('[mqtt]\nurl = "mqtts://edge:s3cret@broker.plant-a.local:8884"\nprotocol = "3.1.1"\n'
               'tls_insecure = true\nkeepalive_s = 20\nca_file = "ca.pem"')
    mqtt = load_config(write(tmp_path, GOOD.replace("{extra}", section))).mqtt
    assert (mqtt.host, mqtt.port, mqtt.tls) == ("broker.plant-a.local", 8884, True)
    assert mqtt.login == ("edge", "s3cret")  # from the URL's user info
    assert (mqtt.protocol, mqtt.tls_insecure, mqtt.keepalive_s, mqtt.ca_file) == ("3.1.1", True, 20, "ca.pem")
    keys_win = section + '\nusername = "agent-7"\npassword = "other"'
    assert load_config(write(tmp_path, GOOD.replace("{extra}", keys_win))).mqtt.login == ("agent-7", "other")


@pytest.mark.parametrize(("extra", "why"), [
    ('[mqtt]\nprotocl = "5"', "mqtt: .*unknown key 'protocl'"),
    ('[mqtt]\nprotocol = "4"', "mqtt.protocol"),
    ('[mqtt]\nurl = "mqtt://broker:99999"', "bad port"),
])
def test_a_bad_mqtt_key_is_named(tmp_path: Path, extra: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why):
        load_config(write(tmp_path, GOOD.replace("{extra}", extra)))
