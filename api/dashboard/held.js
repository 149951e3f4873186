// Held energy on the dashboard: records measured but not counted (why, how much, since when), with release and
// reject for engineers (a note is required; release may name where the energy counts), and the decided ones.

import { get, post } from "./api.js";
import { formatMass, formatNumber, formatTime } from "./charts.js";
import { card, h, showError } from "./dom.js";

const STATES = [["open", "open"], ["released", "released"], ["rejected", "rejected"], ["", "all"]];

/** A `datetime-local` value (the browser's zone) as ISO 8601 UTC, or null when empty. */
function isoOf(local) {
  if (!local) return null;
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

function decisionForm(rec, action, done) {
  const release = action === "release";
  const form = h("form", { class: "held-form", "data-action": action },
    h("input", { name: "note", required: true, maxlength: 2000, "aria-label": `${action} note`,
      placeholder: release ? "why the energy is real (required)" : "why it is not real (required)" }),
    release ? h("label", { class: "muted" }, "count at ",
      h("input", { name: "counted", type: "datetime-local", step: 1, "aria-label": "count at (optional)" })) : null,
    h("button", { type: "submit", class: `held-submit ${release ? "" : "ghost"}`,
      text: release ? "Release" : "Reject" }),
    h("button", { type: "button", class: "ghost", text: "Cancel", onclick: () => form.remove() }),
    h("span", { class: "error held-error", role: "alert" }));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = { note: form.elements.note.value };
    const counted = release ? isoOf(form.elements.counted.value) : null;
    if (counted) body.counted_ts = counted;
    try {
      await post(`/v1/held/${rec.id}/${action}`, body);
      await done();
    } catch (err) {
      form.querySelector(".held-error").textContent = err.message;
    }
  });
  return form;
}

function decided(rec) {
  if (rec.status === "open") return "";
  const where = rec.status === "released" && rec.counted_ts ? `, counts at ${formatTime(rec.counted_ts)}` : "";
  return `${rec.status} by ${rec.decided_by} ${formatTime(rec.decided)}${where}: ${rec.note}`;
}

function row(rec, done) {
  const actions = h("td", { class: "held-actions" });
  const tr = h("tr", { "data-held-id": rec.id, "data-status": rec.status },
    h("td", { text: formatTime(rec.ts), title: rec.ts }),
    h("td", {}, h("a", { href: `#/meter/${encodeURIComponent(rec.meter)}`, text: rec.meter })),
    h("td", { class: "num energy", "data-value": rec.energy, text: formatNumber(rec.energy, rec.energy_unit, 3) }),
    h("td", { class: "num co2e", "data-value": rec.co2e_kg ?? "", text: formatMass(rec.co2e_kg) }),
    h("td", { class: "reason", text: rec.reason }),
    h("td", { class: `state ${rec.status}`, text: rec.status === "open" ? "open" : decided(rec) }),
    actions);
  if (rec.status === "open") {
    const open = (action) => () => {
      actions.querySelectorAll("form").forEach((f) => f.remove());
      const form = decisionForm(rec, action, done);
      actions.append(form);
      form.elements.note.focus();
    };
    actions.append(h("button", { type: "button", class: "held-release", text: "Release…", onclick: open("release") }),
      h("button", { type: "button", class: "ghost held-reject", text: "Reject…", onclick: open("reject") }));
  }
  return tr;
}

/**
 * The held-energy card (all meters, or one): a state filter and the records, newest first.
 * `onDecided` is called after a release or reject and the card's own refresh (the view's other figures change).
 */
export function heldCard(meter, onDecided) {
  const state = h("select", { name: "held-state", "aria-label": "held records in state" },
    ...STATES.map(([v, t]) => h("option", { value: v, text: t })));
  const summary = h("p", { class: "muted", id: "held-summary" });
  const list = h("div", { id: "held-list", class: "scroll" });
  const node = card("held-card", "Held energy (measured, not counted)",
    h("div", { class: "controls" }, h("label", {}, "state ", state)), summary, list);

  // A periodic refresh leaves the list alone while someone is writing a note (their form would vanish);
  // a decision refreshes it at once (force).
  async function refresh(force = false) {
    const writing = !force && list.querySelector(".held-form");
    try {
      const [page, totals] = await Promise.all([
        get("/v1/held", { status: state.value, meter, limit: 200 }), get("/v1/held/totals")]);
      const mine = meter ? totals.meters.filter((t) => t.meter === meter) : totals.meters;
      const records = mine.reduce((s, t) => s + t.records, 0);
      summary.textContent = records ? `${records} open: ` + mine.map((t) =>
        `${t.meter} ${formatNumber(t.energy, t.energy_unit, 3)} (${formatMass(t.co2e_kg)})`).join(" · ") :
        "Nothing is held: all measured energy is counted.";
      summary.dataset.records = String(records);
      if (writing) return;
      if (!page.records.length) {
        list.replaceChildren(h("p", { class: "muted", id: "no-held", text: "No records in this state." }));
        return;
      }
      const head = h("tr", {}, ...["time", "meter", "energy", "CO2e", "why held", "state", ""]
        .map((t) => h("th", { scope: "col", text: t })));
      list.replaceChildren(h("table", { class: "held" }, h("thead", {}, head),
        h("tbody", {}, ...page.records.map((rec) => row(rec, async () => {
          await refresh(true);
          if (onDecided) await onDecided();
        })))));
    } catch (err) {
      showError(list, err);
    }
  }

  state.addEventListener("change", () => refresh(true));
  return { node, refresh };
}
