// The records view (#/records): targets' progress against their trajectories (ISO 50001 6.6), the meter
// register's calibration state (7.1.4) and the open nonconformities (10.2), as /v1/targets, /v1/meter-register
// and /v1/nonconformities give them.

import { get } from "./api.js";
import { formatMass, formatNumber } from "./charts.js";
import { card, h, showError } from "./dom.js";

const STATE_TEXT = { ok: "ok", due_soon: "due soon", overdue: "overdue", unknown: "no due date" };

function figure(value, unit) {
  if (value === null || value === undefined) return "–";
  return unit === "kg" ? formatMass(value) : formatNumber(value, unit, 3);
}

function progressBar(p, base) {
  // where the projection stands between the base year (0 %) and the year's allowed figure (100 %)
  const wanted = base - p.allowed;
  const done = wanted > 0 ? Math.max(0, Math.min(1.5, (base - p.projected) / wanted)) : (p.on_track ? 1 : 0);
  const fill = h("span", { class: p.on_track ? "ok" : "warn", "data-done": String(done) });
  fill.style.width = `${Math.min(100, done * 100).toFixed(1)}%`;   // CSSOM: the page's CSP refuses inline styles
  return h("div", { class: "bar", title: `${(done * 100).toFixed(0)} % of the year's required reduction` }, fill);
}

function targetRow(t) {
  const p = t.progress;
  const next = p && p.next_milestone ? `${p.next_milestone.year}: ${figure(p.next_allowed, p.unit)}` : "–";
  return h("tr", { "data-target": t.id, "data-on-track": p ? String(p.on_track) : "",
    "data-misses-next": p ? String(p.misses_next) : "" },
  h("td", { text: t.spec.title }), h("td", { text: t.spec.owner }),
  h("td", { text: `${t.spec.base_year}: ${figure(t.spec.base_value, p ? p.unit : "kg")}` }),
  h("td", { class: "num", "data-value": p ? String(p.allowed) : "", text: p ? figure(p.allowed, p.unit) : "–" }),
  h("td", { class: "num", "data-value": p ? String(p.projected) : "",
    text: p ? figure(p.projected, p.unit) : (t.progress_refused || "–") }),
  h("td", { class: "num", "data-value": p ? String(p.reduction_pct) : "",
    text: p ? `${p.reduction_pct.toFixed(1)} % (needs ${p.required_pct.toFixed(1)} %)` : "–" }),
  h("td", {}, p ? progressBar(p, t.spec.base_value) : ""),
  h("td", { class: p && p.misses_next ? "state warn" : "state", text: p ? `${next}${p.misses_next ? " – missed" : ""}` : next }));
}

function meterRow(e) {
  const x = e.entry;
  const ratio = (a, b) => (a && b ? `${a}/${b}` : "–");
  const cert = x.certificate ? (x.certificate.sha256 ? `${x.certificate.filename} (${x.certificate.sha256.slice(0, 12)}…)`
    : x.certificate.reference) : "–";
  return h("tr", { "data-meter": e.meter, "data-state": e.calibration_state },
    h("td", { text: e.meter }), h("td", { text: x.serial }), h("td", { text: `${x.make} ${x.model}` }),
    h("td", { text: x.accuracy_class }), h("td", { text: ratio(x.ct_primary_a, x.ct_secondary_a) }),
    h("td", { text: ratio(x.pt_primary_v, x.pt_secondary_v) }), h("td", { text: x.installed_on }),
    h("td", { text: x.last_calibrated_on || "–" }), h("td", { text: x.calibration_due_on || "–" }),
    h("td", { class: `state ${e.calibration_state}`, text: STATE_TEXT[e.calibration_state] +
      (e.days_to_due !== null && e.calibration_state !== "ok" ? ` (${e.days_to_due} d)` : "") }),
    h("td", { text: cert }));
}

function ncRow(n) {
  const s = n.spec;
  const e = n.effectiveness;
  return h("tr", { "data-nc": n.id, "data-state": s.state, "data-verdict": e ? e.verdict : "" },
    h("td", { text: n.id }), h("td", { text: s.title }), h("td", { text: s.owner }), h("td", { text: s.state }),
    h("td", { text: s.due_on }), h("td", { text: s.corrective_action || "–" }),
    h("td", { class: e && e.verdict === "ineffective" ? "state warn" : "state",
      text: e ? `${e.verdict} (${e.rule_id} clear ${e.clear_days} d)` : "–" }));
}

function table(id, heads, rows, empty) {
  if (!rows.length) return h("p", { class: "muted", id: `${id}-empty`, text: empty });
  return h("table", { id }, h("thead", {}, h("tr", {}, ...heads.map((t) => h("th", { text: t })))),
    h("tbody", {}, ...rows));
}

export function recordsView(root) {
  const targets = h("div", { id: "targets-box" });
  const register = h("div", { id: "register-box" });
  const ncs = h("div", { id: "nc-box" });
  root.replaceChildren(h("div", { class: "title" }, h("h1", { text: "Management-system records" })),
    card("targets-card", "Targets: this year against the trajectory", targets),
    card("register-card", "Meter register: calibration", register),
    card("nc-card", "Open nonconformities and corrective actions", ncs));

  async function load() {
    try {
      const list = await get("/v1/targets");
      targets.replaceChildren(table("targets-table", ["target", "owner", "base year", "allowed this year",
        "projected", "reduction", "progress", "next milestone"], list.map(targetRow),
      "No target yet: an admin sets one with POST /v1/targets."));
    } catch (err) {
      showError(targets, err);
    }
    try {
      const list = await get("/v1/meter-register");
      register.replaceChildren(table("register-table", ["meter", "serial", "make and model", "class", "CT",
        "PT", "installed", "calibrated", "due", "state", "certificate"], list.map(meterRow),
      "No meter registered yet: an admin adds one with PUT /v1/meter-register/{meter}."));
    } catch (err) {
      showError(register, err);
    }
    try {
      const list = await get("/v1/nonconformities");
      ncs.replaceChildren(table("nc-table", ["id", "nonconformity", "owner", "state", "due", "corrective action",
        "effectiveness"], list.map(ncRow), "No open nonconformity."));
    } catch (err) {
      showError(ncs, err);
    }
  }

  load();
  return { dispose() {}, refresh: load, onEvent() {} };
}
