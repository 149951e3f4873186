// The overview's energy flows and virtual meters: today's import, export, on-site generation and net import of
// the site (when a meter exports or generates), and each virtual meter (e.g. the unmetered rest) with its
// completeness, from /v1/balance. The card stays hidden on a plant without either.

import { get } from "./api.js";
import { formatMass, formatNumber, percent } from "./charts.js";
import { card, h, kpi, setKpi, showError } from "./dom.js";

const FLOW_KPIS = [["flow-import", "import_energy", "Bought from the grid"],
  ["flow-export", "export_energy", "Sent to the grid"], ["flow-generation", "generation_energy", "Generated on site"],
  ["flow-net", "net_import", "Net import"], ["flow-self", "self_consumed", "Generation used on site"]];

function virtualTable(rows) {
  return h("table", { class: "virtual-meters" },
    h("thead", {}, h("tr", {}, ...["meter", "expression", "energy", "CO2e", "complete"].map((t) => h("th", { text: t })))),
    h("tbody", {}, ...rows.map((v) => h("tr", { "data-meter": v.meter, "data-energy": String(v.energy),
      class: v.negative ? "negative" : null },
    h("td", { text: v.meter, title: v.description || null }), h("td", { text: v.expression }),
    h("td", { text: formatNumber(v.energy, v.energy_unit) + (v.negative ? " (submeters above the main)" : "") }),
    h("td", { text: formatMass(v.co2e_kg) }), h("td", { text: percent(v.completeness) })))));
}

/** The card (hidden until today's balance says there is something to show) and its loader. */
export function flowsCard() {
  const flows = h("div", { class: "kpis", id: "flow-kpis" }, ...FLOW_KPIS.map(([id, , label]) => kpi(id, label)));
  const virtual = h("div", { id: "virtual-meters" });
  const node = card("flows-card", "Energy flows and virtual meters (today)", flows, virtual);
  node.hidden = true;
  async function load() {
    try {
      const b = await get("/v1/balance", { period: "today" });
      const f = b.flows;
      flows.hidden = !f;
      if (f) {
        for (const [id, key] of FLOW_KPIS) setKpi(id, f[key], formatNumber(f[key], f.energy_unit));
        setKpi("flow-net", f.net_import, formatNumber(f.net_import, f.energy_unit),
          `CO2e counts the import only: ${formatMass(f.location_co2e_kg)}`);
      }
      virtual.replaceChildren(...(b.virtual_meters.length ? [virtualTable(b.virtual_meters)] : []));
      node.hidden = !f && !b.virtual_meters.length;
    } catch (err) {
      node.hidden = false;
      showError(virtual, err);
    }
  }
  return { node, load };
}
