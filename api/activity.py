"""Manual activity entries in the API: the request models, the desk that adds (with evidence stored by its SHA-256)
and voids them with their audit rows, and the CSV import that refuses a file with bad rows unless told to take the
good ones. What entries add to balances and history is in api.activity_counts."""

from __future__ import annotations

import base64
import binascii
import csv
import hashlib
import io
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.errors import Conflict, Invalid, NotFound
from api.settings import Settings
from calc.activity import ActivityError, ActivityResult, Entry, evaluate, span
from calc.factors import FactorSet, default_factor_set
from calc.plant_factors import PlantFactors, plant_factors
from records.activity import ActivityLog
from records.db import ApiDb

MAX_EVIDENCE_BYTES = 5_000_000
MAX_IMPORT_ROWS = 5_000
SITE_WIDE = "site"  # the area of an entry that names none


class EvidenceFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, pattern=r"^[^/\\]+$", examples=["delivery-note-4711.pdf"])
    content_base64: str = Field(min_length=1, max_length=MAX_EVIDENCE_BYTES * 4 // 3 + 4)


class ActivityIn(Entry):
    """An entry with where it belongs and its proof: a reference, a file, or both."""

    area: str | None = Field(default=None, max_length=128, description="plant area (default: the covered meters' "
                             "area, else site-wide)")
    unmetered: bool = Field(default=False, description="bill: it covers energy no live meter of the plant measures "
                            "(count it); a bill of a carrier the plant meters needs this or `meters`")
    evidence: str | None = Field(default=None, max_length=1000, examples=["delivery note DN-2026-4711"])
    evidence_file: EvidenceFile | None = None
    note: str | None = Field(default=None, max_length=1000)

    def entry(self) -> Entry:
        return Entry.model_validate(self.model_dump(include=set(Entry.model_fields)))


class Void(BaseModel):
    reason: str = Field(min_length=1, max_length=1000, examples=["entered twice by mistake"])


class RowError(BaseModel):
    line: int = Field(description="line of the CSV file (the header is line 1)")
    reason: str


class ImportOut(BaseModel):
    stored: list[int] = Field(description="ids of the entries stored (none when the file had errors and "
                              "take_good_rows was not asked)")
    errors: list[RowError]
    rows: int
    evidence_sha256: str


def _plant_factors(settings: Settings) -> PlantFactors:
    return plant_factors(default_factor_set(), settings.plant, settings.plant_data)


def site_factors(settings: Settings) -> FactorSet:
    """The site's factor set (the plant file's factors and GWP assessment over the shipped set)."""
    return _plant_factors(settings).factors


def evidence_dir(settings: Settings) -> Path:
    """Where evidence files are kept: beside the API database, one file per SHA-256."""
    return settings.db_path.parent / "evidence"


def store_evidence(settings: Settings, content: bytes) -> str:
    """Keep a file under its SHA-256 (the same content is kept once); returns the hash."""
    digest = hashlib.sha256(content).hexdigest()
    folder = evidence_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / digest
    if not target.is_file() or hashlib.sha256(target.read_bytes()).hexdigest() != digest:  # new, or damaged
        tmp = folder / f".{digest}.part"
        tmp.write_bytes(content)
        tmp.replace(target)
    return digest


def _prepared(settings: Settings, body: ActivityIn) -> tuple[Entry, ActivityResult, str, bool]:
    """The entry with the plant's method, its result, its area and whether it counts; raises ValueError."""
    entry = body.entry()
    plant = settings.plant
    meters = plant.meters_by_id
    for m in entry.meters:
        if m not in meters:
            raise ValueError(f"meters: {m!r} is not a meter of this plant")
    if body.area is not None and body.area not in {m.area for m in meters.values()}:
        raise ValueError(f"area: {body.area!r} is not an area of this plant")
    live = sorted(m.id for m in meters.values() if m.carrier == entry.carrier)
    if entry.kind == "bill" and not entry.meters and live and not body.unmetered:
        raise ValueError(f"meters: this plant meters {entry.carrier} live ({', '.join(live[:10])}): name the meters "
                         f"the bill covers (it is then reconciled, not added), or set unmetered if it covers energy "
                         f"none of them measures")
    if body.unmetered and (entry.kind != "bill" or entry.meters):
        raise ValueError("unmetered: only for a bill that names no meters")
    if entry.carrier is not None and entry.method is None:
        entry = entry.model_copy(update={"method": _plant_factors(settings).method_for(entry.carrier)})
    try:
        result = evaluate(entry, site_factors(settings), plant.site.region)
    except ActivityError as exc:
        raise ValueError(str(exc)) from exc
    covered = {meters[m].area for m in entry.meters}
    area = body.area or (covered.pop() if len(covered) == 1 else SITE_WIDE)
    return entry, result, area, not entry.meters


class ActivityDesk:
    """Adds and voids activity entries, each change with its audit row; reads them with their void marks."""

    def __init__(self, db: ApiDb, settings: Settings) -> None:
        self.db, self.settings = db, settings
        self.log = ActivityLog(db)

    def add(self, site: str, body: ActivityIn, actor: str) -> int:
        try:
            entry, result, area, counted = _prepared(self.settings, body)
        except ValueError as exc:
            raise Invalid(("body",), str(exc)) from exc
        digest = name = None
        if body.evidence_file is not None:
            try:
                content = base64.b64decode(body.evidence_file.content_base64, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise Invalid(("body", "evidence_file", "content_base64"), f"not base64: {exc}") from exc
            if len(content) > MAX_EVIDENCE_BYTES:
                raise Invalid(("body", "evidence_file"), f"larger than {MAX_EVIDENCE_BYTES} bytes")
            digest, name = store_evidence(self.settings, content), body.evidence_file.name
        if digest is None and not (body.evidence or "").strip():
            raise Invalid(("body", "evidence"), "an entry needs its evidence: a reference, a file, or both")
        return self._insert([(entry, result, area, counted, body.evidence or f"file {name}", digest, name,
                              body.note)], site, actor)[0]

    def _insert(self, rows: list[tuple[Entry, ActivityResult, str, bool, str, str | None, str | None, str | None]],
                site: str, actor: str) -> list[int]:
        ids = []
        tz = self.settings.plant.site.timezone
        with self.db.tx() as conn:
            for entry, result, area, counted, evidence, digest, name, note in rows:
                start, end = span(entry, tz)
                doc = entry.model_dump(mode="json", exclude_none=True)
                new_id = ActivityLog.add(conn, (site, entry.kind, area, json.dumps(doc), result.model_dump_json(),
                                                start.isoformat(), end.isoformat(), int(counted), evidence, digest,
                                                name, note, self.db.now(), actor))
                self.db.audit(conn, site, actor, "create", "activity", str(new_id),
                              {"entry": doc, "area": area, "counted": counted, "co2e_kg": result.co2e_kg,
                               "factor_version": result.factor_version, "evidence": evidence,
                               "evidence_sha256": digest, "note": note})
                ids.append(new_id)
        return ids

    def void(self, site: str, entry_id: int, reason: str, actor: str) -> None:
        with self.db.tx() as conn:
            if not ActivityLog.exists(conn, site, entry_id):
                raise NotFound(f"no activity entry {entry_id}")
            if ActivityLog.is_voided(conn, entry_id):
                raise Conflict(f"activity entry {entry_id} is already void")
            ActivityLog.void(conn, entry_id, self.db.now(), actor, reason)
            self.db.audit(conn, site, actor, "void", "activity", str(entry_id), {"reason": reason})

    def get(self, site: str, entry_id: int) -> dict[str, Any]:
        doc = self.log.entry(site, entry_id)
        if doc is None:
            raise NotFound(f"no activity entry {entry_id}")
        return doc

    def import_csv(self, site: str, content: bytes, name: str, take_good_rows: bool, actor: str) -> ImportOut:
        """Every row checked; with any bad row nothing is stored unless `take_good_rows`. The file itself is kept
        as evidence (its SHA-256 in every entry it made)."""
        digest = hashlib.sha256(content).hexdigest()
        good, errors, rows = parse_rows(self.settings, content, name, digest)
        stored: list[int] = []
        if good and (not errors or take_good_rows):
            store_evidence(self.settings, content)
            stored = self._insert([(e, r, a, c, ev, digest, name, note) for e, r, a, c, ev, note in good], site,
                                  actor)
        return ImportOut(stored=stored, errors=errors, rows=rows, evidence_sha256=digest)


CSV_COLUMNS = ("kind", "start", "end", "quantity", "unit", "carrier", "method", "density", "pressure", "temperature",
               "gas", "material", "purity", "factor", "factor_source", "meters", "unmetered", "area", "evidence",
               "note")


def parse_rows(settings: Settings, content: bytes, name: str, digest: str,
               ) -> tuple[list[tuple[Entry, ActivityResult, str, bool, str, str | None]], list[RowError], int]:
    """The good rows (entry, result, area, counted, evidence, note), the bad ones by line, and the row count."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return [], [RowError(line=1, reason=f"not UTF-8 text: {exc}")], 0
    if "\x00" in text:
        return [], [RowError(line=text[:text.index("\x00")].count("\n") + 1, reason="not CSV: a NUL byte")], 0
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    try:
        header = reader.fieldnames
    except csv.Error as exc:
        return [], [RowError(line=1, reason=f"not CSV: {exc}")], 0
    unknown = [c for c in header or [] if c not in CSV_COLUMNS]
    if not header or unknown or not {"kind", "start", "quantity", "unit"} <= set(header):
        why = f"unknown columns {unknown}" if unknown else "the header needs kind, start, quantity and unit"
        return [], [RowError(line=1, reason=f"{why}; columns: {', '.join(CSV_COLUMNS)}")], 0
    good, errors, rows = [], [], 0
    while True:
        starts = reader.line_num + 1
        try:
            raw = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:   # e.g. an unterminated quote: the rest of the file cannot be read
            errors.append(RowError(line=starts, reason=f"not CSV: {exc}"))
            break
        rows += 1
        line = starts
        if rows > MAX_IMPORT_ROWS:
            errors.append(RowError(line=line, reason=f"more than {MAX_IMPORT_ROWS} rows: split the file"))
            break
        if None in raw:
            errors.append(RowError(line=line, reason="more values than columns"))
            continue
        fields: dict[str, Any] = {k: v.strip() for k, v in raw.items() if v is not None and v.strip() != ""}
        if "meters" in fields:
            fields["meters"] = tuple(m for m in fields["meters"].replace(";", " ").split() if m)
        evidence = fields.pop("evidence", None) or f"import {name} (sha256 {digest[:12]}) line {line}"
        try:
            body = ActivityIn.model_validate({**fields, "evidence": evidence})
            entry, result, area, counted = _prepared(settings, body)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            errors.append(RowError(line=line, reason=f"{where + ': ' if where else ''}{first['msg']}"))
            continue
        except ValueError as exc:
            errors.append(RowError(line=line, reason=str(exc)))
            continue
        good.append((entry, result, area, counted, evidence, body.note))
    return good, errors, rows
