"""The root of every error the simulators raise on purpose (`SimulatorError`) and its families.

`deploy/exit_codes.py` maps them to exit codes: a plant file the simulators cannot run is a usage error (2), a
gateway or control server that cannot start a failure (1).
"""

from __future__ import annotations


class SimulatorError(Exception):
    """Root of every error the simulators raise on purpose."""


class ConfigError(SimulatorError, ValueError):
    """A plant file the simulators cannot run: the message names the file, the key path and why."""


class StartError(SimulatorError, RuntimeError):
    """A gateway or the control server that cannot start (a port that is taken, a missing tool)."""
