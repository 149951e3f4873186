"""The root of every error ingest raises on purpose (`IngestError`) and its configuration family.

The other families stay next to the code that raises them, each also keeping the built-in base its callers
catch: `StoreError`, `StoreDataError`, `SeriesError`, `HeldError` (ingest/store/base.py), `SchemaError`
(ingest/store/sqlite_migrations.py), `DiskBufferError` (ingest/buffer.py) and `MqttError` (ingest/mqtt.py).
`deploy/exit_codes.py` maps the root and `ConfigError` to exit codes.
"""

from __future__ import annotations


class IngestError(Exception):
    """Root of every error ingest (and its store) raises on purpose."""


class ConfigError(IngestError, ValueError):
    """A plant file whose ingest sections do not validate; the message names the file, key path and why."""
