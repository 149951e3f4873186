// The activity view (#/activity): manual entries (fuel deliveries, bills, refrigerant top-ups, process emissions,
// heat statements) with what each adds, bills for live meters reconciled against them, a form to add one, a CSV
// import (every bad row with its line) and void for engineers; this month's manual share of the balance on top.

import { ApiError, get, getKey, post } from "./api.js";
import { formatMass, formatNumber, formatTime, percent } from "./charts.js";
import { card, h, kpi, setKpi, showError } from "./dom.js";

const KINDS = ["fuel", "bill", "refrigerant", "process", "heat"];
const FIELDS = [  // name, label, placeholder
  ["start", "first day", "2026-11-03"], ["end", "last day (optional)", ""], ["quantity", "quantity", "1500"],
  ["unit", "unit", "L, t, kWh, GJ, kg"], ["carrier", "carrier", "diesel, electricity, steam"],
  ["density", "density", "0.84 kg/L"], ["gas", "gas", "HFC-134a"], ["material", "material", "CaCO3"],
  ["purity", "purity", "0.92"], ["meters", "meters covered", "main (a bill for live meters)"],
  ["evidence", "evidence", "delivery note DN-101"],
];

function what(e) {
  const x = e.entry;
  return [x.carrier, x.gas, x.material, x.meters && x.meters.length ? `meters ${x.meters.join(", ")}` : null]
    .filter(Boolean).join(" · ");
}

function row(e, reload) {
  const rec = e.reconciliation;
  const counts = e.voided ? `void: ${e.void_reason}` : e.counted ? formatMass(e.result.co2e_kg) :
    `reconciliation: billed − metered ${formatNumber(rec.difference, rec.unit, 1)}` +
    (rec.difference_pct === null ? "" : ` (${rec.difference_pct.toFixed(2)} %)`);
  const actions = h("td", {});
  if (!e.voided) {
    actions.append(h("button", { class: "ghost activity-void", type: "button", text: "Void", onclick: async () => {
      const reason = prompt("Why is this entry void?");
      if (!reason) return;
      try {
        await post(`/v1/activity/${e.id}/void`, { reason });
        await reload();
      } catch (err) {
        actions.append(h("span", { class: "error", text: err.message }));
      }
    } }));
  }
  return h("tr", { "data-activity-id": e.id, "data-counted": e.counted, "data-voided": e.voided },
    h("td", { text: e.entry.end ? `${e.entry.start} – ${e.entry.end}` : e.entry.start }),
    h("td", { text: e.kind }), h("td", { text: what(e) }),
    h("td", { class: "num", text: `${formatNumber(e.entry.quantity, e.entry.unit, 3)}` }),
    h("td", { class: "num co2e", "data-value": e.counted && !e.voided ? e.result.co2e_kg : 0, text: counts }),
    h("td", { class: "muted", text: `${e.result.factor_id} (${e.result.factor_version})` }),
    h("td", { text: e.evidence_sha256 ? `${e.evidence} · sha256 ${e.evidence_sha256.slice(0, 12)}` : e.evidence }),
    h("td", { text: `${e.created_by} ${formatTime(e.created_at)}` }), actions);
}

async function importCsv(file) {
  const resp = await fetch(`/v1/activity/import?name=${encodeURIComponent(file.name)}`, {
    method: "POST", body: await file.text(), cache: "no-store",
    headers: { Authorization: `Bearer ${getKey()}`, "Content-Type": "text/csv", Accept: "application/json" } });
  const body = await resp.json();
  if (!resp.ok) throw new ApiError(resp.status, Array.isArray(body.detail) ? body.detail.map((d) => d.msg)
    .join("; ").replace(/Value error, /g, "") : String(body.detail));
  return body;
}

export function activityView(root, ctx) {
  const table = h("div", { id: "activity-table" });
  const message = h("p", { id: "activity-message", class: "muted", role: "status" });
  const form = h("form", { id: "activity-form", class: "controls" },
    h("label", {}, "kind ", h("select", { name: "kind", "aria-label": "kind" },
      ...KINDS.map((k) => h("option", { value: k, text: k })))),
    ...FIELDS.map(([name, label, hint]) => h("label", {}, `${label} `,
      h("input", { name, placeholder: hint, "aria-label": label, size: 12 }))),
    h("label", { title: "a bill for energy no live meter measures: count it" },
      h("input", { type: "checkbox", name: "unmetered", "aria-label": "unmetered bill" }), " unmetered bill"),
    h("button", { type: "submit", text: "Add entry" }));
  const file = h("input", { type: "file", accept: ".csv,text/csv", id: "activity-csv", "aria-label": "CSV file" });
  root.replaceChildren(
    h("div", { class: "title" }, h("h1", { text: "Activity data" })),
    h("div", { class: "kpis" }, kpi("kpi-manual", "Manual entries this month"), kpi("kpi-manual-share",
      "Share of this month's CO2e")),
    card("activity-add", "Add an entry", form, h("p", {}, "or import a CSV ", file), message),
    card("activity-list", "Entries", table));

  async function load() {
    try {
      const [entries, b] = await Promise.all([get("/v1/activity", { limit: 500 }), get("/v1/balance",
        { period: "month" })]);
      setKpi("kpi-manual", b.manual_co2e_kg, formatMass(b.manual_co2e_kg));
      setKpi("kpi-manual-share", b.manual_share, b.manual_share === null ? "–" : percent(b.manual_share));
      table.replaceChildren(h("table", {}, h("thead", {}, h("tr", {}, ...["covers", "kind", "what", "quantity",
        "kg CO2e", "factor", "evidence", "entered", ""].map((t) => h("th", { scope: "col", text: t })))),
      h("tbody", {}, ...entries.slice().reverse().map((e) => row(e, load)))));
    } catch (err) {
      showError(table, err);
      ctx.fail(err);
    }
  }
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = { kind: form.elements.kind.value };
    for (const [name] of FIELDS) {
      const v = form.elements[name].value.trim();
      if (!v) continue;
      body[name] = name === "meters" ? v.split(/[\s,;]+/) : ["quantity", "purity"].includes(name) ? Number(v) : v;
    }
    if (form.elements.unmetered.checked) body.unmetered = true;
    try {
      const made = await post("/v1/activity", body);
      message.textContent = `entry ${made.id} added: ${formatMass(made.result.co2e_kg)}` +
        (made.counted ? "" : " (a reconciliation: not added)");
      await load();
    } catch (err) {
      message.textContent = err.message;
    }
  });
  file.addEventListener("change", async () => {
    if (!file.files.length) return;
    try {
      const out = await importCsv(file.files[0]);
      message.textContent = `stored ${out.stored.length} of ${out.rows} rows`;
      await load();
    } catch (err) {
      message.textContent = `nothing stored: ${err.message}`;
    }
    file.value = "";
  });
  load();
  return { refresh: load, onEvent() {}, dispose() {} };
}
