"""Stores behind one interface (embedded SQLite, InfluxDB); the API reads through `StoreReader`."""
