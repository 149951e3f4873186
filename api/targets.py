"""Targets (ISO 50001 6.6) over records.targets: versioned documents with their audit rows (DocBook, shared with
measures), and a target's progress in a year: the boundary's kg CO2e so far, the year projected to its end as the
allowance projection makes it (api.projection), and the trajectory and milestone check of calc.targets."""

from __future__ import annotations

import html
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field

from api.errors import Invalid, NotFound
from api.projection import API_BURN_WINDOW, expected_profile, hourly_history, in_boundary, project_allowance
from api.settings import Settings
from api.versions import next_version
from calc.balance import TimeRange
from calc.errors import CalcError
from calc.targets import Milestone, TargetKind, allowed_in, progress
from ingest.store.base import StoreReader
from records.db import ApiDb
from records.targets import StoredDoc, TargetDoc, Targets, VersionedDocs


class DocBook:
    """A site's versioned documents of one kind (target, measure); each change written with its audit row."""

    def __init__(self, db: ApiDb, repo: VersionedDocs, kind: Literal["target", "measure", "nonconformity"]) -> None:
        self.db = db
        self.repo = repo
        self.kind = kind

    def current(self, site: str, include_retired: bool = False) -> list[StoredDoc]:
        return [d for d in self.repo.current(site) if include_retired or d.active]

    def versions(self, site: str, doc_id: str) -> list[StoredDoc]:
        found = self.repo.versions(site, doc_id)
        if not found:
            raise NotFound(f"no {self.kind} {doc_id!r}")
        return found

    def save(self, site: str, doc_id: str, spec: BaseModel, actor: str, create: bool,
             active: bool = True, action: str | None = None) -> StoredDoc:
        """A new version (1 when new); earlier versions stay as they were."""
        with self.db.tx() as conn:
            owner, last = self.repo.latest(conn, doc_id)
            version = next_version(self.kind, doc_id, site, owner, last, create, "makes a new version")
            doc = StoredDoc(doc_id, version, site, spec.model_dump_json(), active, self.db.now(), actor)
            self.repo.add(conn, doc)
            action = action or ("create" if version == 1 else ("retire" if not active else "update"))
            self.db.audit(conn, site, actor, action, self.kind, doc_id,
                          {"version": version, "active": active, "spec": spec.model_dump(mode="json")})
        return doc

    def retire(self, site: str, doc_id: str, spec: BaseModel, actor: str) -> StoredDoc:
        if not self.versions(site, doc_id)[-1].active:
            raise NotFound(f"{self.kind} {doc_id!r} is retired")
        return self.save(site, doc_id, spec, actor, create=False, active=False)


def target_book(db: ApiDb) -> DocBook:
    return DocBook(db, Targets(db), "target")


class ProgressOut(BaseModel):
    year: int
    start: datetime
    end: datetime
    until: datetime = Field(description="figures up to here (now, or the year's end)")
    unit: str = Field(description="kg (CO2e per year) or kg/<production unit> (intensity)")
    allowed: float = Field(description="the trajectory's figure for the year")
    actual_to_date: float = Field(description="the year so far (intensity: kg CO2e / production so far)")
    projected: float = Field(description="the whole year projected (intensity: the ratio so far)")
    projection_method: str = Field(description="hour_of_week_profile, burn_rate, complete (the year is over) "
                                   "or ratio (intensity)")
    reduction_pct: float = Field(description="100 × (base − projected) / base")
    required_pct: float = Field(description="100 × (base − allowed) / base")
    on_track: bool
    gap: float = Field(description="projected − allowed (positive: above the path)")
    next_milestone: Milestone | None
    next_allowed: float | None
    projected_at_next: float | None = Field(description="the line from the base year through this year's "
                                            "projection, carried to the next milestone's year")
    misses_next: bool


@dataclass(frozen=True, slots=True)
class YearFigures:
    actual: float
    projected: float
    method: str
    unit: str


def year_bounds(year: int, tz: str) -> tuple[datetime, datetime]:
    zone = ZoneInfo(tz)
    return datetime(year, 1, 1, tzinfo=zone), datetime(year + 1, 1, 1, tzinfo=zone)


def _recent(history: StoreReader, site: str, doc: TargetDoc, start: datetime,
            upto: datetime) -> list[tuple[datetime, float]]:
    hourly: dict[datetime, float] = defaultdict(float)
    lo = max(start, upto - API_BURN_WINDOW)
    if upto > lo:
        for p in history.series(site, lo, upto, "1h", "UTC"):
            if in_boundary(p, doc.scope, doc.target):
                hourly[p.start + timedelta(hours=1)] += p.co2e_kg
    return [(min(ts, upto), kg) for ts, kg in hourly.items()]


def year_figures(settings: Settings, store: StoreReader, site: str, doc: TargetDoc, allowed: float,
                 start: datetime, end: datetime, upto: datetime) -> YearFigures:
    """The year's figure so far and projected to its end, in the target's unit."""
    totals = store.totals(site, start, upto) if upto > start else []
    kg = sum(t.co2e_kg for t in totals if in_boundary(t, doc.scope, doc.target))
    if doc.kind is TargetKind.INTENSITY:
        made = [v for v in (store.variable_totals(site, start, upto) if upto > start else [])
                if v.variable == doc.production_variable]
        product = sum(v.total or 0.0 for v in made)
        if product <= 0:
            raise Invalid(("query", "year"), f"no production of {doc.production_variable!r} stored in the year "
                          "so far: an intensity needs some")
        unit = f"kg/{made[0].unit}"
        return YearFigures(kg / product, kg / product, "ratio", unit)
    if upto >= end:
        return YearFigures(kg, kg, "complete", "kg")
    tz = settings.plant.site.timezone
    profile = expected_profile(hourly_history(store, site, upto, doc.scope, doc.target), tz)
    recent = _recent(store, site, doc, start, upto) if profile is None else []
    made_p = project_allowance(kg, allowed, upto, TimeRange(start=start, end=end), profile, recent, API_BURN_WINDOW)
    return YearFigures(kg, made_p.check.projection.projected_kg, made_p.method.value, "kg")


def target_progress(settings: Settings, store: StoreReader, site: str, doc: TargetDoc, now: datetime,
                    year: int | None = None) -> ProgressOut:
    """Progress of `year` (default: this year in the site's time zone) against the target's trajectory."""
    tz = settings.plant.site.timezone
    year = year or now.astimezone(ZoneInfo(tz)).year
    start, end = year_bounds(year, tz)
    if start >= now:
        raise Invalid(("query", "year"), f"{year} has not begun")
    spec = doc.trajectory_spec()
    allowed = allowed_in(spec, year)
    upto = min(now, end)
    fig = year_figures(settings, store, site, doc, allowed, start, end, upto)
    p = progress(spec, year, fig.actual, fig.projected)
    return ProgressOut(year=year, start=start, end=end, until=upto, unit=fig.unit, allowed=p.allowed,
                       actual_to_date=p.actual_to_date, projected=p.projected, projection_method=fig.method,
                       reduction_pct=p.reduction_pct, required_pct=p.required_pct, on_track=p.on_track, gap=p.gap,
                       next_milestone=p.next_milestone, next_allowed=p.next_allowed,
                       projected_at_next=p.projected_at_next, misses_next=p.misses_next)


class ReportTarget(BaseModel):
    """A target in force as the period report shows it: its progress in the year of the period's end, up to the
    report's making (or the reason there is none)."""

    id: str
    version: int
    title: str
    owner: str
    kind: TargetKind
    progress: ProgressOut | None
    refused: str | None = None


def report_targets(settings: Settings, store: StoreReader, db: ApiDb, site: str, period_end: datetime,
                   now: datetime) -> list[ReportTarget]:
    """Every target in force with its progress in the year that holds the period's last instant."""
    year = (min(period_end, now) - timedelta(microseconds=1)).astimezone(ZoneInfo(settings.plant.site.timezone)).year
    out = []
    for d in target_book(db).current(site):
        doc = TargetDoc.model_validate_json(d.spec)
        try:
            p, why = target_progress(settings, store, site, doc, now, year), None
        except (Invalid, CalcError) as exc:
            p, why = None, str(exc)
        out.append(ReportTarget(id=d.id, version=d.version, title=doc.title, owner=doc.owner, kind=doc.kind,
                                progress=p, refused=why))
    return out


def report_targets_csv(items: list[ReportTarget]) -> list[list[str]]:
    rows = []
    for t in items:
        p = t.progress
        if p is None:
            rows.append(["target_refused", f"{t.id} v{t.version}", "", "", "", "", t.refused or ""])
            continue
        note = f"{p.year}; {'on track' if p.on_track else 'off track'}"
        note += "; misses the next milestone" if p.misses_next else ""
        rows.append(["target_allowed", f"{t.id} v{t.version}", "", p.unit, repr(p.allowed), "", note])
        rows.append(["target_projected", f"{t.id} v{t.version}", "", p.unit, repr(p.projected), "",
                     p.projection_method])
        rows.append(["target_to_date", f"{t.id} v{t.version}", "", p.unit, repr(p.actual_to_date), "", ""])
    return rows


def report_targets_html(items: list[ReportTarget]) -> str:
    e = html.escape

    def line(t: ReportTarget) -> str:
        p = t.progress
        if p is None:
            return f"<tr><th>{e(t.title)}</th><td>no progress: {e(t.refused or '')}</td></tr>"
        return (f"<tr><th>{e(t.title)} ({e(t.owner)})</th><td>{p.year}: allowed {p.allowed:,.3f} {e(p.unit)}, "
                f"to date {p.actual_to_date:,.3f}, projected {p.projected:,.3f} ({e(p.projection_method)}); "
                f"reduction {p.reduction_pct:.1f} % of {p.required_pct:.1f} % required; "
                f"{'on track' if p.on_track else 'off track'}"
                f"{'; the next milestone is missed' if p.misses_next else ''}</td></tr>")

    body = "".join(line(t) for t in items) if items else "<tr><td>no target set</td></tr>"
    return f"<h2>Targets (ISO 50001 6.6)</h2><table>{body}</table>"
