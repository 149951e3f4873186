"""Every example config in the repository validates with every part's models (`carbonwatch check-config`), the
TOML examples in the README and docs validate too, a broken file is reported by file, key path and reason, and
docs/config-reference.md is exactly what the models generate (so it cannot drift).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from deploy import config_reference
from deploy.check_config import KNOWN_SECTIONS, check_data, check_file, report

REPO = Path(__file__).resolve().parents[2]
SKIP_DIRS = {".venv", "var", "node_modules", ".git", "carbonwatch.egg-info"}


def plant_files() -> list[Path]:
    """Every TOML file in the repository that is a plant file (has a [site] table)."""
    found = []
    for path in sorted(REPO.rglob("*.toml")):
        rel = path.relative_to(REPO)
        if SKIP_DIRS & set(rel.parts) or rel.parts[0] == "tests":
            continue
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise AssertionError(f"{rel}: not valid TOML: {exc}") from exc
        if isinstance(data.get("site"), dict):
            found.append(path)
    return found


def test_the_examples_are_found() -> None:
    names = {str(p.relative_to(REPO)) for p in plant_files()}
    assert {"deploy/examples/demo-plant.toml", "deploy/compose/plant.toml"} <= names


@pytest.mark.parametrize("path", plant_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_example_plant_file_validates(path: Path) -> None:
    results = check_file(path)
    assert all(r.ok for r in results), report(path, results)
    checked = {r.part for r in results if not r.skipped}
    assert {"plant", "factors", "edge", "ingest", "api", "sections"} <= checked


def test_a_broken_file_is_reported_by_file_key_and_reason(tmp_path: Path) -> None:
    demo = (REPO / "deploy" / "examples" / "demo-plant.toml").read_text()
    broken = demo.replace("port = 5020", "port = 70000", 1).replace("port = 8000", "port = -1", 1)
    broken += '\n[stroe]\nkind = "sqlite"\n'
    path = tmp_path / "broken.toml"
    path.write_text(broken)
    out = subprocess.run([sys.executable, "-m", "deploy.check_config", str(path)], capture_output=True, text=True,
                         timeout=60, cwd=REPO)
    assert out.returncode == 1
    assert f"{path}: gateways.0.port: Input should be less than or equal to 65535" in out.stdout
    assert f"{path}: api.port: Input should be greater than or equal to 0" in out.stdout
    assert f"{path}: stroe: no part of carbonwatch reads this section" in out.stdout
    ok = subprocess.run([sys.executable, "-m", "deploy.check_config", str(REPO / "deploy/examples/demo-plant.toml")],
                        capture_output=True, text=True, timeout=60, cwd=REPO)
    assert ok.returncode == 0, ok.stdout


def test_a_file_that_is_not_toml_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[site\nid = 1\n")
    results = check_file(path)
    assert len(results) == 1 and not results[0].ok
    assert results[0].problems[0].startswith(f"{path}: not valid TOML")


def test_an_unknown_region_is_caught_before_start(tmp_path: Path) -> None:
    demo = (REPO / "deploy" / "examples" / "demo-plant.toml").read_text()
    path = tmp_path / "nowhere.toml"
    path.write_text(re.sub(r'^region = "CN"', 'region = "XX-nowhere"', demo, count=1, flags=re.M))
    factors = next(r for r in check_file(path) if r.part == "factors")
    assert factors.problems and all("XX-nowhere" in p for p in factors.problems)


def test_config_reference_is_generated_from_the_models() -> None:
    committed = (REPO / "docs" / "config-reference.md").read_text(encoding="utf-8")
    assert committed == config_reference.render(), "run: python -m deploy.config_reference"


def test_config_reference_covers_every_section_and_key() -> None:
    text = config_reference.render()
    for section in KNOWN_SECTIONS:
        assert re.search(rf"^### \[+{section}\b", text, re.M) or f"[{section}" in text, section
    for table in config_reference.tables():
        for name, field in table.model.model_fields.items():
            if name not in table.skip:
                assert f"| `{field.alias or name}` |" in text, f"{table.heading}: {name}"


# --- TOML examples in the README and the docs -------------------------------------------------------------
OTHERS_DOCS = {"calculations.md", "scada.md"}  # written and tested by the calc and SCADA parts


def toml_blocks() -> list[tuple[str, str]]:
    blocks = []
    docs = [REPO / "README.md", *(p for p in sorted((REPO / "docs").glob("*.md")) if p.name not in OTHERS_DOCS)]
    for doc in docs:
        for i, block in enumerate(re.findall(r"```toml\n(.*?)```", doc.read_text(encoding="utf-8"), re.S)):
            blocks.append((f"{doc.relative_to(REPO)}#{i}", block))
    return blocks


def test_the_docs_have_toml_examples() -> None:
    names = [name for name, _ in toml_blocks()]
    assert any(n.startswith("README.md") for n in names)


@pytest.mark.parametrize(("name", "block"), toml_blocks(), ids=[n for n, _ in toml_blocks()])
def test_toml_examples_in_the_docs_validate(name: str, block: str, tmp_path: Path) -> None:
    """A whole plant file is checked as it is; a fragment replaces its sections in the demo plant (its meters
    and gateways are added to the demo's, real ones: the demo's [simulator] is left out) and the result checked."""
    fragment: dict[str, Any] = tomllib.loads(block)
    if "site" in fragment:
        data = fragment
    else:
        data = tomllib.loads((REPO / "deploy" / "examples" / "demo-plant.toml").read_text())
        data.pop("simulator")
        for key, value in fragment.items():
            data[key] = [*data.get(key, []), *value] if key in ("meters", "gateways") else value
    results = check_data(data, name, tmp_path)
    assert all(r.ok for r in results), report(Path(name), results)


def test_readme_starts_with_the_two_commands() -> None:
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "# carbonwatch"
    block = lines[lines.index("```sh") + 1:lines.index("```sh") + 3]
    assert block[0].startswith("sh deploy/run.sh ") and block[1].startswith("sh deploy/test.sh ")
    assert all(not line.strip() for line in lines[1:lines.index("```sh")]), "nothing before the commands"


@pytest.mark.parametrize("doc", ["README.md", *(f"docs/{p.name}" for p in sorted((REPO / "docs").glob("*.md"))
                                                if p.name not in OTHERS_DOCS)])
def test_relative_links_point_at_files(doc: str) -> None:
    path = REPO / doc
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text(encoding="utf-8")):
        if re.match(r"^[a-z]+:", target):
            continue
        assert (path.parent / target).exists(), f"{doc}: broken link {target}"


def test_the_tours_request_bodies_are_valid() -> None:
    """The JSON bodies the README sends (rules, allowances, instruments, simulator faults) pass the models that
    receive them."""
    from api.instruments import InstrumentIn
    from api.ledger import AllowanceIn
    from api.routes.rules import RuleIn
    from simulators.control import FaultRequest

    models = {"v1/rules": RuleIn, "v1/allowances": AllowanceIn, "v1/instruments": InstrumentIn, "faults": FaultRequest}
    text = (REPO / "README.md").read_text(encoding="utf-8")
    found = re.findall(r"/(v1/rules|v1/allowances|v1/instruments|faults)\"?\s+(?:-H '[^']*'\s+)*-d\s+\\?\s*'(\{.*?\})'",
                       text, re.S)
    assert {path for path, _ in found} == set(models), found
    for path, body in found:
        models[path].model_validate_json(body)


def test_the_known_mqtt_keys_are_exactly_what_the_parts_read() -> None:
    from api.settings import MqttSection
    from calc.broker import MQTT_KEYS
    from edge.config import MqttSettings as EdgeMqtt
    from ingest.config import MqttSettings as IngestMqtt
    from scada.config import MqttSettings as ScadaMqtt

    read = set().union(*(model.model_fields for model in (EdgeMqtt, IngestMqtt, MqttSection, ScadaMqtt)))
    assert read == MQTT_KEYS


def test_one_mqtt_section_serves_every_part_and_a_typo_is_caught_by_each(tmp_path: Path) -> None:
    demo = tomllib.loads((REPO / "deploy" / "examples" / "demo-plant.toml").read_text())
    demo["scada"] = {"modbus": {"enabled": True, "port": 5502}}
    every_key = {"url": "mqtts://edge:pw%40x@broker.local:8883", "username": "u", "password": "p",
                 "ca_file": "ca.pem", "cert_file": "c.pem", "key_file": "k.pem", "tls_insecure": True,
                 "protocol": "3.1.1", "keepalive_s": 20, "reconnect_max_s": 10, "client_id": "edge-7"}
    readers = {"edge", "ingest", "api", "scada"}
    results = check_data({**demo, "mqtt": every_key}, "plant.toml", tmp_path)
    assert readers <= {r.part for r in results if not r.skipped}
    assert all(r.ok for r in results), "\n".join(p for r in results for p in r.problems)
    typo = check_data({**demo, "mqtt": {**every_key, "keepalive": 20}}, "plant.toml", tmp_path)
    failed = {r.part: r.problems for r in typo if not r.ok}
    assert set(failed) == readers
    assert all(any("unknown key 'keepalive'" in p for p in problems) for problems in failed.values()), failed
