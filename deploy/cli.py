"""The `carbonwatch` command: one subcommand per service or tool, each registered by the package that owns it."""

from __future__ import annotations

import argparse
import importlib
import sys

# package module -> provides `register(subparsers)` adding its subcommands with set_defaults(func=...)
SUBCOMMAND_MODULES = (
    "deploy.runner",      # run
    "deploy.broker",      # broker
    "simulators.cli",     # simulate
    "edge.cli",           # edge
    "ingest.cli",         # ingest
    "api.cli",            # api, api-key
    "scada.cli",          # scada
    "deploy.calc_cli",    # calc, factors
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="carbonwatch", description="Live plant-floor carbon emissions.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue  # a package that has not grown its command yet
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result = args.func(args)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
