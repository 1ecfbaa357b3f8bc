// #/sessions: sessions by last activity; #/session/<id>: one session as a timeline of its calls with running cost.

import { modelCell, shortId } from "./calls.js";
import { lines } from "./charts.js";
import {
  add, api, clear, fmtCost, fmtInt, fmtMs, fmtSpan, fmtTime, h, hashFor, isoTime, num, statusBadge,
} from "./dom.js";

const DASH = "—";
const MAX_CALLS = 500;

function sessionRow(r) {
  const href = hashFor("session", r.session_id);
  return h(
    "tr",
    { "data-testid": "session-row", "data-session-id": r.session_id, onclick: (e) => {
      if (!e.target.closest("a")) location.hash = href;
    } },
    h("td", { "data-col": "session", title: r.session_id }, h("a", { href }, shortId(r.session_id, 40))),
    h("td", { "data-col": "users" }, (r.users || DASH).split(",").join(", ")),
    h("td", { "data-col": "started", title: isoTime(r.first_seen) }, fmtTime(r.first_seen)),
    h("td", { "data-col": "last", title: isoTime(r.last_seen) }, fmtTime(r.last_seen)),
    num(fmtSpan(r.last_seen - r.first_seen), r.last_seen - r.first_seen, { "data-col": "duration" }),
    num(fmtInt(r.calls), r.calls, { "data-col": "calls" }),
    num(r.errors ? fmtInt(r.errors) : DASH, r.errors, { "data-col": "errors", class: r.errors ? "num bad-text" : "num" }),
    num(fmtInt(r.total_tokens), r.total_tokens, { "data-col": "tokens" }),
    num(fmtCost(r.cost_total), r.cost_total, { "data-col": "cost" }),
  );
}

export async function sessionsView(main, ctx) {
  const body = h("tbody", { id: "sessions-body" });
  const summary = h("span", { class: "muted", "data-testid": "sessions-count" });
  const empty = h("div");
  let last = "";
  add(main,
    h("div", { class: "toolbar" }, h("h1", {}, "Sessions"), summary),
    h("div", { class: "table-wrap" }, h(
      "table",
      { class: "grid", id: "sessions-table", "data-testid": "sessions-table" },
      h("thead", {}, h("tr", {},
        ["Session", "Users", "Started", "Last activity"].map((c) => h("th", {}, c)),
        ["Duration", "Calls", "Errors", "Tokens", "Cost"].map((c) => h("th", { class: "num" }, c)))),
      body,
    )),
    empty,
  );
  async function refresh() {
    const data = await api("api/sessions", { limit: 200 });
    const signature = JSON.stringify(data);
    if (signature === last || !ctx.alive()) return;
    last = signature;
    add(clear(body), ...data.data.map(sessionRow));
    summary.textContent = `${fmtInt(data.data.length)} session${data.data.length === 1 ? "" : "s"}`;
    add(clear(empty), data.data.length ? "" : h("div", { class: "empty", "data-testid": "sessions-empty" },
      "No sessions yet. Send an X-Session-ID header (or metadata.session_id) with your calls to group them."));
  }
  await refresh();
  return refresh;
}

function timelineRow(t, i, t0, running, offset) {
  const href = hashFor("call", t.trace_id);
  return h(
    "tr",
    { "data-testid": "session-call", "data-trace-id": t.trace_id, class: statusClass(t), onclick: (e) => {
      if (!e.target.closest("a")) location.hash = href;
    } },
    h("td", { class: "tl" }, h("span", { class: "tl-dot" }), String(i + 1)),
    h("td", { "data-col": "time", title: isoTime(t.start_time) }, h("a", { href }, fmtTime(t.start_time))),
    num(offset(t.start_time * 1000), t.start_time - t0, { "data-col": "offset" }),
    h("td", { "data-col": "user" }, t.user_id || DASH),
    modelCell(t),
    h("td", { "data-col": "status" }, statusBadge(t)),
    num(fmtInt(t.input_tokens), t.input_tokens, { "data-col": "tokens-in" }),
    num(fmtInt(t.output_tokens), t.output_tokens, { "data-col": "tokens-out" }),
    num(fmtCost(t.cost_total), t.cost_total, { "data-col": "cost" }),
    num(fmtCost(running), running, { "data-col": "running-cost" }),
    num(fmtMs(t.duration_ms), t.duration_ms, { "data-col": "latency" }),
  );
}

function statusClass(t) {
  return (t.status_code ?? 0) >= 400 || t.error_type ? "error" : null;
}

const spanText = (seconds) => (seconds < 60 ? `${seconds.toFixed(1)}s` : fmtSpan(seconds));

function offsetLabel(t0, span) {
  return (ms) => (span < 60 ? `+${(ms / 1000 - t0).toFixed(1)}s` : `+${fmtSpan(ms / 1000 - t0)}`);
}

export async function sessionView(main, ctx) {
  const id = ctx.id || "";
  const head = h("div");
  const chart = h("div", { class: "chart-row" });
  const body = h("tbody", { id: "session-calls" });
  let last = "";
  add(main,
    h("div", { class: "toolbar" }, h("a", { href: "#/sessions", class: "back" }, "← Sessions"),
      h("h1", { "data-testid": "session-id", title: id }, shortId(id, 60))),
    head,
    chart,
    h("div", { class: "table-wrap" }, h(
      "table",
      { class: "grid timeline", id: "session-table", "data-testid": "session-timeline" },
      h("thead", {}, h("tr", {}, ["#", "Time"].map((c) => h("th", {}, c)), h("th", { class: "num" }, "Offset"),
        ["User", "Model", "Status"].map((c) => h("th", {}, c)),
        ["Tokens in", "Tokens out", "Cost", "Running cost", "Latency"].map((c) => h("th", { class: "num" }, c)))),
      body,
    )),
  );

  async function refresh() {
    const data = await api("api/traces", { session: id, limit: MAX_CALLS });
    const signature = JSON.stringify(data);
    if (signature === last || !ctx.alive()) return;
    last = signature;
    const calls = [...data.data].sort((a, b) => a.start_time - b.start_time);
    if (!calls.length) {
      add(clear(head), h("div", { class: "empty" }, "No calls in this session."));
      return;
    }
    const t0 = calls[0].start_time;
    const end = Math.max(...calls.map((c) => c.end_time || c.start_time));
    const offset = offsetLabel(t0, end - t0);
    let running = 0;
    const rows = [];
    const points = [];
    calls.forEach((t, i) => {
      running += t.cost_total || 0;
      rows.push(timelineRow(t, i, t0, running, offset));
      points.push({ x: (t.end_time || t.start_time) * 1000, y: running, label: `#${i + 1} ${t.requested_model}` });
    });
    const tokens = calls.reduce((a, c) => a + (c.total_tokens || 0), 0);
    const errors = calls.filter(statusClass).length;
    const users = [...new Set(calls.map((c) => c.user_id).filter(Boolean))];
    add(clear(head), h("div", { class: "tiles" },
      tile("Calls", fmtInt(data.total), data.total, "session-calls-count"),
      tile("Errors", fmtInt(errors), errors, "session-errors"),
      tile("Tokens", fmtInt(tokens), tokens, "session-tokens"),
      tile("Cost", fmtCost(running), running, "session-cost"),
      tile("Duration", spanText(end - t0), end - t0, "session-duration"),
      tile("Users", users.join(", ") || DASH, users.join(","), "session-users"),
    ), data.total > calls.length ? h("p", { class: "muted" }, `Showing the latest ${calls.length} of ${data.total} calls.`) : "");
    add(clear(chart), lines({
      id: "chart-session-cost", title: "Running cost", format: fmtCost, formatX: offset,
      step: true, width: 1280, height: 200,
      series: [{ name: "running cost", points: [{ x: t0 * 1000, y: 0 }, ...points] }],
      note: ` · ${calls.length} call${calls.length === 1 ? "" : "s"} over ${spanText(end - t0)}`,
    }));
    add(clear(body), ...rows);
  }
  await refresh();
  return refresh;
}

export function tile(label, text, value, testid) {
  return h("div", { class: "tile", "data-testid": testid, "data-value": value ?? "" },
    h("div", { class: "tile-label" }, label), h("div", { class: "tile-value" }, text));
}
