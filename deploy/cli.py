"""The `carbonwatch` command: one subcommand per service or tool, each registered by the package that owns it.

Every command runs under the one table of exit codes (`deploy/exit_codes.py`). Only the module that owns the
requested subcommand is imported, so a service starts without loading the others (and a problem in one package
cannot stop another's command); `--help` loads them all.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from deploy.exit_codes import run_command

# subcommand -> module providing `register(subparsers)` that adds it with set_defaults(func=...)
COMMANDS = {
    "run": "deploy.runner",
    "broker": "deploy.broker",
    "check-config": "deploy.check_config",
    "simulate": "simulators.cli",
    "edge": "edge.cli",
    "ingest": "ingest.cli",
    "api": "api.cli",
    "api-key": "api.cli",
    "scada": "scada.cli",
    "calc": "deploy.calc_cli",
    "factors": "deploy.calc_cli",
    "production": "api.production_cli",
    "activity": "api.activity_cli",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="carbonwatch", description="Live plant-floor carbon emissions.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    modules = [COMMANDS[only]] if only in COMMANDS else list(dict.fromkeys(COMMANDS.values()))
    for name in modules:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    only = argv[0] if argv and argv[0] in COMMANDS else None
    args = build_parser(only).parse_args(argv)
    return run_command(args.func, args, f"carbonwatch {args.command}")


if __name__ == "__main__":
    sys.exit(main())
