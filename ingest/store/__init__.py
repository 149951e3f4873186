"""Stores behind one interface (embedded SQLite, InfluxDB); the API reads through `StoreReader`.

`open_reader(plant_data, base_dir)` is what the API calls; `open_store(settings, base_dir)` is what
ingest writes through.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ingest.config import InfluxStoreSettings, SqliteStoreSettings, store_settings
from ingest.store.base import StoreReader
from ingest.store.sqlite import SqliteStore
from ingest.store.sqlite_retention import Retention


def open_store(settings: SqliteStoreSettings | InfluxStoreSettings, base_dir: Path) -> Any:
    """The store named by [store], for writing and reading (relative paths against `base_dir`)."""
    if isinstance(settings, SqliteStoreSettings):
        path = Path(settings.path)
        return SqliteStore(path if path.is_absolute() else base_dir / path, synchronous=settings.synchronous.upper(),
                           retention=Retention(raw_days=settings.retention_days or None,
                                               minute_days=settings.minute_rollup_retention_days or None,
                                               deadletter_days=settings.deadletter_retention_days or None))
    from ingest.store.influx import InfluxStore

    return InfluxStore(settings)


def open_reader(plant_data: dict[str, Any], base_dir: Path) -> StoreReader:
    """The read side of the store configured in a parsed plant file's [store] table (used by the API)."""
    reader: StoreReader = open_store(store_settings(plant_data), base_dir)
    return reader
