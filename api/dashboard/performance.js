// The performance view (#/performance, #/performance/ID): a stored baseline's actual against expected energy
// (ISO 50006) over today, this month or this year: deviation, EnPI, CO2e, and the actual/expected and CUSUM charts.

import { get } from "./api.js";
import { formatMass, formatNumber, lineChart } from "./charts.js";
import { card, h, kpi, setKpi, showError } from "./dom.js";

const PERIODS = ["today", "month", "year"];
const RESOLUTIONS = [["hourly", "1 hour"], ["daily", "1 day"], ["monthly", "1 month"]];

function signed(value, unit, digits = 1) {
  if (value === null || value === undefined) return "–";
  return `${value > 0 ? "+" : ""}${formatNumber(value, unit, digits)}`;
}

function select(name, label, options, selected) {
  return h("label", {}, `${label} `, h("select", { name, "aria-label": label },
    ...options.map(([v, t]) => h("option", { value: v, text: t, selected: v === selected }))));
}

/** The view: `id` is the baseline shown (null: the first one in force). */
export function performanceView(root, ctx, id) {
  const state = { baseline: id, period: "month", resolution: "daily" };
  const pick = h("span", { id: "baseline-pick" });
  const form = h("form", { class: "controls", onsubmit: (e) => e.preventDefault() }, pick,
    select("period", "period", PERIODS.map((p) => [p, p]), state.period),
    select("resolution", "resolution", RESOLUTIONS, state.resolution));
  const model = h("p", { class: "muted", id: "baseline-model" });
  root.replaceChildren(
    h("div", { class: "title" }, h("h1", { text: "Energy performance" }), form),
    model,
    h("div", { class: "kpis" }, kpi("kpi-actual", "Actual energy"), kpi("kpi-expected", "Expected energy"),
      kpi("kpi-deviation", "Deviation"), kpi("kpi-enpi", "EnPI (actual / expected)"),
      kpi("kpi-co2e", "Actual CO2e"), kpi("kpi-co2e-deviation", "CO2e above expected")),
    h("div", { class: "grid" },
      card("avse-card", "Actual and expected energy", h("div", { id: "avse-chart", class: "chartbox" })),
      card("cusum-card", "CUSUM (running actual − expected)", h("div", { id: "cusum-chart", class: "chartbox" }))));
  form.addEventListener("change", () => {
    state.period = form.elements.period.value;
    state.resolution = form.elements.resolution.value;
    if (form.elements.baseline) state.baseline = form.elements.baseline.value;
    load();
  });

  async function load() {
    let baselines;
    try {
      baselines = await get("/v1/baselines");
    } catch (err) {
      showError(document.getElementById("avse-chart"), err);
      return;
    }
    if (!baselines.length) {
      pick.replaceChildren();
      model.textContent = "No baseline yet: an engineer fits one with POST /v1/baselines (see the README).";
      model.id = "no-baseline";
      return;
    }
    model.id = "baseline-model";
    if (!baselines.some((b) => b.id === state.baseline)) state.baseline = baselines[0].id;
    pick.replaceChildren(select("baseline", "baseline", baselines.map((b) => [b.id, b.id]), state.baseline));
    const b = baselines.find((x) => x.id === state.baseline);
    const s = b.model.stats;
    model.textContent = `${b.model.subject} · ${b.model.carrier} · version ${b.version} · energy = ` +
      b.model.terms.map((t) => t.name === "intercept" ? `${t.value.toFixed(2)}` :
        `${t.value.toFixed(3)} × ${t.name}`).join(" + ") +
      ` (per ${b.model.resolution.replace("ly", "").replace("dai", "day")}; R² ${s.r2.toFixed(3)}, ` +
      `CV(RMSE) ${(s.cv_rmse * 100).toFixed(1)} %)`;
    try {
      const p = await get("/v1/performance", { baseline: state.baseline, period: state.period,
        resolution: state.resolution });
      const u = p.units.energy;
      const t = p.totals;
      setKpi("kpi-actual", t.actual_energy, formatNumber(t.actual_energy, u));
      setKpi("kpi-expected", t.expected_energy, formatNumber(t.expected_energy, u),
        `baseline ${p.baseline} v${p.baseline_version}`);
      setKpi("kpi-deviation", t.deviation_energy, signed(t.deviation_energy, u),
        t.deviation_pct === null ? "nothing expected" : `${signed(t.deviation_pct, "%")}`);
      setKpi("kpi-enpi", t.enpi, t.enpi === null ? "–" : t.enpi.toFixed(3), "below 1: better than the baseline");
      setKpi("kpi-co2e", t.actual_co2e_kg, formatMass(t.actual_co2e_kg), `expected ${formatMass(t.expected_co2e_kg)}`);
      setKpi("kpi-co2e-deviation", t.deviation_co2e_kg, formatMass(t.deviation_co2e_kg));
      const x = p.series.start.map((iso) => Date.parse(iso));
      const xMin = Date.parse(p.start);
      const xMax = Math.min(Date.parse(p.end), Date.now());
      const upTo = x.filter((ms) => ms < xMax).length;  // no future periods: they have no actual yet
      const pts = (values) => values.slice(0, upTo).map((v, i) => [x[i], v]);
      lineChart(document.getElementById("avse-chart"), [
        { name: "actual", points: pts(p.series.actual) },
        { name: "expected", points: pts(p.series.expected), dashed: true }],
      { unit: `${u} per period`, xMin, xMax, label: "actual and expected energy" });
      lineChart(document.getElementById("cusum-chart"), [{ name: "CUSUM", points: pts(p.series.cusum) }],
        { unit: u, xMin, xMax, label: "CUSUM" });
    } catch (err) {
      showError(document.getElementById("avse-chart"), err);
      document.getElementById("cusum-chart").replaceChildren();
    }
  }

  load();
  return { dispose() {}, refresh: load, onEvent() {} };
}
