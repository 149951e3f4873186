"""`carbonwatch activity import FILE.csv`: post a CSV of activity entries to the API with a key (so the audit log
names the key's owner); prints each bad row with its line and reason. Exit 0 when stored, 1 when refused."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

TIMEOUT_S = 60.0


def _cmd_import(args: argparse.Namespace) -> int:
    import httpx

    key = args.key or os.environ.get("CARBONWATCH_API_KEY", "")
    if not key:
        print("carbonwatch activity import: give --key or set CARBONWATCH_API_KEY", file=sys.stderr)
        return 2
    path = Path(args.file)
    params: dict[str, str] = {"name": path.name, "take_good_rows": "true" if args.take_good_rows else "false"}
    if args.site:
        params["site"] = args.site
    try:
        resp = httpx.post(f"{args.api_url.rstrip('/')}/v1/activity/import", params=params, content=path.read_bytes(),
                          headers={"Authorization": f"Bearer {key}", "Content-Type": "text/csv"},
                          timeout=TIMEOUT_S)
    except httpx.HTTPError as exc:
        print(f"carbonwatch activity import: {args.api_url}: {exc}", file=sys.stderr)
        return 1
    if resp.status_code == 422:
        detail = resp.json().get("detail", [])
        for item in detail if isinstance(detail, list) else [{"msg": str(detail)}]:
            for part in str(item.get("msg", "")).split("; "):
                print(f"{path}: {part.removeprefix('Value error, ')}", file=sys.stderr)
        print(f"{path}: nothing stored (fix the rows, or --take-good-rows to store the good ones)", file=sys.stderr)
        return 1
    if resp.status_code != 200:
        print(f"carbonwatch activity import: HTTP {resp.status_code}: {resp.text[:500]}", file=sys.stderr)
        return 1
    body = resp.json()
    for err in body["errors"]:
        print(f"{path}: line {err['line']}: {err['reason']} (not stored)", file=sys.stderr)
    print(f"{path}: stored {len(body['stored'])} of {body['rows']} rows as entries "
          f"{', '.join(str(i) for i in body['stored'])} (evidence sha256 {body['evidence_sha256']})")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    act = sub.add_parser("activity", help="manual activity data (deliveries, bills, refrigerants, process, heat)")
    act_sub = act.add_subparsers(dest="activity_command", required=True)
    imp = act_sub.add_parser("import", help="post a CSV of entries to the API (an engineer's key)")
    imp.add_argument("file", help="CSV: kind,start,end,quantity,unit,carrier,... (see docs/calculations.md)")
    imp.add_argument("--api-url", default="http://127.0.0.1:8000", help="the API (default http://127.0.0.1:8000)")
    imp.add_argument("--key", default=None, help="API key (default: $CARBONWATCH_API_KEY)")
    imp.add_argument("--site", default=None, help="site id (default: the API's)")
    imp.add_argument("--take-good-rows", action="store_true", help="store the good rows of a file with bad ones")
    imp.set_defaults(func=_cmd_import)
