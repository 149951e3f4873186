"""Ingest test fixtures: no ingest subprocess outlives its test, whatever the outcome."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.ingest import helpers


@pytest.fixture(autouse=True)
def _reap_ingest_processes() -> Iterator[None]:
    yield
    while helpers.RUNNING:
        proc = helpers.RUNNING.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
