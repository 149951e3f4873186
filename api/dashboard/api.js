// The API client of the dashboard: the key (kept in this tab's sessionStorage), JSON and CSV calls, and the
// live stream (Server-Sent Events read through fetch, because EventSource cannot send an Authorization header).

const KEY_ITEM = "carbonwatch.apiKey";
let site = ""; // the site every call is about (sites.js sets it); "" = the server's own

export function setSite(id) {
  site = id || "";
}

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

export function getKey() {
  return sessionStorage.getItem(KEY_ITEM);
}

export function setKey(key) {
  sessionStorage.setItem(KEY_ITEM, key);
}

export function clearKey() {
  sessionStorage.removeItem(KEY_ITEM);
}

/** A key handed over in the URL fragment (`/#key=cw_...`, as `carbonwatch run` prints it) is taken and erased. */
export function takeKeyFromFragment() {
  const match = location.hash.match(/^#key=([A-Za-z0-9_\-.~]+)/);
  if (!match) return false;
  setKey(decodeURIComponent(match[1]));
  history.replaceState(null, "", location.pathname + location.search + "#/");
  return true;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const text = q.toString();
  return text ? `?${text}` : "";
}

async function detailOf(resp) {
  try {
    const body = await resp.json();
    if (typeof body.detail === "string") return body.detail;
    if (Array.isArray(body.detail)) return body.detail.map((d) => `${(d.loc || []).join(".")}: ${d.msg}`).join("; ");
    return JSON.stringify(body);
  } catch {
    return `${resp.status} ${resp.statusText}`;
  }
}

async function call(method, path, params, body, accept) {
  const key = getKey();
  if (!key) throw new ApiError(401, "no API key");
  const headers = { Authorization: `Bearer ${key}`, Accept: accept };
  const init = { method, headers, cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(path + query({ site, ...params }), init);
  if (!resp.ok) throw new ApiError(resp.status, await detailOf(resp));
  return resp;
}

export async function get(path, params) {
  return (await call("GET", path, params, undefined, "application/json")).json();
}

export async function post(path, body) {
  return (await call("POST", path, undefined, body, "application/json")).json();
}

/** Download a CSV the API makes (the key goes in a header, so a plain link cannot do it). */
export async function downloadCsv(path, params) {
  const resp = await call("GET", path, { ...params, format: "csv" }, undefined, "text/csv");
  const text = await resp.text();
  const disposition = resp.headers.get("Content-Disposition") || "";
  const name = (disposition.match(/filename="([^"]+)"/) || [])[1] || "carbonwatch.csv";
  const url = URL.createObjectURL(new Blob([text], { type: "text/csv" }));
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
  return { name, text };
}

/**
 * Follow /v1/stream: calls onEvent(name, data) per event and onState("on"|"off"|"auth") as the link changes.
 * Reconnects with capped, jittered backoff; returns a function that stops it.
 */
export function stream(onEvent, onState) {
  let stopped = false;
  let controller = null;
  let delay = 1000;

  async function once() {
    controller = new AbortController();
    const resp = await fetch("/v1/stream" + query({ site, meters: "all" }), {   // the meter table: every meter once a second
      headers: { Authorization: `Bearer ${getKey()}`, Accept: "text/event-stream" },
      signal: controller.signal,
      cache: "no-store",
    });
    if (resp.status === 401) {
      onState("auth");
      stopped = true;
      return;
    }
    if (!resp.ok || !resp.body) throw new ApiError(resp.status, await detailOf(resp));
    onState("on");
    delay = 1000;
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const frame = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        let name = "message";
        const data = [];
        for (const line of frame.split("\n")) {
          if (line.startsWith("event:")) name = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
        }
        if (data.length === 0) continue; // a comment (keepalive)
        try {
          onEvent(name, JSON.parse(data.join("\n")));
        } catch (err) {
          console.warn("carbonwatch: bad stream event", name, err);
        }
      }
    }
  }

  (async () => {
    while (!stopped) {
      try {
        await once();
      } catch (err) {
        if (stopped) break;
        console.info("carbonwatch: live stream interrupted:", err.message);
      }
      if (stopped) break;
      onState("off");
      await new Promise((r) => setTimeout(r, delay * (0.75 + Math.random() / 2)));
      delay = Math.min(delay * 2, 30_000);
    }
  })();

  return () => {
    stopped = true;
    if (controller) controller.abort();
  };
}
