"""The one table of exit codes: every error root of every package has a code, a subclass takes its root's, and every
command exits by it (2 for configuration and usage, 1 for failures while starting or running)."""

from __future__ import annotations

import argparse
import importlib
import inspect
import pkgutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.exit_codes import EXIT_CODES, FAILURE, USAGE, class_name, exit_code, run_command

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("calc", "link", "plantfile", "records", "edge", "ingest", "scada", "simulators", "deploy")
# errors that never reach a command, with why
NOT_FOR_COMMANDS = {
    "ingest.store.sqlite_retention._OutOfTime",  # retention's own control flow, caught where it is raised
}


def _error_classes() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for package in PACKAGES:
        root = importlib.import_module(package)
        names = [package] + [m.name for m in pkgutil.walk_packages(root.__path__, f"{package}.")]
        for name in names:
            if name.endswith("__main__"):
                continue
            module = importlib.import_module(name)
            for _, cls in inspect.getmembers(module, inspect.isclass):
                if issubclass(cls, BaseException) and cls.__module__ == name:
                    found[class_name(cls)] = cls
    return found


def _resolve(dotted: str) -> type[BaseException]:
    module, _, qualname = dotted.rpartition(".")
    cls = getattr(importlib.import_module(module), qualname)
    assert isinstance(cls, type) and issubclass(cls, BaseException), dotted
    return cls


def test_every_name_in_the_table_is_an_error_class() -> None:
    for dotted, code in EXIT_CODES.items():
        assert class_name(_resolve(dotted)) == dotted
        assert code in (USAGE, FAILURE)


def test_every_error_of_every_package_has_a_code() -> None:
    errors = _error_classes()
    assert len(errors) > 20  # the walk found the packages' errors
    missing = sorted(n for n, cls in errors.items() if n not in NOT_FOR_COMMANDS and exit_code(cls("x")) is None)
    assert not missing, f"not under any root in deploy/exit_codes.py: {missing}"


def test_each_package_has_one_root() -> None:
    roots = {"calc": "calc.errors.CalcError", "edge": "edge.errors.EdgeError", "ingest": "ingest.errors.IngestError",
             "scada": "scada.errors.ScadaError", "simulators": "simulators.errors.SimulatorError",
             "deploy": "deploy.errors.DeployError", "plantfile": "plantfile.loader.PlantFileError",
             "records": "records.base.RecordsError"}
    for name, cls in _error_classes().items():
        if name in NOT_FOR_COMMANDS:
            continue
        root = _resolve(roots[name.split(".")[0]])
        assert issubclass(cls, root), f"{name} is not a {class_name(root)}"


@pytest.mark.parametrize(("dotted", "code"), [
    ("calc.units.UnitError", FAILURE),
    ("calc.factors.FactorError", FAILURE),
    ("calc.plant.PlantError", USAGE),
    ("edge.errors.ConfigError", USAGE),
    ("edge.errors.TransportError", FAILURE),
    ("ingest.config.ConfigError", USAGE),
    ("ingest.store.base.StoreError", FAILURE),
    ("ingest.store.base.HeldNotFoundError", FAILURE),
    ("ingest.mqtt.MqttError", FAILURE),
    ("scada.config.ConfigError", USAGE),
    ("scada.errors.ServeError", FAILURE),
    ("simulators.config.ConfigError", USAGE),
    ("simulators.errors.StartError", FAILURE),
    ("deploy.services.ServiceError", FAILURE),
    ("deploy.mosquitto.acl.AclError", FAILURE),
])
def test_a_subclass_takes_the_code_of_its_nearest_listed_class(dotted: str, code: int) -> None:
    assert exit_code(_resolve(dotted)("why")) == code


def test_what_the_system_refuses_is_a_failure_and_a_bug_is_not_mapped() -> None:
    assert exit_code(sqlite3.OperationalError("disk I/O error")) == FAILURE
    assert exit_code(PermissionError(13, "Permission denied")) == FAILURE
    assert exit_code(ValueError("a bug")) is None and exit_code(KeyError("a bug")) is None


def test_run_command_prints_one_line_and_returns_the_code(capsys: pytest.CaptureFixture[str]) -> None:
    from edge.errors import ConfigError

    def refuses(args: argparse.Namespace) -> int:
        raise ConfigError("plant.toml: mqtt.url: bad")

    assert run_command(refuses, argparse.Namespace(), "carbonwatch edge") == USAGE
    assert capsys.readouterr().err == "carbonwatch edge: plant.toml: mqtt.url: bad\n"
    assert run_command(lambda args: None, argparse.Namespace(), "carbonwatch edge") == 0

    def has_a_bug(args: argparse.Namespace) -> int:
        raise ZeroDivisionError("a bug keeps its traceback")

    with pytest.raises(ZeroDivisionError):
        run_command(has_a_bug, argparse.Namespace(), "carbonwatch edge")


@pytest.mark.parametrize("argv", [
    ["edge", "--config"], ["ingest", "--config"], ["scada", "--config"], ["simulate", "--plant"], ["api", "--config"],
], ids=lambda argv: argv[0])
def test_every_command_exits_2_on_a_plant_file_it_cannot_read(tmp_path: Path, argv: list[str]) -> None:
    missing = tmp_path / "missing.toml"
    out = subprocess.run([sys.executable, "-m", "deploy.cli", *argv, str(missing)], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert out.returncode == USAGE, out.stderr
    assert out.stderr == f"carbonwatch {argv[0]}: {missing}: cannot read: No such file or directory\n"


def test_scada_with_nothing_to_serve_exits_2(tmp_path: Path) -> None:
    plant = tmp_path / "plant.toml"
    plant.write_text((REPO / "deploy" / "examples" / "demo-plant.toml").read_text(encoding="utf-8"), encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "scada.cli", "--config", str(plant)], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert out.returncode == USAGE and "nothing to serve" in out.stderr, out.stderr
