"""The HTTP API (FastAPI): balances, meters, and later rules, alerts, offsets, reports and the dashboard."""
