"""The layers hold: SQL (statement text or a cursor's execute) is written only in the layers that own a database
file (records/ for the API database, ingest/store/ for the store, the edge's spool, ingest's buffer), never in a
route or service module; records/ imports no service, so the API and SCADA can both read through it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("calc", "link", "plantfile", "edge", "ingest", "api", "records", "simulators", "scada", "deploy")
# the modules that own a database file and so write its SQL
SQL_OWNERS = ("records/", "ingest/store/", "edge/spool.py", "ingest/buffer.py")
SERVICES = ("edge", "ingest", "api", "scada", "simulators", "deploy")
SQL = re.compile(r"^\s*(SELECT\s.+\sFROM\s|INSERT\s+INTO\s|UPDATE\s+\w+\s+SET\s|DELETE\s+FROM\s|"
                 r"CREATE\s+(TABLE|INDEX|TRIGGER|VIEW)\s|ALTER\s+TABLE\s|DROP\s+(TABLE|INDEX)\s|PRAGMA\s)", re.S)
EXECUTE = frozenset({"execute", "executemany", "executescript"})


def sql_in(source: str) -> list[str]:
    """Where SQL is written in one module's source: `line: what`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in EXECUTE:
            found.append(f"{node.lineno}: .{node.func.attr}(")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.match(node.value):
            found.append(f"{node.lineno}: {node.value.strip()[:40]!r}")
    return found


def modules() -> list[tuple[str, Path]]:
    return [(p.relative_to(ROOT).as_posix(), p) for folder in SOURCES for p in sorted((ROOT / folder).rglob("*.py"))]


def test_the_scan_finds_sql() -> None:
    """The check below can fail: each way of writing SQL in a module is found."""
    assert sql_in('db.query("SELECT * FROM rules WHERE site = ?", (site,))') == [
        "1: 'SELECT * FROM rules WHERE site = ?'"]
    assert sql_in('q = f"UPDATE alerts SET state = {s!r}"') == ["1: 'UPDATE alerts SET state ='"]
    assert sql_in("conn.execute(q)") == ["1: .execute("]
    assert sql_in('"""Rules: select from the newest version, then update the alert."""') == []


def test_sql_is_written_only_where_a_database_is_owned() -> None:
    offenders = {name: found for name, path in modules() if not name.startswith(SQL_OWNERS)
                 for found in [sql_in(path.read_text(encoding="utf-8"))] if found}
    assert offenders == {}, "SQL outside records/ (API database) or ingest/store/: move it into a repository"


def imported(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


@pytest.mark.parametrize(("folder", "forbidden"), [
    ("records", set(SERVICES) - {"ingest"}),   # records may use ingest.store's migration runner, no service
    ("scada", {"api"}),
    ("api", {"scada"}),
])
def test_records_is_neutral_and_services_do_not_import_each_other(folder: str, forbidden: set[str]) -> None:
    for path in sorted((ROOT / folder).rglob("*.py")):
        assert not imported(path) & forbidden, path.relative_to(ROOT).as_posix()
