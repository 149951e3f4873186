// Charts drawn as inline SVG (no library, nothing fetched) and the number formats of the dashboard.
// Every number shown carries its unit; the raw value stays on the element (data-value) for tools and tests.

const SVG = "http://www.w3.org/2000/svg";
export const PALETTE = ["#4fc38a", "#5aa9e6", "#f2b84b", "#e8707a", "#b18be8", "#7fd6d0", "#d9d46a", "#f29bd0"];

/** kg CO2e shown in kg below one tonne and in t above. */
export function formatMass(kg) {
  if (kg === null || kg === undefined || Number.isNaN(kg)) return "–";
  if (Math.abs(kg) < 1000) return `${group(kg, 1)} kg`;
  return `${group(kg / 1000, 3)} t`;
}

export function formatNumber(value, unit, digits = 1) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  return `${group(value, digits)} ${unit}`;
}

function group(value, digits) {
  return value.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function formatTime(iso) {
  if (!iso) return "never";
  const d = new Date(iso);
  return d.toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
    second: "2-digit" });
}

export function percent(ratio) {
  return ratio === null || ratio === undefined ? "–" : `${(ratio * 100).toFixed(1)} %`;
}

function el(name, attrs, parent) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (parent) parent.append(node);
  return node;
}

function niceStep(span, count) {
  const raw = span / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw || 1));
  const norm = raw / mag;
  return (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * mag;
}

function timeLabel(ms, spanMs) {
  const d = new Date(ms);
  if (spanMs <= 36 * 3600e3) return d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
  return d.toLocaleDateString(undefined, { month: "short", day: "numeric" });
}

/**
 * Draw time series into `box` (an element): series = [{name, points: [[ms, value], ...], color, dashed}],
 * opts = {unit, xMin, xMax, lines: [{name, value, color}], label}. Replaces what `box` held.
 */
export function lineChart(box, series, opts = {}) {
  const width = Math.max(280, box.clientWidth || 600);
  const height = opts.height || (width < 500 ? 200 : 260);
  const pad = { left: 58, right: 12, top: 24, bottom: 26 };
  const all = series.flatMap((s) => s.points);
  const lines = opts.lines || [];
  box.replaceChildren();
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img",
    "aria-label": opts.label || "chart", class: "chart" }, box);
  svg.dataset.points = String(all.length);
  if (all.length) svg.dataset.last = String(all.reduce((m, p) => Math.max(m, p[0]), -Infinity));
  if (!all.length && !lines.length) {
    el("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "empty" }, svg).textContent =
      opts.empty || "no data in this period yet";
    return svg;
  }
  const xs = all.map((p) => p[0]);
  const xMin = opts.xMin ?? Math.min(...xs);
  let xMax = opts.xMax ?? Math.max(...xs);
  if (xMax <= xMin) xMax = xMin + 60e3;
  const ys = [...all.map((p) => p[1]), ...lines.map((l) => l.value), 0];
  const yMinRaw = Math.min(...ys);
  const yMaxRaw = Math.max(...ys);
  const step = niceStep((yMaxRaw - yMinRaw) || Math.abs(yMaxRaw) || 1, 4);
  const yMin = Math.floor(yMinRaw / step) * step;
  const yMax = Math.max(Math.ceil(yMaxRaw / step) * step, yMin + step);
  const X = (t) => pad.left + ((t - xMin) / (xMax - xMin)) * (width - pad.left - pad.right);
  const Y = (v) => height - pad.bottom - ((v - yMin) / (yMax - yMin)) * (height - pad.top - pad.bottom);

  for (let v = yMin; v <= yMax + step / 2; v += step) {
    el("line", { x1: pad.left, x2: width - pad.right, y1: Y(v), y2: Y(v), class: "grid" }, svg);
    el("text", { x: pad.left - 6, y: Y(v) + 4, "text-anchor": "end", class: "tick" }, svg).textContent =
      Math.abs(step) < 1 ? v.toFixed(2) : v.toLocaleString("en-US", { maximumFractionDigits: 0 });
  }
  const ticks = Math.max(2, Math.floor((width - pad.left) / 110));
  for (let i = 0; i <= ticks; i++) {
    const t = xMin + ((xMax - xMin) * i) / ticks;
    el("text", { x: X(t), y: height - 6, "text-anchor": i === 0 ? "start" : i === ticks ? "end" : "middle",
      class: "tick" }, svg).textContent = timeLabel(t, xMax - xMin);
  }
  if (opts.unit) {
    el("text", { x: 4, y: 2, class: "unit", "dominant-baseline": "hanging" }, svg).textContent = opts.unit;
  }
  for (const line of lines) {
    el("line", { x1: pad.left, x2: width - pad.right, y1: Y(line.value), y2: Y(line.value), stroke: line.color,
      class: "limit" }, svg);
    el("text", { x: width - pad.right - 4, y: Y(line.value) - 5, "text-anchor": "end", fill: line.color,
      class: "tick" }, svg).textContent = line.name;
  }
  series.forEach((s, i) => {
    const pts = [...s.points].sort((a, b) => a[0] - b[0]);
    if (!pts.length) return;
    const color = s.color || PALETTE[i % PALETTE.length];
    const d = pts.map((p, j) => `${j ? "L" : "M"}${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join("");
    const path = el("path", { d, stroke: color, class: s.dashed ? "series dashed" : "series" }, svg);
    path.dataset.series = s.name;
    if (pts.length === 1) el("circle", { cx: X(pts[0][0]), cy: Y(pts[0][1]), r: 3, fill: color }, svg);
  });
  if (series.length > 1 || lines.length) legend(box, series, lines);
  return svg;
}

function legend(box, series, lines) {
  const list = document.createElement("ul");
  list.className = "legend";
  const items = [...series.map((s, i) => [s.name, s.color || PALETTE[i % PALETTE.length], s.dashed]),
    ...lines.map((l) => [l.name, l.color, false])];
  for (const [name, color, dashed] of items) {
    const li = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = dashed ? "swatch dashed" : "swatch";
    swatch.style.borderColor = color;
    li.append(swatch, document.createTextNode(name));
    list.append(li);
  }
  box.append(list);
}

/** Horizontal bars: items = [{name, value, label, href}]; each row keeps its raw value in data-value. */
export function barList(box, items, format) {
  box.replaceChildren();
  if (!items.length) {
    const p = document.createElement("p");
    p.className = "muted";
    p.textContent = "nothing yet";
    box.append(p);
    return;
  }
  const max = Math.max(...items.map((i) => Math.abs(i.value)), 1e-12);
  const list = document.createElement("ul");
  list.className = "bars";
  items.forEach((item, i) => {
    const li = document.createElement("li");
    li.dataset.name = item.name;
    li.dataset.value = String(item.value);
    const name = document.createElement(item.href ? "a" : "span");
    name.className = "bar-name";
    name.textContent = item.label || item.name;
    name.title = name.textContent;
    if (item.href) name.href = item.href;
    const track = document.createElement("span");
    track.className = "bar-track";
    const fill = document.createElement("span");
    fill.className = "bar-fill";
    fill.style.width = `${(Math.abs(item.value) / max) * 100}%`;
    fill.style.background = PALETTE[i % PALETTE.length];
    track.append(fill);
    const value = document.createElement("span");
    value.className = "bar-value";
    value.textContent = format(item.value, item);
    li.append(name, track, value);
    list.append(li);
  });
  box.append(list);
}
