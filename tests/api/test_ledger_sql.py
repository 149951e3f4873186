"""The one ledger SQL (calc/ledger_sql.py) against the API database's real schema."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.db import ApiDb
from calc import ledger_sql


def test_every_ledger_query_compiles_against_the_api_schema(tmp_path: Path) -> None:
    db = ApiDb(tmp_path / "api.sqlite")
    queries = {name: sql for name, sql in vars(ledger_sql).items() if name.isupper() and isinstance(sql, str)}
    assert {"OFFSETS_KG", "ALLOWANCE_AT", "INSTRUMENTS", "IS_VOIDED"} <= set(queries)
    for name, sql in queries.items():
        params = (None,) * sql.count("?")
        assert db.query(f"EXPLAIN {sql}", params), name   # names an unknown table or column: raises
    db.close()


def test_not_voided_takes_only_ledger_entities() -> None:
    assert ledger_sql.not_voided("offset") == "id NOT IN (SELECT entity_id FROM voids WHERE entity = 'offset')"
    with pytest.raises(ValueError, match="not a ledger entity"):
        ledger_sql.not_voided("offset' OR 1=1 --")  # type: ignore[arg-type]
