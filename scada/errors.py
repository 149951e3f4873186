"""The root of every error the SCADA service raises on purpose (`ScadaError`) and its families.

`deploy/exit_codes.py` maps them to exit codes: a configuration that cannot be served is a usage error (2), a
server that cannot start (a port that is taken) a failure (1).
"""

from __future__ import annotations


class ScadaError(Exception):
    """Root of every error the SCADA service raises on purpose."""


class ConfigError(ScadaError, ValueError):
    """A plant file whose [scada] section (or what it reads of [mqtt]) does not validate: file, key path, why."""


class ServeError(ScadaError, RuntimeError):
    """A server that cannot start (a port that is taken, an address that cannot be bound)."""
