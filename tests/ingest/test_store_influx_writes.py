"""The InfluxDB store's writes against a real influxd: per-chunk outcomes (a refused chunk, a partial write),
dead letters whatever their payload holds, logins in a header (seen by a real HTTP proxy and an influxd with
auth on), gzip bodies, and what an outage in the middle of a batch leaves."""

from __future__ import annotations

import gzip
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from calc import topics
from deploy.services import InfluxDB
from ingest.config import InfluxStoreSettings
from ingest.points import TS, Batch, DeadLetter, ts_to_us
from ingest.store.base import StoreDataError, StoreError
from ingest.store.influx import InfluxStore
from ingest.store.influx_lines import MAX_PAYLOAD_BYTES
from ingest.store.sqlite import SqliteStore
from tests.ingest.helpers import SITE, STORE_NOW_US, T0, counter_batch

pytestmark = pytest.mark.integration
HOUR_US = 3_600_000_000


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class RecordingProxy:
    """A real HTTP server in front of InfluxDB that records every request and forwards it, or answers it itself
    when `answer(path, n)` (n: how many requests to that path so far, from 1) returns a status."""

    def __init__(self, upstream: str, answer: Callable[[str, int], int | None] = lambda path, n: None) -> None:
        self.seen: list[Seen] = []
        counts: dict[str, int] = {}
        client = httpx.Client(base_url=upstream, timeout=10)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                proxy.seen.append(Seen("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                route = self.path.split("?")[0]
                counts[route] = counts.get(route, 0) + 1
                status = answer(route, counts[route])
                if status is not None:
                    reply, ctype = b'{"error":"answered by the test proxy"}', "application/json"
                else:
                    keep = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                    resp = client.post(self.path, content=body, headers=keep)
                    status, reply, ctype = resp.status_code, resp.content, resp.headers.get("content-type", "")
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="recording-proxy", daemon=True)
        self.thread.start()
        self._client = client

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)
        self._client.close()


@pytest.fixture
def database() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


def influx_query(url: str, q: str, db: str = "", auth: tuple[str, str] | None = None) -> httpx.Response:
    resp = httpx.post(f"{url}/query", params={"db": db} if db else {}, data={"q": q}, auth=auth, timeout=10)
    assert resp.status_code == 200 and "error" not in resp.text, resp.text
    return resp


def store_for(url: str, database: str, **settings: object) -> InfluxStore:
    return InfluxStore(InfluxStoreSettings.model_validate({"kind": "influxdb", "url": url, "database": database,
                                                          **settings}), chunk_lines=50)


def one_hour_shards_with_traps(url: str, database: str, *traps_us: int) -> None:
    """A database whose shards are one hour long, where `value` is a string in the shards of `traps_us`: a
    point of ours there is refused (field type conflict), the others are not."""
    influx_query(url, f'CREATE DATABASE "{database}"')
    influx_query(url, f'CREATE RETENTION POLICY "h" ON "{database}" DURATION INF REPLICATION 1 SHARD DURATION 1h '
                      f"DEFAULT")
    body = "\n".join(f'points,site=elsewhere,meter=trap value="text" {t}' for t in traps_us)
    resp = httpx.post(f"{url}/write", params={"db": database, "precision": "u"}, content=body, timeout=10)
    assert resp.status_code == 204, resp.text


def test_chunks_refused_in_the_middle_refuse_their_own_points_and_the_rest_are_stored(influx_url: str,
                                                                                    database: str) -> None:
    t0 = ts_to_us(T0)
    one_hour_shards_with_traps(influx_url, database, t0 + HOUR_US + 1, t0 + 2 * HOUR_US + 1)
    store = store_for(influx_url, database)
    # 240 readings a minute apart from T0, in chunks of 50; hours 1 and 2 are refused. [0, 50) is stored;
    # [50, 100) keeps its 10 of hour 0 (a "partial write"); [100, 150) spans both refused hours (InfluxDB
    # answers for one of them: the rest is sent again until each line has an answer); [150, 200) keeps its 20
    # of hour 3; [200, 240) is stored.
    batch = counter_batch("m1", T0, 240, 60, kwh=0.5)
    result = store.write(batch)
    refused_hours = {t0 // HOUR_US + 1, t0 // HOUR_US + 2}
    kept = {(p[0], p[1], p[2]) for p in batch.points if p[TS] // HOUR_US not in refused_hours}
    assert (result.stored, result.duplicates, result.conflicts, result.dead_lettered) == (120, 0, 0, 120)
    assert result.new_keys == kept
    (total,) = store.totals(SITE, T0, T0 + timedelta(hours=4))
    assert (total.points, total.energy) == (120, 60.0)
    assert store.point_count() == 120  # (the traps hold text, which a count of numbers leaves out)
    dead = store.dead_letters(SITE, limit=1000)
    assert len(dead) == 120 and all("field type conflict" in d.reason for d in dead), dead[0].reason
    assert all(d.reason.startswith("influxdb refused the write: partial write") for d in dead)
    assert all(d.payload.count(b'"meter": "m1"') == 1 for d in dead)
    again = store.write(batch)  # the same batch again: 120 duplicates, the others refused again, none counted twice
    assert (again.stored, again.duplicates, again.dead_lettered) == (0, 120, 120)
    store.close()


def test_an_outage_in_the_middle_of_a_batch_is_a_store_error_and_the_retry_counts_every_point_once(
        influx_url: str, database: str) -> None:
    proxy = RecordingProxy(influx_url, answer=lambda path, n: 503 if path == "/write" and n == 2 else None)
    store = store_for(proxy.url, database)
    batch = counter_batch("m2", T0, 150, 60, kwh=2.0)
    try:
        with pytest.raises(StoreError, match="503"):
            store.write(batch)
        assert store.point_count() == 50  # the first chunk is stored: InfluxDB has no transactions
        result = store.write(batch)  # the worker retries the batch
        assert (result.stored, result.duplicates, result.new_keys) == (150, 0, None)
        assert store.write(batch).duplicates == 150  # from now on they are duplicates
        (total,) = store.totals(SITE, T0, T0 + timedelta(days=1))
        assert (total.points, total.energy) == (150, 300.0)
    finally:
        store.close()
        proxy.close()


PAYLOADS = [b"line one\nline two\r\n", b'say "hi" \\ back\\slash\\', b"\xff\xfe\x00\x01 not utf-8 \xc3", b"",
            bytes(range(256)) * 700, b"\n", b"x" * (3 * MAX_PAYLOAD_BYTES)]


def test_dead_letters_round_trip_whatever_their_payload_holds(influx_url: str, database: str,
                                                              tmp_path: Path) -> None:
    letters = [DeadLetter(STORE_NOW_US + i, topics.reading(SITE, "a1", "m1"), payload,
                          f'reason {i}: "quoted"\nsecond line \\ end', "m1", i, i)
               for i, payload in enumerate(PAYLOADS)]
    store, sqlite = store_for(influx_url, database), SqliteStore(tmp_path / "s.sqlite")
    for s in (store, sqlite):
        assert s.write(Batch(dead=letters)).dead_lettered == len(letters)
    got = {d.seq: d for d in store.dead_letters(SITE)}
    exact = {d.seq: d for d in sqlite.dead_letters(SITE)}
    assert sorted(got) == sorted(exact) == list(range(len(PAYLOADS)))
    for i, payload in enumerate(PAYLOADS[:-1]):
        assert got[i].payload == exact[i].payload == payload, i
        assert got[i].reason == f'reason {i}: "quoted"\\nsecond line \\ end'  # shown escaped in InfluxDB
        assert (got[i].meter, got[i].index, got[i].topic) == ("m1", i, exact[i].topic)
    big = got[len(PAYLOADS) - 1]
    assert big.payload == PAYLOADS[-1][:MAX_PAYLOAD_BYTES] and exact[len(PAYLOADS) - 1].payload == PAYLOADS[-1]
    assert f"the first {MAX_PAYLOAD_BYTES} of {3 * MAX_PAYLOAD_BYTES} bytes" in big.reason
    store.close()
    sqlite.close()


def test_dead_letters_influxdb_refuses_are_an_error_and_nothing_of_the_batch_is_stored(influx_url: str,
                                                                                       database: str) -> None:
    influx_query(influx_url, f'CREATE DATABASE "{database}"')
    resp = httpx.post(f"{influx_url}/write", params={"db": database, "precision": "u"},
                      content=f'deadletter,site=elsewhere seq="text" {STORE_NOW_US}', timeout=10)
    assert resp.status_code == 204
    store = store_for(influx_url, database)
    batch = counter_batch("m1", T0, 10, 60)
    batch.dead.append(DeadLetter(STORE_NOW_US, topics.reading(SITE, "a1", "m1"), b"{}", "bad", "m1", 7))
    with pytest.raises(StoreDataError, match="dead letter"):
        store.write(batch)
    assert store.point_count() == 0
    store.close()


class AuthInfluxDB(InfluxDB):
    """influxd with authentication on (deploy.services' set-up otherwise)."""

    def command(self) -> list[str]:
        args = super().command()
        conf = self.workdir / "influxdb.conf"
        conf.write_text(conf.read_text().replace("auth-enabled = false", "auth-enabled = true"))
        return args


@pytest.fixture
def auth_influxdb(tmp_path: Path) -> Iterator[InfluxDB]:
    server = AuthInfluxDB(tmp_path / "influxdb-auth")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_the_login_goes_in_a_header_never_in_the_url(auth_influxdb: InfluxDB, database: str) -> None:
    password = "s3cret p@ss:word"
    influx_query(auth_influxdb.url, f"CREATE USER \"ingest\" WITH PASSWORD '{password}' WITH ALL PRIVILEGES")
    proxy = RecordingProxy(auth_influxdb.url)
    store = store_for(proxy.url, database, username="ingest", password=password)
    wrong = store_for(proxy.url, database, username="ingest", password="wrong")
    try:
        assert store.write(counter_batch("m1", T0, 20, 60)).stored == 20
        assert store.totals(SITE, T0, T0 + timedelta(days=1))[0].points == 20
        with pytest.raises(StoreError, match="401"):
            wrong.totals(SITE, T0, T0 + timedelta(days=1))
        assert {s.path.split("?")[0] for s in proxy.seen} == {"/query", "/write"}
        for seen in proxy.seen:
            assert "s3cret" not in seen.path and "&u=" not in seen.path and "&p=" not in seen.path, seen.path
            assert seen.headers["authorization"].startswith("Basic ")
            assert b"s3cret" not in seen.body
    finally:
        store.close()
        wrong.close()
        proxy.close()


def test_a_token_goes_in_the_authorization_header(influx_url: str, database: str) -> None:
    proxy = RecordingProxy(influx_url)
    store = store_for(proxy.url, database, token="tok-123")
    try:
        store.write(counter_batch("m1", T0, 3, 60))
        assert proxy.seen and all(s.headers["authorization"] == "Token tok-123" for s in proxy.seen)
        assert all("tok-123" not in s.path for s in proxy.seen)
    finally:
        store.close()
        proxy.close()


@pytest.mark.parametrize("compress", [True, False])
def test_write_bodies_are_gzipped_when_configured(influx_url: str, database: str, compress: bool) -> None:
    proxy = RecordingProxy(influx_url)
    store = store_for(proxy.url, database, gzip=compress)
    try:
        assert store.write(counter_batch("m1", T0, 120, 60)).stored == 120
        writes = [s for s in proxy.seen if s.path.startswith("/write")]
        assert len(writes) == 3  # chunks of 50
        for w in writes:
            assert (w.headers.get("content-encoding") == "gzip") is compress
            text = gzip.decompress(w.body) if compress else w.body
            assert text.startswith(b"points,meter=m1,site=demo,")
        assert store.point_count() == 120
    finally:
        store.close()
        proxy.close()


def test_a_value_influxdb_cannot_take_is_refused_as_data_never_another_error(influx_url: str, database: str) -> None:
    store = store_for(influx_url, database)
    batch = counter_batch("m1", T0, 3, 60)
    batch.meters.clear()  # points of a meter the batch does not describe
    with pytest.raises(StoreDataError, match="KeyError"):
        store.write(batch)
    overflow = counter_batch("m1", T0, 3, 60)
    overflow.points[1] = [*overflow.points[1][:12], 2**64, None]  # seq beyond 64 bits
    result = store.write(overflow)  # InfluxDB cannot parse that one line: it alone is refused, as data
    assert (result.stored, result.dead_lettered) == (2, 1)
    (dead,) = store.dead_letters(SITE)
    assert dead.seq == 2**64 and "value out of" in dead.reason
    store.close()
