"""The agent's command runs on uvloop's event loop when uvloop is installed (a dependency on Linux), and the
agent's parts that lean on the loop (a protocol, a thread hop, a reader callback) work on it."""

from __future__ import annotations

import asyncio
import socket
from concurrent.futures import ThreadPoolExecutor

import pytest

from edge.cli import _runner


def test_the_agent_runs_on_uvloop_with_what_it_uses() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def main() -> tuple[bool, int, bytes]:
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(max_workers=1) as pool:  # the spool's SQLite thread
            from_thread = await loop.run_in_executor(pool, sum, [1, 2, 3])
        a, b = socket.socketpair()  # paho's socket is driven by add_reader/add_writer
        got: asyncio.Future[bytes] = loop.create_future()
        loop.add_reader(a.fileno(), lambda: got.set_result(a.recv(16)))
        b.send(b"ping")
        data = await asyncio.wait_for(got, 5)
        loop.remove_reader(a.fileno())
        a.close()
        b.close()
        return isinstance(loop, uvloop.Loop), from_thread, data

    with _runner() as runner:
        assert runner.run(main()) == (True, 6, b"ping")
