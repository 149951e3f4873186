// Small DOM helpers shared by the dashboard's views: element building, cards, KPI boxes and error boxes.

import { ApiError } from "./api.js";

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k.startsWith("data-")) node.dataset[k.slice(5).replace(/-(.)/g, (_, c) => c.toUpperCase())] = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

export function card(id, title, ...body) {
  return h("section", { class: "card", id }, h("h2", { text: title }), ...body);
}

export function kpi(id, label) {
  return h("div", { class: "kpi", id }, h("span", { class: "kpi-label", text: label }),
    h("span", { class: "kpi-value", text: "…" }), h("span", { class: "kpi-note" }));
}

export function setKpi(id, value, text, note) {
  const box = document.getElementById(id);
  if (!box) return;
  const v = box.querySelector(".kpi-value");
  v.textContent = text;
  v.dataset.value = value === null || value === undefined ? "" : String(value);
  if (note !== undefined) box.querySelector(".kpi-note").textContent = note;
}

export function showError(box, err) {
  box.replaceChildren(h("p", { class: "error", role: "alert", text: err instanceof ApiError ?
    `${err.status}: ${err.message}` : String(err.message || err) }));
}
