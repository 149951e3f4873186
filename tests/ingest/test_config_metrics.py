"""Ingest's plant-file sections (errors name file, key path and why) and the metrics the API renders."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.config import ConfigError, load_config
from ingest.metrics import IngestMetrics, read_plant_metrics, render_prometheus
from tests.ingest.helpers import REPO

BASE = """
[site]
id = "demo"
region = "CN"
start = 2026-01-01T00:00:00Z

[[meters]]
id = "m1"
area = "a1"
carrier = "electricity"
"""


def write(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "plant.toml"
    path.write_text(BASE + extra)
    return path


def test_demo_plant_file_is_valid_for_ingest(tmp_path: Path) -> None:
    config = load_config(REPO / "deploy" / "examples" / "demo-plant.toml", base_dir=tmp_path)
    assert config.mqtt.effective_url == "mqtt://127.0.0.1:1883"  # url = "" means the local default
    assert config.client_id == "carbonwatch-ingest-demo"
    assert config.store.kind == "sqlite"
    assert config.resolve(config.store.path) == tmp_path / "var" / "carbonwatch.sqlite"


def test_defaults_overrides_and_login(tmp_path: Path) -> None:
    path = write(tmp_path, '[mqtt]\nurl = "mqtts://user:pw@broker.example:8884"\n'
                           '[ingest]\nclient_id = "w1"\nshare_group = "ingest"\n')
    config = load_config(path)
    assert (config.mqtt.host, config.mqtt.port, config.mqtt.tls, config.mqtt.login) == (
        "broker.example", 8884, True, ("user", "pw"))
    assert config.client_id == "w1" and config.ingest.share_group == "ingest"
    override = load_config(path, mqtt_url="mqtt://127.0.0.1:1999")
    assert (override.mqtt.port, override.mqtt.tls) == (1999, False)


@pytest.mark.parametrize(("extra", "expected"), [
    ('[store]\nkind = "postgres"\n', "plant.toml: store.kind"),
    ('[store]\nkind = "influxdb"\n', "plant.toml: store.url: Field required"),
    ('[store]\nkind = "sqlite"\nretention_days = -1\n', "plant.toml: store.retention_days"),
    ('[mqtt]\nurl = "http://x:1"\n', "plant.toml: mqtt.url"),
    ('[ingest]\nbatch_max_messages = 0\n', "plant.toml: ingest.batch_max_messages"),
    ('[ingest]\nshare_group = "a/b"\n', "plant.toml: ingest.share_group"),
])
def test_bad_sections_name_file_key_and_why(tmp_path: Path, extra: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, extra))
    assert expected in str(err.value), str(err.value)


def test_bad_plant_and_bad_toml_are_config_errors(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text("[site\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)
    path.write_text(BASE.replace('electricity', 'moonlight'))
    with pytest.raises(ConfigError, match=r"p\.toml: meters\.0"):
        load_config(path)


def test_metrics_snapshots_of_every_worker_reach_the_api(tmp_path: Path) -> None:
    data = {"site": {"id": "demo"}, "ingest": {"client_id": "w1"}}
    for worker, stored in (("w1", 10), ("w2", 7)):
        m = IngestMetrics(worker=worker)
        m.add(stored=stored, duplicates=1)
        m.set(buffered=2)
        m.write(tmp_path / "var" / f"ingest-metrics-{worker}.json")
    snaps = read_plant_metrics(data, tmp_path)
    assert sorted((s["worker"], s["stored"]) for s in snaps) == [("w1", 10), ("w2", 7)]
    text = render_prometheus(snaps)
    assert 'carbonwatch_ingest_stored_total{worker="w1"} 10' in text
    assert 'carbonwatch_ingest_buffered{worker="w2"} 2' in text
    assert "# TYPE carbonwatch_ingest_duplicates_total counter" in text
