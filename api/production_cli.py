"""`carbonwatch production import FILE.csv`: post a CSV file of manual production and driver entries to the API
(with an engineer's key, so the audit log names who entered them); prints each refused row with its line number."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from calc.entries import EntryError

KEY_ENV = "CARBONWATCH_API_KEY"


def _cmd_import(args: argparse.Namespace) -> int:
    import httpx

    key = args.key or os.environ.get(KEY_ENV)
    if not key:
        raise EntryError(f"no API key: give --key or set {KEY_ENV} (an engineer's key)")
    try:
        body = Path(args.file).read_bytes()
    except OSError as exc:
        raise EntryError(f"{args.file}: {exc.strerror or exc}") from exc
    params: dict[str, str] = {"take_good_rows": "true" if args.take_good_rows else "false"}
    if args.site:
        params["site"] = args.site
    try:
        resp = httpx.post(f"{args.api_url.rstrip('/')}/v1/variable-entries/import", content=body, params=params,
                          headers={"Authorization": f"Bearer {key}", "Content-Type": "text/csv"},
                          timeout=args.timeout_s)
    except httpx.HTTPError as exc:
        raise EntryError(f"{args.api_url}: {exc}") from exc
    try:
        doc = resp.json()
    except ValueError:
        doc = {}
    errors = doc.get("errors", []) if isinstance(doc, dict) else []
    for e in errors:
        print(f"{args.file}:{e['line']}: {e['reason']}", file=sys.stderr)
    if resp.status_code == 200:
        print(f"{args.file}: {len(doc['stored'])} entries stored (ids {', '.join(map(str, doc['stored']))})"
              + (f", {len(errors)} rows refused" if errors else ""))
        return 0
    if resp.status_code == 422 and errors:
        raise EntryError(f"{args.file}: {len(errors)} bad row(s), nothing stored (fix them, or --take-good-rows)")
    detail = doc.get("detail") if isinstance(doc, dict) else None
    raise EntryError(f"{args.file}: the API answered {resp.status_code}: {detail or resp.text[:500]}")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    production = sub.add_parser("production", help="manual production and driver entries (per shift or day)")
    production_sub = production.add_subparsers(dest="production_command", required=True)
    imp = production_sub.add_parser("import", help="enter a CSV file of entries: variable,start,end,value,unit[,note]")
    imp.add_argument("file", metavar="FILE.csv")
    imp.add_argument("--api-url", default="http://127.0.0.1:8000", help="the API (default http://127.0.0.1:8000)")
    imp.add_argument("--key", default=None, help=f"an engineer's API key (default: ${KEY_ENV})")
    imp.add_argument("--site", default=None, help="site id (default: the API's site)")
    imp.add_argument("--take-good-rows", action="store_true",
                     help="store the good rows of a file that has bad ones (default: store nothing from it)")
    imp.add_argument("--timeout-s", type=float, default=120.0, help="how long to wait for the API (s)")
    imp.set_defaults(func=_cmd_import)
