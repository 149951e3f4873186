"""The one table from error roots to process exit codes, and `run_command`, which every `carbonwatch` command uses.

A command raises its package's errors and returns 0 when it stops cleanly; it writes no exit code by hand.
Usage and configuration errors (the command cannot run as asked: fix the file or the arguments) exit 2; runtime
failures (a store, broker, port or file that fails while running or starting) exit 1. Anything else is a bug and
keeps its traceback (Python exits 1).

The table names classes by their dotted path instead of importing them, so that running one command imports
only its own package (`deploy.cli`); `tests/deploy/test_exit_codes.py` checks that every name resolves.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

USAGE = 2    # the configuration or the arguments are wrong: starting again will not help
FAILURE = 1  # something failed while starting or running: starting again may help

# error class (module.qualname) -> exit code. A class not listed takes the code of the nearest listed class
# among its bases, so each package's family gets its root's code unless it is listed itself.
EXIT_CODES: dict[str, int] = {
    # configuration: the plant file or a command-line override does not validate
    "plantfile.loader.PlantFileError": USAGE,
    "calc.plant.PlantError": USAGE,
    "edge.errors.ConfigError": USAGE,
    "ingest.errors.ConfigError": USAGE,
    "scada.errors.ConfigError": USAGE,
    "simulators.errors.ConfigError": USAGE,
    "api.settings.SettingsError": USAGE,
    # the roots: one per package family
    "calc.errors.CalcError": FAILURE,
    "edge.errors.EdgeError": FAILURE,
    "ingest.errors.IngestError": FAILURE,
    "scada.errors.ScadaError": FAILURE,
    "simulators.errors.SimulatorError": FAILURE,
    "deploy.errors.DeployError": FAILURE,
    "records.base.RecordsError": FAILURE,
    # what the system refuses: a folder that cannot be written, a port that is taken, a missing certificate
    "builtins.OSError": FAILURE,
    "sqlite3.Error": FAILURE,
}


def class_name(cls: type[BaseException]) -> str:
    """The key of `cls` in EXIT_CODES: its module and qualified name."""
    return f"{cls.__module__}.{cls.__qualname__}"


def exit_code(exc: BaseException) -> int | None:
    """The exit code for `exc`: that of its nearest listed class (its own, else its root's); None if unlisted."""
    for cls in type(exc).__mro__:
        code = EXIT_CODES.get(class_name(cls))
        if code is not None:
            return code
    return None


Command = Callable[[argparse.Namespace], "int | None"]


def run_command(command: Command, args: argparse.Namespace, name: str) -> int:
    """Run a parsed command; an error the table knows becomes one line `NAME: message` on stderr and its code."""
    try:
        return int(command(args) or 0)
    except Exception as exc:
        code = exit_code(exc)
        if code is None:
            raise
        print(f"{name}: {exc}", file=sys.stderr)
        return code
