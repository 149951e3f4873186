"""The root of every error the wiring raises on purpose (`DeployError`): ACL generation and test services.

`deploy/exit_codes.py` maps it, with every other package's root, to a process exit code.
"""

from __future__ import annotations


class DeployError(Exception):
    """Root of every error `deploy/` raises on purpose."""
