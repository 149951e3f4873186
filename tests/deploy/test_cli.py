"""The `carbonwatch` dispatcher: every listed subcommand exists, and a command loads only its own package."""

from __future__ import annotations

import subprocess
import sys

from deploy.cli import COMMANDS, build_parser


def test_every_listed_command_is_registered_by_its_module() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == set(COMMANDS)  # type: ignore[arg-type]


def test_a_command_imports_only_its_own_package() -> None:
    code = ("import sys; from deploy.cli import build_parser; build_parser('calc'); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'edge', 'ingest', 'api', 'simulators', 'scada'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
