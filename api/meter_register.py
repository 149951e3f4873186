"""The meter register (ISO 50001 7.1.4) over records.meter_register: entries and calibrations with their audit
rows, certificates' files kept by SHA-256, when a meter's calibration is overdue, and the hook that marks energy
measured while it was overdue as uncertain in balances and reports (per meter, and its share of the total)."""

from __future__ import annotations

import hashlib
import html
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field

from api.errors import NotFound
from ingest.store.base import StoreReader
from records.db import ApiDb
from records.meter_register import Certificate, MeterRegister, RegisterEntry, StoredEntry, StoredFile

if TYPE_CHECKING:
    from api.accounting import BalanceOut

FAR = datetime.max.replace(tzinfo=ZoneInfo("UTC"))


def overdue_from(due_on: date, tz: str) -> datetime:
    """A calibration due on a day is overdue from the start of the next day, in the site's time zone."""
    day = due_on + timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(tz))


def overdue_at(e: StoredEntry, now: datetime, tz: str) -> bool:
    due = e.entry.calibration_due_on
    return e.active and due is not None and now >= overdue_from(due, tz)


def overdue_intervals(versions: list[StoredEntry], tz: str) -> list[tuple[datetime, datetime]]:
    """[from, to) spans in which the meter's calibration was overdue: each version's due date holds until the
    next version; the first version's from its due date on (the meter was out of calibration before it was
    registered too), later ones from their own entry on. A new certificate or a later due date ends a span."""
    spans: list[tuple[datetime, datetime]] = []
    for i, v in enumerate(versions):
        until = datetime.fromisoformat(versions[i + 1].created_at) if i + 1 < len(versions) else FAR
        due = v.entry.calibration_due_on
        if not v.active or due is None:
            continue
        lo = overdue_from(due, tz) if i == 0 else max(overdue_from(due, tz), datetime.fromisoformat(v.created_at))
        if lo < until:
            spans.append((lo, until))
    return spans


@dataclass(frozen=True, slots=True)
class CertificateFile:
    filename: str
    content_type: str
    data: bytes


class RegisterBook:
    """The site's meter register; each change written with its audit row."""

    def __init__(self, db: ApiDb) -> None:
        self.db = db
        self.repo = MeterRegister(db)

    def current(self, site: str, include_removed: bool = False) -> list[StoredEntry]:
        return [e for e in self.repo.current(site) if include_removed or e.active]

    def versions(self, site: str, meter: str) -> list[StoredEntry]:
        found = self.repo.versions(site, meter)
        if not found:
            raise NotFound(f"meter {meter!r} is not in the register")
        return found

    def save(self, site: str, meter: str, entry: RegisterEntry, actor: str, active: bool = True,
             action: str | None = None, certificate: CertificateFile | None = None) -> StoredEntry:
        """A new version of the meter's entry; `calibrated` when its certificate differs from the last one's."""
        with self.db.tx() as conn:
            last = MeterRegister.latest(conn, site, meter)
            prev = self.repo.versions(site, meter)[-1] if last is not None else None
            now = self.db.now()
            if certificate is not None:
                MeterRegister.add_file(conn, site, StoredFile(
                    entry.certificate.sha256 if entry.certificate and entry.certificate.sha256 else "", meter,
                    certificate.filename, certificate.content_type, len(certificate.data), certificate.data, now,
                    actor))
            calibrated = entry.certificate is not None and (prev is None or prev.entry.certificate != entry.certificate)
            stored = StoredEntry(meter, (last or 0) + 1, site, entry, active, calibrated, now, actor)
            MeterRegister.add(conn, stored)
            act = action or ("create" if last is None else ("remove" if not active else "update"))
            self.db.audit(conn, site, actor, act, "meter_register", meter,
                          {"version": stored.version, "active": active, "calibrated": calibrated,
                           "entry": entry.model_dump(mode="json")})
        return stored

    def calibrate(self, site: str, meter: str, calibrated_on: date, due_on: date, reference: str | None,
                  issuer: str | None, actor: str, file: CertificateFile | None = None) -> StoredEntry:
        """A new calibration: last calibrated, due date and certificate (a file kept by its SHA-256, and/or a
        reference) in a new version of the entry."""
        last = self.versions(site, meter)[-1]
        if not last.active:
            raise NotFound(f"meter {meter!r} was removed from the register")
        stored = {} if file is None else {"sha256": hashlib.sha256(file.data).hexdigest(), "filename": file.filename,
                                          "content_type": file.content_type, "size_bytes": len(file.data)}
        certificate = Certificate.model_validate({"reference": reference, "issuer": issuer, **stored})
        entry = RegisterEntry.model_validate({**last.entry.model_dump(), "last_calibrated_on": calibrated_on,
                                              "calibration_due_on": due_on,
                                              "certificate": certificate.model_dump()})
        return self.save(site, meter, entry, actor, action="calibrate", certificate=file)

    def certificate(self, site: str, sha256: str) -> StoredFile:
        found = self.repo.file(site, sha256)
        if found is None:
            raise NotFound(f"no certificate {sha256}")
        return found


class UncertainMeter(BaseModel):
    meter: str
    calibration_overdue: bool = Field(description="its calibration is overdue now")
    spans: list[tuple[datetime, datetime]] = Field(description="the parts of the period its calibration was "
                                                   "overdue, [from, to)")
    uncertain_energy: float
    energy_unit: str
    uncertain_co2e_kg: float


class Uncertainty(BaseModel):
    """Energy measured while a meter's calibration was overdue (ISO 50001 7.1.4): counted, but uncertain."""

    co2e_kg: float = Field(description="kg CO2e of the period measured by meters while overdue")
    share: float | None = Field(description="co2e_kg / the balance's co2e_kg (null when that is 0)")
    meters: list[UncertainMeter]


def uncertainty(db: ApiDb, store: StoreReader, tz: str, site: str, start: datetime, end: datetime,
                now: datetime, meters: set[str], total_co2e_kg: float) -> Uncertainty:
    """The uncertain energy of `meters` in [start, min(end, now)): per meter the overdue spans cut to the period
    and the meter's stored energy in them."""
    upto = min(end, now)
    found: list[UncertainMeter] = []
    for meter, versions in sorted(MeterRegister(db).history(site).items()):
        if meter not in meters:
            continue
        spans = [(max(a, start), min(b, upto)) for a, b in overdue_intervals(versions, tz)
                 if max(a, start) < min(b, upto)]
        overdue_now = overdue_at(versions[-1], now, tz)
        if not spans and not overdue_now:
            continue
        energy, kg, unit = 0.0, 0.0, ""
        for a, b in spans:
            for t in store.totals(site, a, b):
                if t.meter == meter:
                    energy, kg, unit = energy + t.energy, kg + t.co2e_kg, t.energy_unit
        found.append(UncertainMeter(meter=meter, calibration_overdue=overdue_now, spans=spans,
                                    uncertain_energy=energy, energy_unit=unit, uncertain_co2e_kg=kg))
    kg_total = sum(m.uncertain_co2e_kg for m in found)
    return Uncertainty(co2e_kg=kg_total, share=kg_total / total_co2e_kg if total_co2e_kg > 0 else None,
                       meters=found)


def with_uncertainty(db: ApiDb, store: StoreReader, tz: str, now: datetime, balance: BalanceOut) -> BalanceOut:
    """The balance with its uncertain energy: the totals' `uncertain`, and each meter's flag and kg."""
    u = uncertainty(db, store, tz, balance.site, balance.period.start, balance.period.end, now,
                    {m.meter for m in balance.meters}, balance.co2e_kg)
    by = {m.meter: m for m in u.meters}
    meters = [m.model_copy(update={"calibration_overdue": by[m.meter].calibration_overdue,
                                   "uncertain_co2e_kg": by[m.meter].uncertain_co2e_kg})
              if m.meter in by else m for m in balance.meters]
    return balance.model_copy(update={"uncertain": u, "meters": meters})


def uncertain_csv(balance: BalanceOut) -> list[list[str]]:
    """The report's CSV rows of uncertain energy (none when no meter was overdue in the period)."""
    u = balance.uncertain
    if u is None or not u.meters:
        return []
    rows = [["total", "uncertain", "", "", repr(u.co2e_kg), "", "" if u.share is None else repr(u.share)]]
    rows += [["meter_uncertain", m.meter, repr(m.uncertain_energy), m.energy_unit, repr(m.uncertain_co2e_kg), "",
              "calibration overdue now" if m.calibration_overdue else "calibration overdue in the period"]
             for m in u.meters]
    return rows


def uncertain_html(balance: BalanceOut) -> str:
    """The report's HTML section of uncertain energy (empty when no meter was overdue in the period)."""
    u = balance.uncertain
    if u is None or not u.meters:
        return ""
    share = "" if u.share is None else f" ({u.share:.1%} of the emissions)"
    items = "".join(
        f"<li>{html.escape(m.meter)}: {m.uncertain_energy:,.3f} {html.escape(m.energy_unit)}, "
        f"{m.uncertain_co2e_kg:,.3f} kg CO2e measured while its calibration was overdue"
        f"{' (still overdue)' if m.calibration_overdue else ''}</li>" for m in u.meters)
    return (f"<h2>Uncertain energy (meter calibration overdue, ISO 50001 7.1.4)</h2><p>{u.co2e_kg:,.3f} kg "
            f"CO2e{share}</p><ul>{items}</ul>")
