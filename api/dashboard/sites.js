// The site switcher (the sites this key may see, and "organisation") and the organisation view: the roll-up of
// /v1/org/balance with one row per site. The chosen site is kept in this tab and sent as ?site= on every call.

import { get, setSite } from "./api.js";
import { formatMass, formatNumber } from "./charts.js";
import { card, h, kpi, setKpi, showError } from "./dom.js";

const SITE_ITEM = "carbonwatch.site";
export const ORG = "#/org";

/** The site the tab looks at: the one chosen before (if the key still sees it), else the server's own. */
function chosen(sites) {
  const kept = sessionStorage.getItem(SITE_ITEM);
  const found = sites.find((s) => s.id === kept) || sites.find((s) => s.default) || sites[0];
  return found ? found.id : "";
}

/**
 * Fill the <select> with the key's sites (hidden when there is one) and "organisation"; returns the site in use.
 * `onChange(site)` runs after a switch (the caller restarts its stream and redraws).
 */
export async function siteSwitcher(select, onChange) {
  let sites = [];
  try {
    sites = await get("/v1/org/sites");
  } catch {
    return ""; // a server without the organisation endpoints: its own site, no switcher
  }
  const site = chosen(sites);
  setSite(site);
  select.replaceChildren(
    ...sites.map((s) => h("option", { value: s.id, text: s.name ? `${s.id} · ${s.name}` : s.id,
      selected: s.id === site })),
    h("option", { value: ORG, text: "organisation", selected: location.hash === ORG }));
  select.hidden = sites.length < 2;
  select.onchange = () => { // a property, not a listener: signing in again must not add a second one
    if (select.value === ORG) {
      location.hash = ORG;
      return;
    }
    sessionStorage.setItem(SITE_ITEM, select.value);
    setSite(select.value);
    onChange(select.value);
  };
  window.onhashchange = () => {
    if (location.hash !== ORG && select.value === ORG) select.value = sessionStorage.getItem(SITE_ITEM) || site;
  };
  return site;
}

/** The organisation: totals of the sites the key may see (this month, each site's month in its own zone). */
export function orgView(view, ctx) {
  const table = h("div", { class: "scroll" });
  const box = h("div", { class: "kpis" }, kpi("org-co2e", "emissions this month (location-based)"),
    kpi("org-market", "market-based"), kpi("org-offsets", "offsets"), kpi("org-net", "net"));
  view.replaceChildren(card("org", "Organisation", box, table));
  let disposed = false;

  async function refresh() {
    try {
      const org = await get("/v1/org/balance", { period: "month" });
      if (disposed) return;
      const t = org.total;
      setKpi("org-co2e", t.co2e_kg, formatMass(t.co2e_kg), `${org.sites.length} sites`);
      setKpi("org-market", t.market_co2e_kg, formatMass(t.market_co2e_kg));
      setKpi("org-offsets", t.offsets_kg, formatMass(t.offsets_kg));
      setKpi("org-net", t.net_co2e_kg, formatMass(t.net_co2e_kg));
      const head = h("tr", {}, ...["site", "period (site's zone)", "CO2e", "market-based", "offsets", "net",
        "rate"].map((x) => h("th", { scope: "col", text: x })));
      const row = (b, p) => h("tr", { "data-site": b.site },
        h("td", { text: b.site }), h("td", { text: `${p.start} – ${p.end}` }),
        h("td", { class: "num", "data-value": b.co2e_kg, text: formatMass(b.co2e_kg) }),
        h("td", { class: "num", text: formatMass(b.market_based.co2e_kg) }),
        h("td", { class: "num", text: formatMass(b.offsets_kg) }),
        h("td", { class: "num", text: formatMass(b.net_co2e_kg) }),
        h("td", { class: "num", text: formatNumber(b.rate_kg_per_h, "kg/h", 2) }));
      const total = h("tr", { class: "total", "data-site": "" }, h("th", { scope: "row", text: "organisation" }),
        h("td", {}), h("td", { class: "num", "data-value": t.co2e_kg, text: formatMass(t.co2e_kg) }),
        h("td", { class: "num", text: formatMass(t.market_co2e_kg) }),
        h("td", { class: "num", text: formatMass(t.offsets_kg) }),
        h("td", { class: "num", text: formatMass(t.net_co2e_kg) }),
        h("td", { class: "num", text: formatNumber(t.rate_kg_per_h, "kg/h", 2) }));
      table.replaceChildren(h("table", { class: "org" }, h("thead", {}, head),
        h("tbody", {}, ...org.by_site.map((b, i) => row(b, org.periods[i])), total)));
    } catch (err) {
      if (!disposed) showError(table, err);
      ctx.fail(err);
    }
  }

  refresh();
  return { refresh, onEvent() {}, dispose() { disposed = true; } };
}
