// The dashboard's entry point: sign-in with an API key, the hash router (#/, #/area/ID, #/meter/ID,
// #/performance/ID), the live stream feeding the current view, and a periodic refresh of the stored figures.

import { ApiError, clearKey, get, getKey, setKey, stream, takeKeyFromFragment } from "./api.js";
import { activityView } from "./activity.js";
import { performanceView } from "./performance.js";
import { recordsView } from "./records.js";
import { ORG, orgView, siteSwitcher } from "./sites.js";
import { drill, overview } from "./views.js";

const REFRESH_MS = 15_000;

const $ = (id) => document.getElementById(id);
let current = null;
let stopStream = null;
let timer = null;
let site = "";

function setLive(state) {
  $("live").dataset.state = state;
  $("live").title = { on: "live stream connected", off: "live stream reconnecting", auth: "key refused" }[state];
  if (state === "auth") signOut("The API refused this key.");
}

function crumbs(parts) {
  const nav = $("crumbs");
  nav.replaceChildren();
  parts.forEach(([text, href], i) => {
    if (i) nav.append(document.createTextNode(" › "));
    const node = document.createElement(href ? "a" : "span");
    node.textContent = text;
    if (href) node.href = href;
    nav.append(node);
  });
}

function fail(err) {
  if (err instanceof ApiError && err.status === 401) {
    signOut("The API refused this key.");
    return;
  }
  const banner = $("fatal");
  banner.textContent = err instanceof ApiError ? `API ${err.status}: ${err.message}` : String(err.message || err);
  banner.hidden = false;
}

async function route() {
  if (!getKey()) return;
  $("fatal").hidden = true;
  if (current) current.dispose();
  const view = $("view");
  const [, kind, raw] = location.hash.match(/^#\/(area|meter)\/(.+)$/) || [];
  const ctx = { fail };
  const perf = location.hash.match(/^#\/performance(?:\/(.+))?$/);
  if (location.hash === "#/activity") {
    crumbs([[site, "#/"], ["activity", null]]);
    current = activityView(view, ctx);
    return;
  }
  if (location.hash === ORG) {
    crumbs([["organisation", null]]);
    current = orgView(view, ctx);
    return;
  }
  if (perf) {
    crumbs([[site, "#/"], ["performance", null]]);
    current = performanceView(view, ctx, perf[1] ? decodeURIComponent(perf[1]) : null);
    return;
  }
  if (location.hash === "#/records") {
    crumbs([[site, "#/"], ["records", null]]);
    current = recordsView(view);
    return;
  }
  if (kind === "meter") {
    const id = decodeURIComponent(raw);
    let area = null;
    try {
      area = (await get(`/v1/meters/${encodeURIComponent(id)}`)).area;
    } catch (err) {
      fail(err);
    }
    crumbs([[site, "#/"], ...(area ? [[area, `#/area/${encodeURIComponent(area)}`]] : []), [id, null]]);
    current = drill(view, ctx, "meter", id);
  } else if (kind === "area") {
    const id = decodeURIComponent(raw);
    crumbs([[site, "#/"], [id, null]]);
    current = drill(view, ctx, "area", id);
  } else {
    crumbs([[site, null]]);
    current = overview(view, ctx);
  }
}

function signOut(message) {
  if (stopStream) stopStream();
  stopStream = null;
  clearInterval(timer);
  clearKey();
  if (current) current.dispose();
  current = null;
  $("view").replaceChildren();
  $("logout").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  $("key-input").value = "";
  $("key-input").focus();
}

async function start() {
  try {
    const health = await fetch("/healthz", { cache: "no-store" }).then((r) => r.json());
    site = health.site;
    await get("/v1/status"); // proves the key before anything is drawn
    site = (await siteSwitcher($("site-switch"), switchSite)) || site;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      signOut("The API refused this key.");
    } else {
      fail(err);
    }
    return;
  }
  document.title = `carbonwatch · ${site}`;
  $("login").hidden = true;
  $("logout").hidden = false;
  await route();
  startStream();
  timer = setInterval(() => current && current.refresh(), REFRESH_MS);
}

/** Another site chosen in the switcher: its stream and its figures. */
function switchSite(id) {
  site = id;
  document.title = `carbonwatch · ${site}`;
  if (stopStream) stopStream();
  stopStream = null;
  startStream();
  if (location.hash && location.hash !== "#/") location.hash = "#/"; // the other site's overview (hashchange routes)
  else route();
}

function startStream() {
  if (!stopStream && getKey()) stopStream = stream((name, data) => current && current.onEvent(name, data), setLive);
}

$("login-form").addEventListener("submit", (e) => {
  e.preventDefault();
  setKey($("key-input").value.trim());
  $("login-error").textContent = "";
  start();
});
$("logout").addEventListener("click", () => signOut(""));
// Close the live stream when the page goes away: a browser keeps at most 6 connections per server, and a stream
// left open by a closed page would count against the next pages.
window.addEventListener("pagehide", () => {
  if (stopStream) stopStream();
  stopStream = null;
});
window.addEventListener("pageshow", (e) => {
  if (e.persisted && current) {
    startStream(); // back from the back/forward cache
    current.refresh();
  }
});
window.addEventListener("hashchange", () => {
  if (takeKeyFromFragment()) location.reload();
  else route();
});

takeKeyFromFragment();
if (getKey()) start();
else signOut("");
