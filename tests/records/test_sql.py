"""Every SQL statement of the records layer against the API database's real schema, and the one "not voided"
condition."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest

import records
from records.alerts import page_sql
from records.db import ApiDb
from records.ledger import entries_sql, entry_sql, not_voided

STATEMENTS = ("SELECT", "INSERT", "UPDATE", "DELETE")


def statements() -> dict[str, str]:
    """Every upper-case string constant of every records module that is an SQL statement, by module.NAME."""
    out: dict[str, str] = {}
    for info in pkgutil.iter_modules(records.__path__):
        module = importlib.import_module(f"records.{info.name}")
        for name, value in vars(module).items():
            if name.isupper() and isinstance(value, str) and value.lstrip().startswith(STATEMENTS):
                out[f"{info.name}.{name}"] = value
    return out


def test_every_records_query_compiles_against_the_api_schema(tmp_path: Path) -> None:
    db = ApiDb(tmp_path / "api.sqlite")
    queries = statements()
    assert {"ledger.OFFSETS_KG", "ledger.ALLOWANCE_AT", "instruments.ACTIVE", "ledger.IS_VOIDED", "alerts.OPEN",
            "rules.CURRENT", "audit.PAGE", "factor_sets.INSERT", "keys.REVOKED", "notifications.INSERT"} <= set(queries)
    built = [entries_sql(t) for t in ("allowances", "offsets", "instruments")]
    built += [entry_sql(t) for t in ("allowances", "offsets", "instruments")]
    built += [page_sql(state, before) for state in (None, "firing") for before in (None, 7)]
    for name, sql in [*queries.items(), *((s, s) for s in built)]:
        params = (None,) * sql.count("?")
        assert db.query(f"EXPLAIN {sql}", params), name   # names an unknown table or column: raises
    db.close()


def test_not_voided_takes_only_ledger_entities() -> None:
    assert not_voided("offset") == "id NOT IN (SELECT entity_id FROM voids WHERE entity = 'offset')"
    with pytest.raises(ValueError, match="not a ledger entity"):
        not_voided("offset' OR 1=1 --")  # type: ignore[arg-type]
