"""`carbonwatch api`: serve the HTTP API; `carbonwatch api-key add`: create an API key (shown once)."""

from __future__ import annotations

import argparse
from pathlib import Path


def _cmd_api(args: argparse.Namespace) -> int:
    import uvicorn

    from api.main import create_app
    from api.settings import load_settings, load_sites
    from ingest.store import open_reader

    settings = load_settings(Path(args.config), Path.cwd(), args.mqtt_url)
    store = open_reader(settings.plant_data, settings.base_dir)
    # [api] sites: the organisation's other sites, each read from its own store
    sites = [(s, open_reader(s.plant_data, s.base_dir)) for s in load_sites(settings, Path(args.config))]
    app = create_app(settings, store, sites=sites)
    host = args.host or settings.api.host
    port = args.port if args.port is not None else settings.api.port
    uvicorn.run(app, host=host, port=port, log_level=args.log_level, timeout_graceful_shutdown=2)
    return 0


def _cmd_key_add(args: argparse.Namespace) -> int:
    from api.auth import write_key
    from api.settings import load_settings

    settings = load_settings(Path(args.config), Path.cwd())
    secret = write_key(settings.keys_path, args.name, args.role, tuple(args.site or ["*"]))
    print(secret)
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    api = sub.add_parser("api", help="serve the HTTP API")
    api.add_argument("--config", required=True, help="plant file (TOML)")
    api.add_argument("--host", default=None, help="listen address (default from [api], 127.0.0.1)")
    api.add_argument("--port", type=int, default=None, help="listen port (default from [api], 8000)")
    api.add_argument("--mqtt-url", default=None, help="broker for live evaluation (default from [mqtt], "
                     "empty = mqtt://127.0.0.1:1883)")
    api.add_argument("--log-level", default="warning")
    api.set_defaults(func=_cmd_api)

    key = sub.add_parser("api-key", help="manage API keys")
    key_sub = key.add_subparsers(dest="key_command", required=True)
    add = key_sub.add_parser("add", help="create a key; prints the secret once (only its hash is stored)")
    add.add_argument("--config", required=True, help="plant file (TOML)")
    add.add_argument("--name", required=True)
    add.add_argument("--role", choices=["viewer", "engineer", "admin"], required=True)
    add.add_argument("--site", action="append", help="site the key may see (repeat; default all)")
    add.set_defaults(func=_cmd_key_add)
