// The three views of the dashboard: the site overview, an area and a meter (drill-down with history and CSV).
// Each view builds its DOM, loads from the API, and takes live events through `onEvent`.

import { downloadCsv, get, post } from "./api.js";
import { barList, formatMass, formatNumber, formatTime, lineChart, percent } from "./charts.js";
import { card, h, kpi, setKpi, showError } from "./dom.js";
import { flowsCard } from "./flows.js";
import { heldCard } from "./held.js";

const LIVE_WINDOW_MS = 15 * 60e3;
const LIVE_MAX_POINTS = 2000;
const LIVE_MERGE_MS = 2000; // a site sends a balance update per reading message: one chart point per 2 s

const STATUS_TEXT = { ok: "ok", stale: "stale", never_seen: "never seen" };

/** A unit as people write it: Nm^3 -> Nm³, m^3 -> m³. */
export function unitText(unit) {
  return (unit || "").replace(/\^3/g, "³").replace(/\^2/g, "²");
}

/** kgce shown in kgce below one tonne and in tce above. */
export function formatCoal(kgce) {
  if (kgce === null || kgce === undefined || Number.isNaN(kgce)) return "–";
  return Math.abs(kgce) < 1000 ? formatNumber(kgce, "kgce", 1) : formatNumber(kgce / 1000, "tce", 3);
}

/**
 * A carrier's energy in the unit its emission factor applies to (natural gas by volume: normal m³, with the
 * metered volume beside it), so the CO2e next to it reads right.
 */
export function energyText(c) {
  const factorUnit = c.factor_energy_unit || c.energy_unit;
  if (factorUnit === c.energy_unit) return formatNumber(c.energy, unitText(c.energy_unit));
  return `${formatNumber(c.factor_energy, unitText(factorUnit))} at normal conditions; ` +
    `${formatNumber(c.energy, unitText(c.energy_unit))} metered`;
}

/** The site's intensity row of a balance (first production counter), or undefined. */
function siteIntensity(balance) {
  return (balance.intensity || []).find((i) => i.level === "site");
}

function meterTable(meters) {
  const head = h("tr", {}, ...["meter", "area", "carrier", "status", "last sample", "quality", "power",
    "CO2e rate", "completeness", "estimated", "held (open)"].map((t) => h("th", { scope: "col", text: t })));
  const rows = meters.map((m) => h("tr", { "data-meter": m.meter },
    h("td", {}, h("a", { href: `#/meter/${encodeURIComponent(m.meter)}`, text: m.meter })),
    h("td", {}, h("a", { href: `#/area/${encodeURIComponent(m.area)}`, text: m.area })),
    h("td", { text: m.carrier }),
    h("td", {}, h("span", { class: `status ${m.status}`, "data-status": m.status, text: STATUS_TEXT[m.status] })),
    h("td", { class: "last", text: formatTime(m.last_sample_ts) }),
    h("td", { class: m.last_quality && m.last_quality !== "good" ? "warn" : "", text: m.last_quality || "–" }),
    h("td", { class: "num power", "data-value": m.power_kw ?? "", text: formatNumber(m.power_kw, "kW") }),
    h("td", { class: "num rate", text: formatNumber(m.co2e_rate_kg_per_h, "kg/h", 2) }),
    h("td", { class: "num", text: percent(m.completeness) }),
    h("td", { class: "num estimated", "data-value": m.estimated_energy,
      text: m.estimated_energy ? formatNumber(m.estimated_energy, m.energy_unit, 3) : "–" }),
    h("td", { class: `num held${m.held_records ? " warn" : ""}`, "data-value": m.held_energy,
      "data-records": m.held_records, text: m.held_records ?
        `${formatNumber(m.held_energy, m.energy_unit, 3)} (${m.held_records})` : "–" })));
  return h("div", { class: "scroll" }, h("table", { class: "meters" }, h("thead", {}, head), h("tbody", {}, ...rows)));
}

/** The period and resolution chooser shared by the drill-down views; calls onChange(params). */
function periodControls(state, onChange) {
  const custom = h("span", { class: "custom", hidden: state.period !== "custom" },
    h("label", {}, "from ", h("input", { type: "date", name: "from", value: state.from || "" })),
    h("label", {}, "to ", h("input", { type: "date", name: "to", value: state.to || "" })));
  const period = h("select", { name: "period", "aria-label": "period" },
    ...["today", "month", "year", "custom"].map((p) => h("option", { value: p, text: p, selected: p === state.period })));
  const step = h("select", { name: "step", "aria-label": "resolution" },
    ...[["1m", "1 min"], ["15m", "15 min"], ["1h", "1 hour"], ["1d", "1 day"]]
      .map(([v, t]) => h("option", { value: v, text: t, selected: v === state.step })));
  const form = h("form", { class: "controls", onsubmit: (e) => e.preventDefault() },
    h("label", {}, "period ", period), custom, h("label", {}, "resolution ", step));
  form.addEventListener("change", () => {
    state.period = period.value;
    state.step = step.value;
    custom.hidden = state.period !== "custom";
    state.from = form.elements.from.value;
    state.to = form.elements.to.value;
    if (state.period !== "custom" || (state.from && state.to)) onChange();
  });
  return form;
}

function periodParams(state) {
  if (state.period !== "custom") return { period: state.period };
  const [fy, fm, fd] = state.from.split("-").map(Number);
  const [ty, tm, td] = state.to.split("-").map(Number);
  return { from: new Date(fy, fm - 1, fd).toISOString(), to: new Date(ty, tm - 1, td + 1).toISOString() };
}

function defaultStep(period) {
  return { today: "15m", month: "1d", year: "1d", custom: "1h" }[period] || "1h";
}

// ---------------------------------------------------------------------------------------------------------
export function overview(root, ctx) {
  const held = heldCard(undefined, () => Promise.all([loadHeldFigure(), loadMeters()]));
  const live = { points: [] };  // [ms, kg/h]; live points carry .live and .merged (start of their 2 s slot)
  let breakdownPeriod = "today";
  const periodSel = h("select", { "aria-label": "breakdown period", id: "breakdown-period" },
    ...["today", "month", "year"].map((p) => h("option", { value: p, text: p })));
  root.replaceChildren(
    h("div", { class: "kpis" }, kpi("kpi-today", "Emissions today"), kpi("kpi-month", "Emissions this month"),
      kpi("kpi-net", "Net balance this month"), kpi("kpi-rate", "CO2e rate now"), kpi("kpi-power", "Power now"),
      kpi("kpi-held", "Held, not counted"), kpi("kpi-kgce", "Energy today (standard coal)"),
      kpi("kpi-intensity", "Intensity today")),
    h("div", { class: "grid" },
      card("live-card", "Live CO2e rate", h("div", { id: "live-chart", class: "chartbox" })),
      card("allowance-card", "Allowance burn-down", h("div", { id: "allowance" })),
      card("breakdown", "Breakdown", h("div", { class: "controls" }, h("label", {}, "period ", periodSel)),
        h("h3", { text: "by area" }), h("div", { id: "breakdown-area" }),
        h("h3", { text: "by carrier" }), h("div", { id: "breakdown-carrier" }),
        h("h3", { text: "by scope" }), h("div", { id: "breakdown-scope" }),
        h("h3", { text: "per unit of product" }), h("div", { id: "breakdown-intensity" })),
      card("alerts-card", "Active alerts", h("div", { id: "alerts" }))),
    card("meters-card", "Meters", h("div", { id: "meters" })), held.node);
  const flows = flowsCard();   // import, export, generation, net import; virtual meters (flows.js)
  root.append(flows.node);
  flows.load();
  periodSel.addEventListener("change", () => {
    breakdownPeriod = periodSel.value;
    loadBreakdown();
  });

  function drawLive() {
    const box = document.getElementById("live-chart");
    if (!box) return;
    const now = Date.now();
    lineChart(box, [{ name: "CO2e rate", points: live.points }], { unit: "kg CO2e/h", label: "live CO2e rate",
      xMin: now - LIVE_WINDOW_MS, xMax: now, empty: "waiting for samples…" });
  }

  function addLive(ms, rate) {
    const last = live.points[live.points.length - 1];
    if (last && last.live && ms - last.merged < LIVE_MERGE_MS) {
      last[0] = ms;
      last[1] = rate;
    } else {
      const point = [ms, rate];
      point.live = true;
      point.merged = ms;
      live.points.push(point);
    }
    const cut = Date.now() - LIVE_WINDOW_MS;
    while (live.points.length && (live.points[0][0] < cut || live.points.length > LIVE_MAX_POINTS)) live.points.shift();
  }

  async function seedLive() {
    // the last minutes from the store (per-minute kg -> kg/h) until live samples arrive
    const to = new Date();
    const from = new Date(to.getTime() - LIVE_WINDOW_MS);
    try {
      const hist = await get("/v1/history", { from: from.toISOString(), to: to.toISOString(), step: "1m" });
      const seeded = hist.buckets.filter((b) => Date.parse(b.start) + 60e3 <= to.getTime()) // whole minutes only
        .map((b) => [Date.parse(b.start) + 60e3, b.co2e_kg * 60]);
      live.points = [...seeded, ...live.points].sort((a, b) => a[0] - b[0]);
    } catch (err) {
      console.info("carbonwatch: no history for the live chart:", err.message);
    }
    drawLive();
  }

  function showBalance(today, month) {
    setKpi("kpi-today", today.co2e_kg, formatMass(today.co2e_kg), `completeness ${percent(today.completeness)}` +
      (today.estimated_co2e_kg ? `; estimated ${formatMass(today.estimated_co2e_kg)}` : ""));
    setKpi("kpi-month", month.co2e_kg, formatMass(month.co2e_kg),
      `market-based ${formatMass(month.market_based.co2e_kg)}`);
    setKpi("kpi-net", month.net_co2e_kg, formatMass(month.net_co2e_kg), `offsets ${formatMass(month.offsets_kg)}`);
    setKpi("kpi-rate", today.rate_kg_per_h, formatNumber(today.rate_kg_per_h, "kg/h", 2), "");
    setKpi("kpi-kgce", today.energy_kgce, formatCoal(today.energy_kgce), `GB/T 2589, ${today.kgce_method} value` +
      (today.kgce_refused.length ? `; ${today.kgce_refused.length} meters without a coefficient` : ""));
    const i = siteIntensity(today);
    if (!i) {
      setKpi("kpi-intensity", null, "–", "no production counter declared");
    } else if (i.co2e_kg_per_unit === null) {
      setKpi("kpi-intensity", null, "–", `no product yet today (${i.quantity})`);
    } else {
      setKpi("kpi-intensity", i.co2e_kg_per_unit, formatNumber(i.co2e_kg_per_unit, `kg CO2e/${i.production_unit}`, 3),
        `${formatNumber(i.kgce_per_unit, `kgce/${i.production_unit}`, 3)}; ` +
        `${formatNumber(i.production, i.production_unit, 0)} ${i.product || i.quantity}`);
    }
    showAllowance(month.allowance);
  }

  async function showAllowance(a) {
    const box = document.getElementById("allowance");
    if (!a) {
      box.replaceChildren(h("p", { class: "muted", text: "No allowance covers the current period. An admin adds one " +
        "with POST /v1/allowances." }));
      return;
    }
    const start = Date.parse(a.start);
    const end = Date.parse(a.end);
    const now = Math.min(Date.now(), end);
    const step = end - start > 3 * 86400e3 ? "1d" : "1h";
    const summary = h("p", { class: a.exceeded ? "error" : "" },
      h("strong", { id: "allowance-used", "data-value": a.used_kg, text: formatMass(a.used_kg) }),
      ` used of ${formatMass(a.allowance_kg)}; projected ${formatMass(a.projected_kg)} at period end`,
      a.runs_out_at ? `; runs out ${formatTime(a.runs_out_at)}` : "", a.exceeded ? " — exceeded" : "");
    const chart = h("div", { class: "chartbox" });
    box.replaceChildren(summary, chart);
    let cumulative = [[start, 0]];
    try {
      const hist = await get("/v1/history", { from: new Date(start).toISOString(),
        to: new Date(Math.max(now, start + 1)).toISOString(), step });
      let sum = 0;
      const width = step === "1d" ? 86400e3 : 3600e3;
      for (const b of hist.buckets) {
        // nothing was emitted before a bucket starts: the line stays flat until then
        cumulative.push([Math.max(Date.parse(b.start), start), sum]);
        sum += b.co2e_kg;
        cumulative.push([Math.min(Date.parse(b.start) + width, now), sum]);
      }
    } catch (err) {
      cumulative = [[start, 0], [now, a.used_kg]];
    }
    lineChart(chart, [
      { name: "used", points: cumulative, color: "#4fc38a" },
      { name: "projection", points: [[now, a.used_kg], [end, a.projected_kg]], color: "#f2b84b", dashed: true },
    ], { unit: "kg CO2e", xMin: start, xMax: end, label: "allowance burn-down",
      lines: [{ name: `allowance ${formatMass(a.allowance_kg)}`, value: a.allowance_kg, color: "#e8707a" }] });
  }

  async function loadBreakdown() {
    try {
      const b = await get("/v1/balance", { period: breakdownPeriod });
      barList(document.getElementById("breakdown-area"), b.areas.map((a) => ({ name: a.area, value: a.co2e_kg,
        href: `#/area/${encodeURIComponent(a.area)}` })), formatMass);
      barList(document.getElementById("breakdown-carrier"), b.carriers.map((c) => ({ name: c.carrier, value: c.co2e_kg,
        label: `${c.carrier} (${energyText(c)}; ${formatCoal(c.energy_kgce)})` })), formatMass);
      const rows = (b.intensity || []).filter((i) => i.co2e_kg_per_unit !== null);
      barList(document.getElementById("breakdown-intensity"), rows.map((i) => ({ name: `${i.level}:${i.name}`,
        value: i.co2e_kg_per_unit, label: `${i.level} ${i.name} (${formatNumber(i.kgce_per_unit,
          `kgce/${i.production_unit}`, 3)})`, unit: i.production_unit })),
      (v, item) => formatNumber(v, `kg CO2e/${item.unit}`, 3));
      barList(document.getElementById("breakdown-scope"), b.scopes.map((s) => ({ name: s.scope, value: s.co2e_kg,
        label: s.scope.replace(/^scope(\d)/, "scope $1").replaceAll("_", " ") })), formatMass);
    } catch (err) {
      showError(document.getElementById("breakdown-area"), err);
    }
  }

  async function loadAlerts() {
    const box = document.getElementById("alerts");
    try {
      const [firing, acked] = await Promise.all([get("/v1/alerts", { state: "firing" }),
        get("/v1/alerts", { state: "acknowledged" })]);
      const alerts = [...firing.alerts, ...acked.alerts].sort((a, b) => b.id - a.id);
      if (!alerts.length) {
        box.replaceChildren(h("p", { class: "muted", id: "no-alerts", text: "No active alerts." }));
        return;
      }
      box.replaceChildren(h("ul", { class: "alerts" }, ...alerts.map(alertItem)));
    } catch (err) {
      showError(box, err);
    }
  }

  function alertItem(a) {
    const form = h("form", { class: "ack-form", hidden: true },
      h("input", { name: "comment", required: true, maxlength: 2000, placeholder: "what was done (required)",
        "aria-label": "acknowledgement comment" }),
      h("button", { type: "submit", class: "ack-submit", text: "Acknowledge" }),
      h("span", { class: "error ack-error", role: "alert" }));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      try {
        await post(`/v1/alerts/${a.id}/acknowledge`, { comment: form.elements.comment.value });
        await loadAlerts();
      } catch (err) {
        form.querySelector(".ack-error").textContent = err.message;
      }
    });
    const button = a.state === "firing" ? h("button", { type: "button", class: "ack", text: "Acknowledge…",
      onclick: () => { form.hidden = false; form.elements.comment.focus(); } }) : null;
    return h("li", { class: `alert ${a.severity} ${a.state}`, "data-alert-id": a.id, "data-state": a.state },
      h("div", { class: "alert-head" },
        h("span", { class: "sev", text: a.severity }),
        h("strong", { text: `${a.rule} (v${a.rule_version})` }),
        h("span", { class: "muted", text: ` on ${a.target}` }),
        h("span", { class: "state", text: a.state })),
      h("div", { class: "muted", text: `${formatNumber(a.value, a.unit, 2)} since ${formatTime(a.fired_at)}` +
        (a.acknowledged_by ? ` · acknowledged by ${a.acknowledged_by}: ${a.ack_comment}` : "") }),
      button, form);
  }

  async function loadMeters() {
    const box = document.getElementById("meters");
    try {
      const m = await get("/v1/meters");
      box.replaceChildren(meterTable(m.meters));
      const power = m.meters.reduce((s, x) => s + (x.power_kw || 0), 0);
      setKpi("kpi-power", power, formatNumber(power, "kW"), `${m.meters.filter((x) => x.status === "ok").length} of ` +
        `${m.meters.length} meters reporting`);
    } catch (err) {
      showError(box, err);
    }
  }

  async function refresh() {
    try {
      const [today, month] = await Promise.all([get("/v1/balance", { period: "today" }),
        get("/v1/balance", { period: "month" })]);
      showBalance(today, month);
    } catch (err) {
      ctx.fail(err);
    }
    await Promise.all([loadBreakdown(), loadAlerts(), loadMeters(), loadHeldFigure(), held.refresh()]);
  }

  async function loadHeldFigure() {
    try {
      const t = await get("/v1/held/totals");
      setKpi("kpi-held", t.co2e_kg, formatMass(t.co2e_kg), t.records ?
        `${t.records} open records: release or reject below` : "nothing held");
    } catch (err) {
      setKpi("kpi-held", null, "–", err.message);
    }
  }

  drawLive();
  seedLive();
  refresh();
  const redraw = () => drawLive();
  window.addEventListener("resize", redraw);
  return {
    refresh,
    onEvent(name, data) {
      if (name === "balance") {
        addLive(Date.parse(data.at), data.co2e_rate_kg_per_h);
        drawLive();
        setKpi("kpi-rate", data.co2e_rate_kg_per_h, formatNumber(data.co2e_rate_kg_per_h, "kg/h", 2), "live");
        setKpi("kpi-power", data.power_kw, formatNumber(data.power_kw, "kW"));
      } else if (name === "meter") {
        const row = document.querySelector(`#meters tr[data-meter="${CSS.escape(data.meter)}"]`);
        if (row) {
          row.querySelector(".power").textContent = formatNumber(data.power_kw, "kW");
          row.querySelector(".power").dataset.value = data.power_kw ?? "";
          row.querySelector(".rate").textContent = formatNumber(data.co2e_rate_kg_per_h, "kg/h", 2);
          row.querySelector(".last").textContent = formatTime(data.ts);
        }
      } else if (name === "alert") {
        loadAlerts();
      }
    },
    dispose() {
      window.removeEventListener("resize", redraw);
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
/** An area (kind "area") or a meter (kind "meter"): balance, history chart with period and resolution, CSV. */
export function drill(root, ctx, kind, id) {
  const state = { period: "today", step: defaultStep("today"), from: "", to: "" };
  const filter = { [kind]: id };
  const held = kind === "meter" ? heldCard(id, () => load()) : null;
  const controls = periodControls(state, () => load());
  const csv = h("button", { type: "button", id: "csv", class: "ghost", text: "Export CSV" });
  root.replaceChildren(
    h("div", { class: "title" }, h("h1", { text: `${kind} ${id}` }), controls, csv),
    h("div", { class: "kpis" }, kpi("kpi-total", "Emissions (location-based)"), kpi("kpi-market", "Market-based"),
      kpi("kpi-energy", "Energy"), kpi("kpi-completeness", "Data completeness"),
      kpi("kpi-estimated", "Of it estimated"), kpi("kpi-held", "Held, not counted")),
    h("div", { class: "grid" },
      card("history-card", "CO2e per interval", h("div", { id: "history-chart", class: "chartbox" })),
      card("energy-card", "Energy per interval", h("div", { id: "energy-chart", class: "chartbox" })),
      kind === "meter" ? card("factors", "Factors behind the figure", h("div", { id: "factor-list" })) : null),
    ...(kind === "area" ? [card("area-meters", "Meters", h("div", { id: "meters" }))] : []),
    held ? held.node : null);
  csv.addEventListener("click", async () => {
    try {
      await downloadCsv("/v1/history", { ...periodParams(state), step: state.step, group: "meter", ...filter });
    } catch (err) {
      ctx.fail(err);
    }
  });

  async function load() {
    const params = periodParams(state);
    try {
      const b = await get("/v1/balance", { ...params, ...filter });
      setKpi("kpi-total", b.co2e_kg, formatMass(b.co2e_kg), `${b.period.name}: ${formatTime(b.period.start)} – ` +
        formatTime(b.period.end));
      setKpi("kpi-market", b.market_based.co2e_kg, formatMass(b.market_based.co2e_kg),
        b.market_based.complete ? "" : "some meters have no market-based factor");
      setKpi("kpi-energy", b.energy_kgce, b.carriers.map(energyText).join(" · ") || "–",
        `${b.carriers.map((c) => c.carrier).join(", ")}; ${formatCoal(b.energy_kgce)}`);
      setKpi("kpi-completeness", b.completeness, percent(b.completeness), "stored / expected samples");
      setKpi("kpi-estimated", b.estimated_co2e_kg, formatMass(b.estimated_co2e_kg),
        b.carriers.filter((c) => c.estimated_energy).map((c) => formatNumber(c.estimated_energy, c.energy_unit, 3))
          .join(" · ") || "nothing estimated (no gaps spread)");
      setKpi("kpi-held", b.held_co2e_kg, formatMass(b.held_co2e_kg), b.held_records ?
        `${b.held_records} open records in the period: ` + b.carriers.filter((c) => c.held_energy)
          .map((c) => formatNumber(c.held_energy, c.energy_unit, 3)).join(" · ") : "nothing held in the period");
      if (kind === "meter") {
        const m = b.meters[0];
        document.getElementById("factor-list").replaceChildren(m ? h("ul", {},
          ...m.factor_ids.map((f) => h("li", { text: f })),
          ...m.factor_versions.map((v) => h("li", { class: "muted", text: `factor set version ${v}` })),
          h("li", { class: "kgce", text: m.kgce_coefficient_id ? `standard coal: ${m.kgce_coefficient_id} ` +
            `(${formatCoal(m.energy_kgce)}; ${m.kgce_version})` : `standard coal: ${m.kgce_refused || "–"}` })) :
          h("p", { class: "muted", text: "no data in this period" }));
      }
    } catch (err) {
      showError(document.getElementById("history-chart"), err);
      return;
    }
    try {
      const hist = await get("/v1/history", { ...params, step: state.step, group: "meter", ...filter });
      const bySeries = new Map();
      const energy = new Map();
      for (const b of hist.buckets) {
        if (!bySeries.has(b.boundary)) bySeries.set(b.boundary, []);
        bySeries.get(b.boundary).push([Date.parse(b.start), b.co2e_kg]);
        const key = `${b.boundary} (${b.energy_unit})`;
        if (!energy.has(key)) energy.set(key, []);
        energy.get(key).push([Date.parse(b.start), b.energy]);
      }
      const xMin = Date.parse(hist.start);
      const xMax = Math.min(Date.parse(hist.end), Date.now());
      lineChart(document.getElementById("history-chart"), [...bySeries].map(([name, points]) => ({ name, points })),
        { unit: `kg CO2e per ${state.step}`, xMin, xMax, label: "CO2e history" });
      lineChart(document.getElementById("energy-chart"), [...energy].map(([name, points]) => ({ name, points })),
        { unit: `energy per ${state.step}`, xMin, xMax, label: "energy history" });
    } catch (err) {
      showError(document.getElementById("history-chart"), err);
      document.getElementById("energy-chart").replaceChildren();
    }
    if (kind === "area") {
      try {
        const m = await get("/v1/meters", params);
        document.getElementById("meters").replaceChildren(meterTable(m.meters.filter((x) => x.area === id)));
      } catch (err) {
        showError(document.getElementById("meters"), err);
      }
    }
  }

  load();
  if (held) held.refresh();
  return { refresh: () => Promise.all([load(), held ? held.refresh() : null]), onEvent() {}, dispose() {} };
}
