"""InfluxDB's v1 HTTP API as the store uses it: one client with the login in a header (Basic auth, or
`Authorization: Token` for 2.x/3.x), never in the URL; optional gzip bodies; InfluxQL queries; writes in
chunks with an outcome each, and the lines of a partial write settled one way or the other.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from typing import Any

import httpx

from ingest.config import InfluxStoreSettings
from ingest.store.base import StoreError
from ingest.store.influx_lines import chunks

CHUNK_LINES = 5000
CHUNK_BYTES = 4 << 20  # well under InfluxDB 1.x's default max-body-size (25 MB)
# 400s that are about the server's set-up, not the data: the store is not working as configured (retry later)
_NOT_DATA = ("database not found", "retention policy not found", "database is required", "authorization")
_DROPPED = re.compile(r"dropped=(\d+)\s*$")


def _error_text(resp: httpx.Response, limit: int = 500) -> str:
    try:
        return str(resp.json().get("error", resp.text))[:limit]
    except ValueError:
        return resp.text[:limit]


class InfluxApi:
    """/write and /query of one database; every failure to get an answer is a StoreError."""

    def __init__(self, settings: InfluxStoreSettings, transport: httpx.BaseTransport | None = None,
                 chunk_lines: int = CHUNK_LINES, chunk_bytes: int = CHUNK_BYTES) -> None:
        self.settings = settings
        self.chunk_lines, self.chunk_bytes = chunk_lines, chunk_bytes
        headers = {"Authorization": f"Token {settings.token}"} if settings.token else {}
        auth = httpx.BasicAuth(settings.username, settings.password or "") if settings.username else None
        self._params: dict[str, str] = {"db": settings.database}
        self._http = httpx.Client(base_url=settings.url, headers=headers, auth=auth, timeout=settings.timeout_s,
                                  transport=transport)

    def post(self, path: str, params: dict[str, str], content: bytes | None = None,
             data: dict[str, str] | None = None) -> httpx.Response:
        headers = {}
        if content is not None and self.settings.gzip:
            content = gzip.compress(content, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        try:
            resp = self._http.post(path, params={**self._params, **params}, content=content, data=data,
                                   headers=headers)
        except httpx.HTTPError as exc:
            raise StoreError(f"influxdb {self.settings.url}: {type(exc).__name__}: {exc}") from exc
        if resp.status_code >= 500 or resp.status_code in (401, 403, 404):
            raise StoreError(f"influxdb {self.settings.url}{path}: HTTP {resp.status_code}: {_error_text(resp)}")
        return resp

    def query(self, q: str) -> list[dict[str, Any]]:
        """Run InfluxQL; returns the `results` list (times as epoch microseconds)."""
        resp = self.post("/query", {"epoch": "u"}, data={"q": q})
        if resp.status_code != 200:
            raise StoreError(f"influxdb query refused: HTTP {resp.status_code}: {_error_text(resp)}")
        try:
            results: list[dict[str, Any]] = resp.json().get("results", [])
        except ValueError as exc:
            raise StoreError(f"influxdb query: not a JSON answer: {resp.text[:200]}") from exc
        for r in results:
            if "error" in r:
                raise StoreError(f"influxdb query error: {r['error']}")
        return results

    def send(self, lines: list[str]) -> tuple[int, str | None]:
        """One /write request: (status, None) when every line is stored, (status, InfluxDB's whole reason) when
        it refused some or all of them for their data (400, 413). Anything else: StoreError."""
        params = {"precision": "u"}
        if self.settings.retention_policy:
            params["rp"] = self.settings.retention_policy
        resp = self.post("/write", params, content="\n".join(lines).encode("utf-8", "backslashreplace"))
        if resp.status_code in (200, 204):
            return resp.status_code, None
        if resp.status_code in (400, 413):
            reason = _error_text(resp, 100_000) if resp.status_code == 400 else "request too large for the server"
            if any(s in reason for s in _NOT_DATA):
                raise StoreError(f"influxdb write: HTTP {resp.status_code}: {reason[:500]}")
            return resp.status_code, reason
        raise StoreError(f"influxdb write: HTTP {resp.status_code}: {_error_text(resp)}")

    def write_lines(self, lines: list[str]) -> Iterator[tuple[int, int, str | None]]:
        """Send lines in chunks, yielding [lo, hi) ranges as they are answered, each with None (stored) or
        InfluxDB's reason for refusing some or all of it. A 413 halves the chunk. Raises StoreError when the
        server is not working (the ranges yielded before are stored)."""
        todo = chunks(lines, self.chunk_lines, self.chunk_bytes)[::-1]
        while todo:
            lo, hi = todo.pop()
            status, reason = self.send(lines[lo:hi])
            if status == 413 and hi - lo > 1:
                mid = (lo + hi) // 2
                todo += [(mid, hi), (lo, mid)]
            else:
                yield lo, hi, reason

    def settle(self, lines: list[str]) -> list[str | None]:
        """Lines a partial write did not keep, sent again until each has a definite answer: None (stored) or
        the reason it is refused. Sending again is needed, not only asking: InfluxDB 1.x answers a write that
        spans shards as soon as one shard refuses, while the others may still be storing theirs. A request
        is definite when it is stored, holds one line, or every line of it was dropped ("dropped=N")."""
        out: list[str | None] = [None] * len(lines)
        todo = [(0, len(lines))]
        while todo:
            lo, hi = todo.pop()
            _, reason = self.send(lines[lo:hi])
            if reason is None:
                continue
            dropped = _DROPPED.search(reason)
            if hi - lo == 1 or (dropped is not None and int(dropped.group(1)) == hi - lo):
                out[lo:hi] = [reason] * (hi - lo)
            else:
                mid = (lo + hi) // 2
                todo += [(mid, hi), (lo, mid)]
        return out

    def close(self) -> None:
        self._http.close()
