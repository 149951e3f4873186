"""Manual entries from a CSV file (`variable,start,end,value,unit[,note]`, a header line first): every row is
checked before any is stored, each bad one named by its line number and reason; a file with a bad row stores
nothing unless the caller takes the good rows."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import BaseModel, Field, ValidationError

from api.errors import ApiError
from api.variable_entries import EntryDesk, EntryIn, iso
from calc.entries import EntryError

COLUMNS = ("variable", "start", "end", "value", "unit")
MAX_ROWS = 10_000


class RowError(BaseModel):
    line: int
    reason: str


class ImportOut(BaseModel):
    stored: list[int] = Field(description="ids of the entries stored")
    errors: list[RowError] = Field(description="each row refused: its line number (the header is line 1) and why")


class ImportRefused(ImportOut):
    detail: str


@dataclass
class Checked:
    good: list[tuple[int, str, EntryIn]] = field(default_factory=list)   # (line, variable, entry)
    errors: list[RowError] = field(default_factory=list)


def _reason(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())


def parse(desk: EntryDesk, site: str, text: str) -> Checked:
    """Every row checked as the API checks one entry, and against the file's earlier good rows."""
    checked = Checked()
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        _rows(desk, site, reader, checked)
    except csv.Error as exc:
        checked.errors.append(RowError(line=reader.line_num, reason=f"cannot be read as CSV: {exc}"))
    return checked


def _rows(desk: EntryDesk, site: str, reader: csv.DictReader[str], checked: Checked) -> None:
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or ())]
    if missing:
        checked.errors.append(RowError(line=1, reason=f"header: the columns {', '.join(missing)} are missing "
                                                      f"(expected {','.join(COLUMNS)}[,note])"))
        return
    taken: dict[str, list[tuple[int, datetime, datetime]]] = {}
    for row in reader:
        line = reader.line_num
        if len(checked.good) + len(checked.errors) >= MAX_ROWS:
            checked.errors.append(RowError(line=line, reason=f"more than {MAX_ROWS} rows: split the file"))
            break
        if None in row:
            checked.errors.append(RowError(line=line, reason="more fields than the header has"))
            continue
        variable_id = (row.get("variable") or "").strip()
        try:
            body = EntryIn.model_validate({"start": row.get("start"), "end": row.get("end"),
                                           "value": row.get("value"), "unit": (row.get("unit") or "").strip(),
                                           "note": row.get("note") or None})
            variable = desk.variable(variable_id)
            desk.check(variable, body)
        except ValidationError as exc:
            checked.errors.append(RowError(line=line, reason=_reason(exc)))
            continue
        except (EntryError, ApiError) as exc:
            checked.errors.append(RowError(line=line, reason=str(exc)))
            continue
        earlier = next((n for n, s, e in taken.get(variable_id, []) if s < body.end and body.start < e), None)
        if earlier is not None:
            checked.errors.append(RowError(line=line, reason=f"overlaps line {earlier} of this file "
                                                             f"({variable_id!r})"))
            continue
        rows = desk.entries.overlapping(site, variable_id, iso(body.start), iso(body.end))
        reason = desk.clash(site, variable, body.start, body.end, rows)
        if reason is not None:
            checked.errors.append(RowError(line=line, reason=reason))
            continue
        taken.setdefault(variable_id, []).append((line, body.start, body.end))
        checked.good.append((line, variable_id, body))


def import_csv(desk: EntryDesk, site: str, text: str, take_good_rows: bool, actor: str) -> tuple[bool, ImportOut]:
    """(stored?, what was stored and what was refused): nothing is stored from a file with a bad row unless
    `take_good_rows`; a row refused while storing (another request took its time meanwhile) joins the errors."""
    checked = parse(desk, site, text)
    if checked.errors and not take_good_rows:
        return False, ImportOut(stored=[], errors=checked.errors)
    stored: list[int] = []
    errors = list(checked.errors)
    for line, variable_id, body in checked.good:
        try:
            stored.append(desk.add(site, variable_id, body, actor))
        except ApiError as exc:
            errors.append(RowError(line=line, reason=str(exc)))
    return True, ImportOut(stored=stored, errors=sorted(errors, key=lambda e: e.line))
