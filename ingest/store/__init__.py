"""Stores behind one contract, `ingest.store.base.Store` (embedded SQLite, InfluxDB).

`open_store(settings, base_dir)` is what ingest writes through; `open_reader(plant_data, base_dir)` is what the
API and SCADA read through. Both return a `Store`: every backend implements all of it (writes, totals, series,
latest values, factor usage, dead letters, retention, held energy), so no caller probes for a method.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ingest.config import InfluxStoreSettings, SqliteStoreSettings, store_settings
from ingest.store.base import Store
from ingest.store.sqlite import SqliteStore
from ingest.store.sqlite_retention import Retention


def open_store(settings: SqliteStoreSettings | InfluxStoreSettings, base_dir: Path) -> Store:
    """The store named by [store], for writing and reading (relative paths against `base_dir`)."""
    store: Store
    if isinstance(settings, SqliteStoreSettings):
        path = Path(settings.path)
        store = SqliteStore(path if path.is_absolute() else base_dir / path, synchronous=settings.synchronous.upper(),
                            retention=Retention(raw_days=settings.retention_days or None,
                                                minute_days=settings.minute_rollup_retention_days or None,
                                                deadletter_days=settings.deadletter_retention_days or None))
        return store
    from ingest.store.influx import InfluxStore

    store = InfluxStore(settings)
    return store


def open_reader(plant_data: dict[str, Any], base_dir: Path) -> Store:
    """The store configured in a parsed plant file's [store] table (the API and SCADA read through it)."""
    return open_store(store_settings(plant_data), base_dir)
