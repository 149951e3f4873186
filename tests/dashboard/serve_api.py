"""Run the API with the dashboard router included, as `carbonwatch api` does, for the dashboard tests
(until create_app includes `api.dashboard.router` itself; then this only avoids adding it twice)."""

from __future__ import annotations

import argparse
from pathlib import Path

from fastapi import FastAPI


def with_dashboard(app: FastAPI) -> FastAPI:
    import api.dashboard

    if not has_dashboard(app):
        app.include_router(api.dashboard.router)
    return app


def has_dashboard(app: FastAPI) -> bool:
    import api.dashboard

    # FastAPI 0.165 keeps an included router as one entry holding the original router
    return any(getattr(route, "original_router", None) is api.dashboard.router
               or getattr(route, "endpoint", None) is api.dashboard.index for route in app.routes)


def main() -> None:
    import uvicorn

    from api.main import create_app
    from api.settings import load_settings
    from ingest.store import open_reader

    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--mqtt-url", default=None)
    args = parser.parse_args()
    settings = load_settings(Path(args.config), Path.cwd(), args.mqtt_url)
    app = with_dashboard(create_app(settings, open_reader(settings.plant_data, settings.base_dir)))
    uvicorn.run(app, host=settings.api.host, port=settings.api.port, log_level="warning", timeout_graceful_shutdown=2)


if __name__ == "__main__":
    main()
