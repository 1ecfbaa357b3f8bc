// DOM building, formatting and the API client shared by every view.
// Every string reaches the page as a text node or an attribute value, never as markup: prompts can hold HTML.

const SVG_NS = "http://www.w3.org/2000/svg";

function build(el, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** An HTML element: h("td", {class: "num"}, "12"). Strings become text nodes. */
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** An SVG element, same calling convention as h(). */
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

/** Append children to an existing element, skipping null/undefined/false like h() does. */
export function add(el, ...children) {
  return build(el, null, children);
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

// ------------------------------------------------------------------------------------------------ formatting

const INT = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const SMALL = new Intl.NumberFormat("en-US", { maximumSignificantDigits: 3, maximumFractionDigits: 10 });
const DASH = "—";

export function fmtInt(n) {
  return n === null || n === undefined ? DASH : INT.format(n);
}

/** USD: cents for dollars, four decimals for cents, three significant digits below a cent. */
export function fmtCost(v) {
  if (v === null || v === undefined) return DASH;
  if (v === 0) return "$0";
  const abs = Math.abs(v);
  if (abs >= 1) return "$" + v.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  if (abs >= 0.01) return "$" + v.toFixed(4);
  return "$" + SMALL.format(v);
}

/** Cost that never reads $0 for calls without a price: the priced cost, and the unpriced calls beside it. */
export function costNodes(cost, unpriced) {
  if (!unpriced) return fmtCost(cost);
  const n = h("span", { class: "unpriced" }, `+ ${fmtInt(unpriced)} unpriced`);
  return cost === null || cost === undefined ? n : [fmtCost(cost), " ", n];
}

/** A ratio as a percentage; unknown (no input) stays unknown. */
export function fmtPct(ratio) {
  return ratio === null || ratio === undefined ? DASH : `${(ratio * 100).toFixed(ratio < 0.1 ? 1 : 0)}%`;
}

export function fmtMs(ms) {
  if (ms === null || ms === undefined) return DASH;
  if (ms !== 0 && Math.abs(ms) < 10) return `${ms.toFixed(1)} ms`;
  if (Math.abs(ms) < 1000) return `${Math.round(ms)} ms`;
  if (Math.abs(ms) < 60000) return `${(ms / 1000).toFixed(2)} s`;
  return fmtSpan(ms / 1000);
}

/** A span of seconds as "42s", "3m 05s", "2h 07m". */
export function fmtSpan(seconds) {
  if (seconds === null || seconds === undefined) return DASH;
  const t = Math.max(0, Math.round(seconds));
  if (t < 60) return `${t}s`;
  if (t < 3600) return `${Math.floor(t / 60)}m ${String(t % 60).padStart(2, "0")}s`;
  return `${Math.floor(t / 3600)}h ${String(Math.floor((t % 3600) / 60)).padStart(2, "0")}m`;
}

const pad = (n) => String(n).padStart(2, "0");

/** Epoch seconds as local time; the date is added when it is not today. */
export function fmtTime(epoch) {
  if (!epoch) return DASH;
  const d = new Date(epoch * 1000);
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  const today = new Date();
  if (d.toDateString() === today.toDateString()) return time;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}`;
}

export function isoTime(epoch) {
  return epoch ? new Date(epoch * 1000).toISOString() : "";
}

export function isError(row) {
  return (row.status_code ?? 0) >= 400 || !!row.error_type;
}

export function statusBadge(row) {
  const err = isError(row);
  return h(
    "span",
    { class: `badge ${err ? "bad" : "ok"}`, title: row.error_type || null, "data-testid": "status" },
    String(row.status_code ?? DASH),
  );
}

/** A number cell that keeps the exact value in data-value (tests and copy-paste use it). */
export function num(text, value, attrs = {}) {
  return h("td", { class: "num", "data-value": value ?? "", ...attrs }, text);
}

export function pretty(value) {
  if (typeof value === "string") {
    try {
      return JSON.stringify(JSON.parse(value), null, 2);
    } catch {
      return value;
    }
  }
  return JSON.stringify(value, null, 2);
}

// ------------------------------------------------------------------------------------------------ routing

export function hashFor(view, id, params) {
  let out = `#/${view}`;
  if (id !== undefined && id !== null) out += `/${encodeURIComponent(id)}`;
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v) qs.set(k, v);
  const q = qs.toString();
  return q ? `${out}?${q}` : out;
}

// ------------------------------------------------------------------------------------------------ API

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** GET a JSON API path (relative to the page, so a reverse-proxy prefix keeps working). */
export async function api(path, params) {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== null && v !== undefined && v !== "") qs.set(k, v);
  }
  const q = qs.toString();
  const resp = await fetch(q ? `${path}?${q}` : path, {
    headers: { accept: "application/json" },
    credentials: "same-origin",
    cache: "no-store",
    signal: AbortSignal.timeout(15000), // a hung request must not stall the poller for good
  });
  let body = null;
  try {
    body = await resp.json();
  } catch {
    body = null;
  }
  if (!resp.ok) throw new ApiError(resp.status, body?.error?.message || `HTTP ${resp.status}`);
  return body;
}
