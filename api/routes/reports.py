"""The period accounting report (clause 8.1.2 / 7.5): emissions by scope, carrier, area and meter, offsets, net
balance, allowance, data completeness, what is estimated and what is held, factor versions, and performance
against every baseline in force (actual vs expected, EnPI, CUSUM), as JSON, CSV or a printable HTML page. Its
figures come from the same accounting as /v1/balance and /v1/performance."""

from __future__ import annotations

import csv
import html
import io
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field

from api.accounting import BalanceOut, MeterBalance, build_balance
from api.deps import DbDep, HeldDep, HistoryDep, NowDep, SettingsDep, SiteQuery, StoreDep, Viewer, site_of
from api.flows import with_virtual_and_flows
from api.ledger import LedgerDesk
from api.live_rates import live_rates
from api.meter_register import uncertain_csv, uncertain_html
from api.nonconformities import OpenItem, open_items, open_items_csv, open_items_html
from api.report_flows import virtual_flows_csv, virtual_flows_html
from api.report_performance import HTML_ROWS_MAX, ReportPerformance, report_performance
from api.routes.balance import FromQuery, PeriodQuery, ToQuery, period_of
from api.routes.offsets import OffsetOut
from api.targets import ReportTarget, report_targets, report_targets_csv, report_targets_html

router = APIRouter(prefix="/v1", tags=["reports"])


class ReportOut(BaseModel):
    site: str
    site_name: str
    generated_at: datetime
    generated_by: str
    balance: BalanceOut
    offsets: list[OffsetOut]
    performance: list[ReportPerformance] = []
    targets: list[ReportTarget] = Field(default=[], description="targets in force: progress in the year of the "
                                        "period's end, up to the report's making (api.targets)")
    nonconformities: list[OpenItem] = Field(default=[], description="nonconformities not closed when the report "
                                            "was made (api.nonconformities)")


def _csv(report: ReportOut) -> str:
    b = report.balance
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["section", "name", "energy", "energy_unit", "co2e_kg", "energy_kgce", "kgce_version"])
    w.writerow(["total", "location_based", "", "", repr(b.co2e_kg)])
    w.writerow(["total", "kgce", "", "", "", repr(b.energy_kgce), b.kgce_method])
    w.writerow(["total", "market_based", "", "", repr(b.market_based.co2e_kg)])
    w.writerow(["total", "offsets", "", "", repr(b.offsets_kg)])
    w.writerow(["total", "net", "", "", repr(b.net_co2e_kg)])
    w.writerow(["total", "estimated", "", "", repr(b.estimated_co2e_kg)])
    w.writerow(["total", "held", "", "", repr(b.held_co2e_kg)])
    w.writerow(["total", "manual", "", "share", repr(b.manual_co2e_kg), "", repr(b.manual_share or 0.0)])
    for s in b.scopes:
        w.writerow(["scope", s.scope, "", "", repr(s.co2e_kg)])
    for c in b.carriers:
        w.writerow(["carrier", c.carrier, repr(c.energy), c.energy_unit, repr(c.co2e_kg), repr(c.energy_kgce),
                    " ".join(c.kgce_versions)])
        if c.factor_energy_unit != c.energy_unit:
            w.writerow(["carrier_factor_unit", c.carrier, repr(c.factor_energy), c.factor_energy_unit, ""])
        w.writerow(["carrier_estimated", c.carrier, repr(c.estimated_energy), c.energy_unit, repr(c.estimated_co2e_kg)])
        w.writerow(["carrier_held", c.carrier, repr(c.held_energy), c.energy_unit, repr(c.held_co2e_kg)])
    for a in b.areas:
        w.writerow(["area", a.area, "", "", repr(a.co2e_kg), repr(a.energy_kgce)])
    for r in b.reconciliations:
        w.writerow(["reconciliation", f"{r.entry_id} {' '.join(r.meters)}", repr(r.difference), r.unit, "", "",
                    f"billed {r.billed!r} metered {r.metered!r}"])
    for m in b.meters:
        w.writerow([m.source if m.source == "manual" else "meter", m.meter, repr(m.energy), m.energy_unit,
                    repr(m.co2e_kg),
                    repr(m.energy_kgce) if m.energy_kgce is not None else "", m.kgce_version or ""])
        w.writerow(["meter_estimated", m.meter, repr(m.estimated_energy), m.energy_unit, repr(m.estimated_co2e_kg)])
        w.writerow(["meter_held", m.meter, repr(m.held_energy), m.held_energy_unit or m.energy_unit,
                    repr(m.held_co2e_kg)])
    w.writerows(uncertain_csv(b))
    w.writerows(virtual_flows_csv(b))
    w.writerows(report_targets_csv(report.targets))
    w.writerows(open_items_csv(report.nonconformities))
    for i in b.intensity:
        # production in the energy columns; per unit figures in the kg columns
        w.writerow(["intensity", f"{i.level} {i.name}", repr(i.production), i.production_unit,
                    "" if i.co2e_kg_per_unit is None else repr(i.co2e_kg_per_unit),
                    "" if i.kgce_per_unit is None else repr(i.kgce_per_unit), i.refused or i.unit])
    for u in b.market_based.instruments:
        w.writerow(["instrument", f"{u.id} {u.kind}", repr(u.used_kwh), "kWh", ""])
    for o in report.offsets:
        w.writerow(["offset", f"{o.id} {o.kind} {o.serial or ''}".strip(), "", "", repr(o.quantity_kg)])
    if b.allowance is not None:
        w.writerow(["allowance", "allowance", "", "", repr(b.allowance.allowance_kg)])
        w.writerow(["allowance", "projected", "", "", repr(b.allowance.projected_kg)])
    for v in b.factor_versions:
        w.writerow(["factor_version", v, "", "", ""])
    for p in report.performance:
        name = f"{p.baseline} v{p.baseline_version}"
        if p.totals is None:
            w.writerow(["performance_refused", name, "", "", "", "", p.refused or ""])
            continue
        unit = p.units.get("energy", "")
        t = p.totals
        w.writerow(["performance_actual", name, repr(t.actual_energy), unit, repr(t.actual_co2e_kg)])
        w.writerow(["performance_expected", name, repr(t.expected_energy), unit, repr(t.expected_co2e_kg)])
        w.writerow(["performance_deviation", name, repr(t.deviation_energy), unit, repr(t.deviation_co2e_kg)])
        w.writerow(["performance_enpi", name, "" if t.enpi is None else repr(t.enpi), "1", ""])
        w.writerow(["performance_cusum_end", name, "" if p.cusum_end is None else repr(p.cusum_end), unit, ""])
    return out.getvalue()


def _performance_html(report: ReportOut) -> str:
    """One table per baseline in force: its totals, then per period actual, expected, EnPI and CUSUM."""
    e = html.escape
    parts = []
    for p in report.performance:
        title = f"<h3>{e(p.baseline)} v{p.baseline_version}: {e(p.subject)} ({e(p.carrier)}, {e(p.resolution)})</h3>"
        if p.totals is None or p.series is None:
            parts.append(f"{title}<p>Not shown for this period: {e(p.refused or '')}</p>")
            continue
        unit, t, s = e(p.units.get("energy", "")), p.totals, p.series
        enpi = "n/a" if t.enpi is None else f"{t.enpi:.4f}"
        dev = "n/a" if t.deviation_pct is None else f"{t.deviation_pct:+.2f} %"
        head = (f"<p>Actual {t.actual_energy:,.3f} {unit} ({t.actual_co2e_kg:,.3f} kg CO2e); expected "
                f"{t.expected_energy:,.3f} {unit} ({t.expected_co2e_kg:,.3f} kg CO2e); deviation "
                f"{t.deviation_energy:+,.3f} {unit} ({dev}); EnPI {enpi}.</p>")
        n = len(s.start)
        rows = "".join(f"<tr><td>{e(s.start[i].isoformat())}</td><td>{s.actual[i]:,.3f}</td>"
                       f"<td>{s.expected[i]:,.3f}</td><td>{'' if s.enpi[i] is None else f'{s.enpi[i]:.4f}'}</td>"
                       f"<td>{s.cusum[i]:+,.3f}</td></tr>" for i in range(min(n, HTML_ROWS_MAX)))
        more = (f"<p>{n - HTML_ROWS_MAX} more periods: see the JSON report or /v1/performance.</p>"
                if n > HTML_ROWS_MAX else "")
        parts.append(f"{title}{head}<table><tr><th>period</th><th>actual ({unit})</th><th>expected ({unit})</th>"
                     f"<th>EnPI</th><th>CUSUM ({unit})</th></tr>{rows}</table>{more}")
    return "".join(parts) or "<p>No baseline in force.</p>"


def _label(m: MeterBalance) -> str:
    return f"{m.meter} (manual entries: {m.points})" if m.source == "manual" else m.meter


def _html(report: ReportOut) -> str:
    b = report.balance
    e = html.escape

    def rows(items: list[tuple[str, str]]) -> str:
        return "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in items)

    def kg(x: float) -> str:
        return f"{x:,.3f} kg"

    allowance = "none set"
    if b.allowance is not None:
        a = b.allowance
        allowance = (f"{kg(a.allowance_kg)}; used {kg(a.used_kg)}; projected {kg(a.projected_kg)}; runs out "
                     f"{a.runs_out_at.isoformat() if a.runs_out_at else 'not in this period'}")
    completeness = f"{b.completeness:.1%}" if b.completeness is not None else "unknown"
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>carbonwatch report {e(report.site)} {e(b.period.start.isoformat())}</title>
<style>body{{font:14px sans-serif;margin:2em}}table{{border-collapse:collapse;margin:1em 0}}
th,td{{border:1px solid #999;padding:4px 8px;text-align:left}}@media print{{body{{margin:0}}}}</style></head><body>
<h1>Carbon accounting report: {e(report.site_name or report.site)}</h1>
<p>Period {e(b.period.start.isoformat())} to {e(b.period.end.isoformat())} ({e(b.period.name)}).
Generated {e(report.generated_at.isoformat())} by {e(report.generated_by)}.</p>
<h2>Balance</h2><table>{rows([("emissions (location-based)", kg(b.co2e_kg)),
                              ("emissions (market-based)", kg(b.market_based.co2e_kg)),
                              ("offsets", kg(b.offsets_kg)), ("net balance", kg(b.net_co2e_kg)),
                              ("allowance", allowance), ("data completeness", completeness),
                              ("of the emissions, estimated (gaps spread over the gap)", kg(b.estimated_co2e_kg)),
                              ("held, not counted (open, waiting for an engineer)",
                               f"{kg(b.held_co2e_kg)} in {b.held_records} records"),
                              ("of the emissions, manual activity entries (deliveries, bills, refrigerants ...)",
                               f"{kg(b.manual_co2e_kg)} ({(b.manual_share or 0.0):.1%})")]
                             + [(f"bill #{r.entry_id} for {', '.join(r.meters)} (reconciliation, not added)",
                                 f"billed − metered {r.difference:,.3f} {r.unit}") for r in b.reconciliations])}</table>
{uncertain_html(b)}
{virtual_flows_html(b)}
<h2>By scope</h2><table>{rows([(s.scope, kg(s.co2e_kg)) for s in b.scopes])}</table>
<h2>By carrier</h2><table>{rows([(c.carrier, f"{c.energy:,.3f} {c.energy_unit}"
                                              + (f" ({c.factor_energy:,.3f} {c.factor_energy_unit})"
                                                 if c.factor_energy_unit != c.energy_unit else "")
                                              + f"; {kg(c.co2e_kg)}; of which "
                                              f"estimated {c.estimated_energy:,.3f} {c.energy_unit}, "
                                              f"{kg(c.estimated_co2e_kg)}; held, not counted: "
                                              f"{c.held_energy:,.3f} {c.energy_unit}, {kg(c.held_co2e_kg)}")
                                  for c in b.carriers])}</table>
<h2>By meter</h2><table>{rows([(_label(m), f"{m.energy:,.3f} {m.energy_unit}; {kg(m.co2e_kg)}; estimated "
                                        f"{m.estimated_energy:,.3f} {m.energy_unit}; held {m.held_energy:,.3f} "
                                        f"{m.held_energy_unit or m.energy_unit} ({m.held_records} records, "
                                        f"{kg(m.held_co2e_kg)})") for m in b.meters])}</table>
<h2>By area</h2><table>{rows([(a.area, f"{kg(a.co2e_kg)}; {a.energy_kgce:,.3f} kgce") for a in b.areas])}</table>
<h2>Standard coal equivalent (GB/T 2589, {e(b.kgce_method)} value)</h2><table>{rows(
    [("total", f"{b.energy_kgce:,.3f} kgce ({b.energy_kgce / 1000:,.4f} tce)")]
    + [(c.carrier, f"{c.energy_kgce:,.3f} kgce; coefficient {', '.join(c.kgce_coefficient_ids) or 'none'}")
       for c in b.carriers] + [(m, "no kgce: " + m) for m in b.kgce_refused])}</table>
<h2>Intensity: per unit of product</h2><table>{rows([(f"{i.level} {i.name}",
    f"{i.production:,.3f} {i.production_unit}; " + (i.refused or f"{i.co2e_kg_per_unit:,.4f} kg CO2e and "
    f"{i.kgce_per_unit:,.4f} kgce per {i.production_unit}")) for i in b.intensity])}</table>
<h2>Contractual instruments used (market-based)</h2><table>{rows([(f"#{u.id} {u.kind}",
    f"{u.used_kwh:,.3f} kWh (before the period: {u.used_before_kwh:,.3f} kWh)") for u in b.market_based.instruments])}
</table>
<h2>Offsets</h2><table>{rows([(f"#{o.id} {o.kind} {o.standard or ''} {o.serial or ''}",
                               f"{kg(o.quantity_kg)}; evidence: {o.evidence}") for o in report.offsets])}</table>
<h2>Factor versions used</h2><ul>{"".join(f"<li>{e(v)}</li>" for v in b.factor_versions)}</ul>
<h2>Performance against baselines (actual vs expected, ISO 50006)</h2>{_performance_html(report)}
{report_targets_html(report.targets)}
{open_items_html(report.nonconformities)}
</body></html>"""


@router.get("/reports/period", response_model=ReportOut,
            responses={200: {"content": {"text/csv": {}, "text/html": {}}}})
def period_report(settings: SettingsDep, store: StoreDep, db: DbDep, history: HistoryDep, held: HeldDep,
                  now: NowDep, key: Viewer, site: SiteQuery = None, period: PeriodQuery = None,
                  start: FromQuery = None, end: ToQuery = None,
                  format: Annotated[Literal["json", "csv", "html"], Query(description="json, csv or html")] = "json",
                  ) -> ReportOut | Response:
    site = site_of(key, settings, site)
    bounds = period_of(settings, now, period or "month", start, end)
    rate = sum(r.rate_kg_per_h for r in live_rates(settings, store, site, now).values())
    balance = build_balance(settings, store, db, history, held, site, bounds, now, rate)
    balance = with_virtual_and_flows(settings, store, balance, site, bounds.start, bounds.end, now)
    lo, hi = bounds.start.isoformat(), bounds.end.isoformat()
    offsets = [OffsetOut(**d) for d in LedgerDesk(db).list("offset", site, 10_000, 0)
               if not d["voided"] and lo <= d["applies_on"] < hi]
    report = ReportOut(site=site, site_name=settings.plant.site.name, generated_at=now, generated_by=key.name,
                       balance=balance, offsets=offsets,
                       performance=report_performance(store, db, settings.plant, site, bounds.start, bounds.end, now),
                       targets=report_targets(settings, store, db, site, bounds.end, now),
                       nonconformities=open_items(db, site, now, settings.plant.site.timezone))
    name = f"report-{site}-{bounds.start.date().isoformat()}"
    if format == "csv":
        return Response(_csv(report), media_type="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})
    if format == "html":
        return HTMLResponse(_html(report))
    return report
