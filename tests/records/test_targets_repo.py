"""The versioned-document statements of targets and measures (built per table, so not module constants) compile
against the API database's real schema, and a document's versions read back in order, per site."""

from __future__ import annotations

from pathlib import Path

import pytest

from records.db import ApiDb
from records.meter_register import MeterRegister
from records.targets import StoredDoc, Table, VersionedDocs


@pytest.mark.parametrize("table", ["targets", "measures", "nonconformities"])
def test_statements_compile_and_versions_read_back(tmp_path: Path, table: str) -> None:
    db = ApiDb(tmp_path / "api.sqlite")
    for sql in Table(name=table).sql().values():  # type: ignore[arg-type]
        db.conn.execute(f"EXPLAIN {sql}", (None,) * sql.count("?"))
    repo = VersionedDocs(db, table)  # type: ignore[arg-type]
    with db.tx() as conn:
        assert repo.latest(conn, "x") == (None, None)
        for v in (1, 2):
            repo.add(conn, StoredDoc("x", v, "s1", f'{{"v": {v}}}', v == 1, "2026-01-01T00:00:00+00:00", "e"))
        repo.add(conn, StoredDoc("y", 1, "s2", "{}", True, "2026-01-01T00:00:00+00:00", "e"))
        assert repo.latest(conn, "x") == ("s1", 2)
    assert [(d.id, d.version, d.active) for d in repo.current("s1")] == [("x", 2, False)]
    assert [d.version for d in repo.versions("s1", "x")] == [1, 2]
    assert repo.versions("s2", "x") == []
    assert MeterRegister(db).history("s1") == {}
    db.close()
