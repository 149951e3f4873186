"""Manual production and driver entries: the request and response models and the desk that checks, stores (with
its audit row), voids and sends them; ingest counts them from the broker like any reading (calc.entries).

An entry is refused, with the reason, when its interval is not whole quarter hours, lies in the future or before
the plant's start, overlaps another entry of the variable that is not voided, or overlaps readings in the store
that no entry made (a live counter); a value whose unit does not convert to the variable's is refused too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from api.entry_sender import Send
from api.errors import Conflict, Invalid, NotFound
from api.settings import Settings
from calc import topics
from calc.entries import MAX_SLOT, Entry, EntryError, check_interval, message, overlap_quarters, to_variable_unit
from calc.plant import Variable
from calc.schema import UNIT_MAX, encode
from ingest.store.base import StoreReader
from records.db import ApiDb
from records.variable_entries import VariableEntries


class EntryIn(BaseModel):
    """What was produced (a counter: pieces, t, m²) or what a driver was (a gauge: the mean, e.g. °C) over
    [start, end), whole quarter hours (a shift or a day), in any unit that converts to the variable's."""

    model_config = ConfigDict(extra="forbid")

    start: AwareDatetime = Field(examples=["2026-12-03T06:00:00+08:00"])
    end: AwareDatetime = Field(examples=["2026-12-03T14:00:00+08:00"])
    value: float = Field(allow_inf_nan=False, examples=[4200.0])
    unit: str = Field(min_length=1, max_length=UNIT_MAX, examples=["piece", "t", "degC"])
    note: str | None = Field(default=None, max_length=1000, examples=["early shift, press line 1"])


class EntryOut(BaseModel):
    id: int
    site: str
    variable: str
    start: datetime
    end: datetime
    value: float = Field(description="as entered, in `unit`")
    unit: str
    amount: float = Field(description="in the variable's unit: a counter's amount over the interval, a gauge's mean")
    amount_unit: str
    note: str | None
    created_at: str
    created_by: str
    voided: bool
    voided_at: str | None
    voided_by: str | None
    void_reason: str | None
    sent: bool = Field(description="the broker has the entry's (or its void's) latest message; ingest counts it")
    sent_at: str | None
    send_error: str | None = Field(description="why the latest send failed (POST .../send tries again)")


def out(d: dict[str, Any]) -> EntryOut:
    return EntryOut(id=d["id"], site=d["site"], variable=d["variable"], start=datetime.fromisoformat(d["start_ts"]),
                    end=datetime.fromisoformat(d["end_ts"]), value=d["value"], unit=d["unit"], amount=d["amount"],
                    amount_unit=d["amount_unit"], note=d["note"], created_at=d["created_at"],
                    created_by=d["created_by"], voided=d["voided"], voided_at=d["voided_at"],
                    voided_by=d["voided_by"], void_reason=d["void_reason"], sent=d["sent"], sent_at=d["sent_at"],
                    send_error=d["send_error"])


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat()


class Refused(Conflict):
    """An entry the stored state does not allow (an overlap), with the reason."""


class EntryDesk:
    """Adds, voids and sends a site's manual entries; every change in one transaction with its audit row."""

    def __init__(self, settings: Settings, db: ApiDb, store: StoreReader, send: Send, now: datetime) -> None:
        self.settings, self.db, self.store, self.send, self.now = settings, db, store, send, now
        self.entries = VariableEntries(db)

    def variable(self, variable_id: str) -> Variable:
        found = self.settings.plant.variables_by_id.get(variable_id)
        if found is None:
            raise NotFound(f"no variable {variable_id!r} (a [[variables]] entry of the plant file)")
        return found

    def check(self, variable: Variable, body: EntryIn) -> float:
        """The entry's amount in the variable's unit; EntryError (the reason) when its content cannot be used."""
        check_interval(body.start, body.end)
        if body.end > self.now:
            raise EntryError(f"end: {iso(body.end)} is in the future (now {iso(self.now)})")
        start = self.settings.plant.site.start
        if body.start < start:
            raise EntryError(f"start: {iso(body.start)} is before the plant's start {iso(start)}")
        return to_variable_unit(variable, body.value, body.unit)

    def clash(self, site: str, variable: Variable, start: datetime, end: datetime,
              rows: list[dict[str, Any]]) -> str | None:
        """Why [start, end) cannot take an entry: an unvoided entry over it, or readings in the store that no
        entry made (a live counter of the variable), else None. `rows`: the entries that overlap it."""
        for r in rows:
            if not r["voided"]:
                return (f"overlaps entry {r['id']} of {variable.id!r} over [{r['start_ts']}, {r['end_ts']}) "
                        f"(void it first to replace it)")
        found = [t for t in self.store.variable_totals(site, start, end) if t.variable == variable.id]
        stored = found[0].points if found else 0
        made = sum(overlap_quarters(datetime.fromisoformat(r["start_ts"]), datetime.fromisoformat(r["end_ts"]),
                                    start, end) * (2 if r["voided"] else 1) for r in rows)
        if stored > made:
            return (f"overlaps {stored - made} reading(s) of {variable.id!r} in the store over [{iso(start)}, "
                    f"{iso(end)}) that no manual entry made (a live counter counts this time already)")
        return None

    def add(self, site: str, variable_id: str, body: EntryIn, actor: str, where: tuple[str, ...] = ("body",),
            ) -> int:
        """Check and store one entry (audited), then send it; its id. Refusals: Invalid (content), Refused."""
        variable = self.variable(variable_id)
        try:
            amount = self.check(variable, body)
        except EntryError as exc:
            field = str(exc).split(":", 1)[0]
            raise Invalid((*where, field), str(exc)) from exc
        start, end = iso(body.start), iso(body.end)
        rows = self.entries.overlapping(site, variable.id, start, end)
        reason = self.clash(site, variable, body.start, body.end, rows)
        if reason is not None:
            raise Refused(reason)
        with self.db.tx() as conn:
            rows = VariableEntries.overlapping_in(conn, site, variable.id, start, end)
            if any(not r["voided"] for r in rows):   # another request took the time since the check above
                raise Refused(f"overlaps entry {next(r['id'] for r in rows if not r['voided'])} of {variable.id!r}")
            slot = max((r["slot"] for r in rows), default=-1) + 1
            if slot >= MAX_SLOT:
                raise Refused(f"{MAX_SLOT} entries were made over this time of {variable.id!r} already")
            now = self.db.now()
            new_id = VariableEntries.add(conn, (site, variable.id, start, end, body.value, body.unit, amount,
                                                variable.unit, slot, body.note, now, actor))
            self.db.audit(conn, site, actor, "add", "variable_entry", str(new_id),
                          {"variable": variable.id, "start": start, "end": end, "value": body.value,
                           "unit": body.unit, "amount": amount, "amount_unit": variable.unit, "note": body.note})
        self.deliver(site, new_id)
        return new_id

    def void(self, site: str, variable_id: str, entry_id: int, reason: str, actor: str) -> None:
        """Void an entry (audited) and send its void: ingest takes its amount out again."""
        self.get(site, variable_id, entry_id)
        with self.db.tx() as conn:
            d = self.get(site, variable_id, entry_id)
            if d["voided"]:
                raise Conflict(f"entry {entry_id} is void already")
            VariableEntries.void(conn, entry_id, self.db.now(), actor, reason)
            self.db.audit(conn, site, actor, "void", "variable_entry", str(entry_id), {"reason": reason})
        self.deliver(site, entry_id)

    def get(self, site: str, variable_id: str, entry_id: int) -> dict[str, Any]:
        d = self.entries.get(site, entry_id)
        if d is None or d["variable"] != variable_id:
            raise NotFound(f"no entry {entry_id} of variable {variable_id!r} on site {site!r}")
        return d

    def deliver(self, site: str, entry_id: int, resent_by: str | None = None) -> None:
        """Send the entry's message (its void's once voided: it carries the entry's samples too) and log the
        outcome (a re-send asked by `resent_by` is audited); the same message every time, so a re-send is a
        duplicate that ingest counts once."""
        d = self.entries.get(site, entry_id)
        if d is None:
            raise NotFound(f"no entry {entry_id} on site {site!r}")
        variable = self.variable(d["variable"])
        entry = Entry(entry_id, variable, datetime.fromisoformat(d["start_ts"]), datetime.fromisoformat(d["end_ts"]),
                      d["amount"], d["slot"])
        msg = message(entry, d["voided"])
        error = self.send(topics.reading(site, variable.area, variable.id), encode(msg))
        with self.db.tx() as conn:
            VariableEntries.sent(conn, entry_id, msg.seq, self.db.now(), error)
            if resent_by is not None:
                self.db.audit(conn, site, resent_by, "send", "variable_entry", str(entry_id),
                              {"seq": msg.seq, "error": error})
