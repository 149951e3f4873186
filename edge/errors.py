"""Errors of the edge agent: one root, a few families (config, device, transport)."""

from __future__ import annotations


class EdgeError(Exception):
    """Root of every error the edge agent raises on purpose."""


class ConfigError(EdgeError):
    """A config file that does not validate; the message names the file, the key path and why."""


class DeviceError(EdgeError):
    """A device answered, but refused the request (Modbus exception code, OPC UA bad status)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TransportError(EdgeError):
    """No usable answer: timeout, connection refused or lost, garbled frame."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
