"""Ingest: subscribes to readings, validates them, converts to CO2e and stores them exactly once."""
