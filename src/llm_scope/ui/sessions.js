// #/sessions: coding sessions (one run of one tool) with their tool, user, turns, token buckets, cache and cost;
// #/session/<id>: one session's turns in order, with cache reads/writes, breaks and the running cost.

import { modelCell, shortId } from "./calls.js";
import { lines } from "./charts.js";
import { bounds, rangeFrom, rangeParams, rangePicker } from "./range.js";
import {
  add, api, clear, costNodes, fmtCost, fmtInt, fmtMs, fmtPct, fmtSpan, fmtTime, h, hashFor, isoTime, num, statusBadge,
} from "./dom.js";

const DASH = "—";
const LIMIT = 200;
const SAVED_TITLE = "What the cache reads did not cost, against the model's list input price";
const SORTS = [["last_call", "Last activity"], ["cost", "Cost"], ["calls", "Turns"], ["tokens", "Tokens"],
  ["errors", "Errors"], ["unpriced", "Unpriced calls"], ["first_call", "Started"]];
const SUBAGENT_TITLE = "Calls the tool itself marked as a subagent's (Claude Code's x-claude-code-agent-id header, " +
  "Codex's x-openai-subagent); the calls that launched subagents are the Task/Agent tool calls";
const RETRIES_TITLE = "Retries the gateway made within a call, plus the client's re-sends of a request that had " +
  "just failed (the same request as the session's previous call)";
const DERIVED_TITLE = "Sent without a session id: the same key (else user) and tool, at most 30 minutes apart, " +
  "grouped when stored";

// {name: count} as "Bash 12 · Read 7 · Edit 3 +2 more", most first (the API sorts them).
function toolList(calls, most = 3) {
  const names = Object.entries(calls || {});
  if (!names.length) return DASH;
  const shown = names.slice(0, most).map(([n, c]) => `${n} ${fmtInt(c)}`).join(" · ");
  return names.length > most ? `${shown} +${names.length - most} more` : shown;
}

const toolTitle = (calls) => Object.entries(calls || {}).map(([n, c]) => `${n}: ${c}`).join("\n") || null;
const repoText = (r) => (r.repos || []).length ? `${r.repos.join(", ")}${(r.branches || []).length
  ? ` @ ${r.branches.join(", ")}` : ""}` : DASH;

/** A row's token buckets (a session's, a turn's, a tool's): fresh input, cache reads, cache writes, output. */
export const tokenCells = (r) => [
  num(fmtInt(r.fresh_input_tokens), r.fresh_input_tokens, { "data-col": "fresh-in" }),
  num(fmtInt(r.cache_read_tokens), r.cache_read_tokens, { "data-col": "cache-read" }),
  num(fmtInt(r.cache_write_tokens), r.cache_write_tokens, { "data-col": "cache-write" }),
  num(fmtInt(r.output_tokens), r.output_tokens, { "data-col": "tokens-out" }),
];

/** What the cache did for a session's or a tool's calls: the share of input it served, and what that saved. */
export const cacheCells = (r) => [
  num(fmtPct(r.cache_hit_ratio), r.cache_hit_ratio, { "data-col": "cache-hit" }),
  num(fmtCost(r.cache_saved_usd), r.cache_saved_usd, { "data-col": "cache-saved" }),
];

function sessionRow(r, withRepo) {
  const href = hashFor("session", r.session_id);
  const span = r.last_call - r.first_call;
  return h(
    "tr",
    { "data-testid": "session-row", "data-session-id": r.session_id, onclick: (e) => {
      if (!e.target.closest("a")) location.hash = href;
    } },
    h("td", { "data-col": "session", title: r.session_id }, h("a", { href }, shortId(r.session_id, 14)),
      r.derived ? h("span", { class: "tag", "data-testid": "session-derived", title: DERIVED_TITLE }, "grouped") : null),
    h("td", { "data-col": "client" }, r.client ? h("span", { class: "tag client" }, r.client) : DASH),
    h("td", { "data-col": "user", title: (r.users || []).join(", ") }, r.user || DASH),
    h("td", { "data-col": "started", title: isoTime(r.first_call) }, fmtTime(r.first_call)),
    num(fmtSpan(span), span, { "data-col": "duration" }),
    num(fmtInt(r.calls), r.calls, { "data-col": "calls" }),
    h("td", { "data-col": "models", class: "muted small" }, (r.models || []).join(", ") || DASH),
    withRepo ? h("td", { "data-col": "repo", class: "small" }, repoText(r)) : null,
    h("td", { "data-col": "tools", class: "small", title: toolTitle(r.tool_calls), "data-value": r.tool_call_count ?? 0 },
      toolList(r.tool_calls)),
    num(r.subagent_calls ? fmtInt(r.subagent_calls) : DASH, r.subagent_calls, { "data-col": "subagents" }),
    num(r.retries ? fmtInt(r.retries) : DASH, r.retries, { "data-col": "retries",
      title: `${r.gateway_retries || 0} by the gateway, ${r.client_resends || 0} re-sent by the client` }),
    num(r.errors ? fmtInt(r.errors) : DASH, r.errors, { "data-col": "errors", class: r.errors ? "num bad-text" : "num" }),
    tokenCells(r),
    cacheCells(r),
    num(costNodes(r.cost_total, r.unpriced_calls), r.cost_total,
      { "data-col": "cost", "data-unpriced": r.unpriced_calls || 0 }),
  );
}

export async function sessionsView(main, ctx) {
  const filters = { client: ctx.params.get("client") || "", user: ctx.params.get("user") || "",
    sort: ctx.params.get("sort") || "last_call" };
  let range = rangeFrom(ctx.params, "all");
  const body = h("tbody", { id: "sessions-body" });
  const head = h("thead");
  const TITLES = { "Cache saved": SAVED_TITLE, "Subagent calls": SUBAGENT_TITLE, Retries: RETRIES_TITLE };
  const header = (withRepo) => h("tr", {},
    ["Session", "Tool", "User", "Started"].map((c) => h("th", {}, c)),
    ["Duration", "Turns"].map((c) => h("th", { class: "num" }, c)), h("th", {}, "Models"),
    withRepo ? h("th", { "data-testid": "sessions-repo-head" }, "Repo @ branch") : null,
    h("th", { title: "The tool calls the model made, by tool name" }, "Tool calls"),
    ["Subagent calls", "Retries", "Errors", "Fresh in", "Cache read", "Cache write", "Output", "Cache hit",
      "Cache saved", "Cost"].map((c) => h("th", { class: "num", title: TITLES[c] || null }, c)));
  const summary = h("span", { class: "muted", "data-testid": "sessions-count" });
  const empty = h("div");
  const exportLink = h("a", { class: "button", "data-testid": "sessions-csv", download: "sessions.csv" }, "CSV");
  let last = "";
  const apply = () => {
    history.replaceState(null, "", hashFor("sessions", null, { ...filters, ...rangeParams(range) }));
    last = "";
    return refresh().catch(() => {});
  };
  const clientSelect = h("select", { id: "sessions-client", "data-testid": "sessions-client" },
    h("option", { value: "" }, "All tools"));
  clientSelect.addEventListener("change", () => { filters.client = clientSelect.value; apply(); });
  const userInput = h("input", { type: "search", placeholder: "User", value: filters.user, "data-testid": "sessions-user" });
  let timer = 0;
  userInput.addEventListener("input", () => {
    filters.user = userInput.value.trim();
    clearTimeout(timer);
    timer = setTimeout(apply, 250);
  });
  const sortSelect = h("select", { id: "sessions-sort", "data-testid": "sessions-sort" },
    SORTS.map(([v, label]) => h("option", { value: v, selected: v === filters.sort }, `Sort: ${label}`)));
  sortSelect.addEventListener("change", () => { filters.sort = sortSelect.value; apply(); });
  const picker = rangePicker("sessions", range, (r) => { range = r; apply(); });
  add(main,
    h("div", { class: "toolbar" }, h("h1", {}, "Sessions"), summary, h("span", { class: "spacer" }),
      h("div", { class: "filters" }, clientSelect, userInput, picker, sortSelect, exportLink)),
    h("div", { class: "table-wrap" }, h(
      "table",
      { class: "grid", id: "sessions-table", "data-testid": "sessions-table" },
      head,
      body,
    )),
    empty,
  );
  api("api/usage", { group_by: "client" }).then((usage) => {
    const names = usage.data.map((r) => r.client).filter(Boolean);
    add(clientSelect, names.map((n) => h("option", { value: n, selected: n === filters.client }, n)));
  }).catch(() => {});

  async function refresh() {
    const { since, until } = bounds(range);
    const params = { limit: LIMIT, client: filters.client, user: filters.user, sort: filters.sort, since, until };
    const data = await api("api/sessions", params);
    const signature = JSON.stringify(data);
    if (signature === last || !ctx.alive()) return;
    last = signature;
    const qs = new URLSearchParams(Object.entries({ ...params, format: "csv" }).filter(([, v]) => v)).toString();
    exportLink.setAttribute("href", `api/sessions?${qs}`);
    const withRepo = data.data.some((r) => (r.repos || []).length);  // stored only with LLM_SCOPE_SESSION_REPO on
    add(clear(head), header(withRepo));
    add(clear(body), ...data.data.map((r) => sessionRow(r, withRepo)));
    const shown = data.data.length < data.total ? ` (the first ${fmtInt(data.data.length)})` : "";
    summary.textContent = `${fmtInt(data.total)} session${data.total === 1 ? "" : "s"}${shown}`;
    add(clear(empty), data.data.length ? "" : h("div", { class: "empty", "data-testid": "sessions-empty" },
      "No sessions yet. Claude Code and Codex send their session id by themselves; other tools can send an " +
      "X-Session-ID header (or metadata.session_id), or their calls are grouped by key and tool."));
  }
  await refresh();
  return refresh;
}

function timelineRow(t, t0, running, offset) {
  const href = hashFor("call", t.trace_id);
  const classes = [statusClass(t), t.cache_break ? "cache-break" : null].filter(Boolean).join(" ");
  return h(
    "tr",
    { "data-testid": "session-call", "data-trace-id": t.trace_id, class: classes || null, onclick: (e) => {
      if (!e.target.closest("a")) location.hash = href;
    } },
    h("td", { class: "tl" }, h("span", { class: "tl-dot" }), String(t.turn)),
    h("td", { "data-col": "time", title: isoTime(t.start_time) }, h("a", { href }, fmtTime(t.start_time))),
    num(offset(t.start_time * 1000), t.start_time - t0, { "data-col": "offset" }),
    modelCell(t),
    h("td", { "data-col": "status" }, statusBadge(t),
      t.cache_break ? h("span", { class: "tag break", "data-testid": "cache-break", title: breakTitle(t) },
        `cache break${known(t) ? `: ${t.cache_break_cause.join(", ")}` : ""}`) : null),
    tokenCells(t),
    h("td", { "data-col": "tools", class: "small", title: toolTitle(t.tool_calls) }, toolList(t.tool_calls, 2),
      t.subagent ? h("span", { class: "tag", "data-testid": "call-subagent", title: SUBAGENT_TITLE },
        `subagent${t.subagent === "agent" ? "" : `: ${t.subagent}`}`) : null,
      t.resent ? h("span", { class: "tag", "data-testid": "call-resent", title: RETRIES_TITLE }, "re-sent") : null,
      t.retries ? h("span", { class: "tag", title: RETRIES_TITLE }, `${t.retries} gateway retr${t.retries === 1 ? "y" : "ies"}`)
        : null),
    num(fmtCost(t.cache_saved_usd), t.cache_saved_usd, { "data-col": "cache-saved" }),
    num(t.unpriced ? "unpriced" : fmtCost(t.cost_total), t.cost_total,
      { "data-col": "cost", class: t.unpriced ? "num warn-text" : "num" }),
    num(fmtCost(running), running, { "data-col": "running-cost" }),
    num(fmtMs(t.duration_ms), t.duration_ms, { "data-col": "latency" }),
  );
}

const CAUSES = {
  tools: "the tool definitions changed",
  system: "the system prompt changed",
  messages: "an earlier message was edited, dropped or compacted",
  expired: "nothing changed, but the cache had expired (idle over 5 minutes)",
};
const known = (t) => (t.cache_break_cause || []).some((c) => CAUSES[c]);

function breakTitle(t) {
  const why = known(t) ? t.cache_break_cause.map((c) => CAUSES[c] || c).join("; ") : "cause unknown";
  return `Cache reads fell to almost nothing after a warm turn: ${why}`;
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
      h("h1", { "data-testid": "session-id", title: id, class: "session-id" }, id),
      h("span", { class: "spacer" }),
      h("a", { class: "button", href: `api/sessions/${encodeURIComponent(id)}?format=csv`, download: "session.csv",
        "data-testid": "session-csv" }, "CSV")),
    head,
    chart,
    h("div", { class: "table-wrap" }, h(
      "table",
      { class: "grid timeline", id: "session-table", "data-testid": "session-timeline" },
      h("thead", {}, h("tr", {}, ["#", "Time"].map((c) => h("th", {}, c)), h("th", { class: "num" }, "Offset"),
        ["Model", "Status"].map((c) => h("th", {}, c)),
        ["Fresh in", "Cache read", "Cache write", "Output"].map((c) => h("th", { class: "num" }, c)),
        h("th", {}, "Tool calls"),
        ["Cache saved", "Cost", "Running cost", "Latency"].map((c) => h("th", { class: "num" }, c)))),
      body,
    )),
  );

  async function refresh() {
    let data;
    try {
      data = await api(`api/sessions/${encodeURIComponent(id)}`);
    } catch (error) {
      if (error?.status !== 404) throw error;
      add(clear(head), h("div", { class: "empty" }, "No calls in this session."));
      return;
    }
    const signature = JSON.stringify(data);
    if (signature === last || !ctx.alive()) return;
    last = signature;
    const calls = data.turns;
    const t0 = calls[0].start_time;
    const end = Math.max(...calls.map((c) => c.end_time || c.start_time));
    const offset = offsetLabel(t0, end - t0);
    let running = 0;
    const rows = [];
    const points = [];
    for (const t of calls) {
      running += t.cost_total || 0;
      rows.push(timelineRow(t, t0, running, offset));
      points.push({ x: (t.end_time || t.start_time) * 1000, y: running, label: `#${t.turn} ${t.requested_model}` });
    }
    const breaks = calls.filter((c) => c.cache_break).length;
    add(clear(head), h("div", { class: "tiles" },
      tile("Tool", data.client || DASH, data.client || "", "session-client"),
      tile("User", data.user || DASH, data.user || "", "session-users"),
      tile("Turns", fmtInt(data.calls), data.calls, "session-calls-count"),
      tile("Errors", fmtInt(data.errors), data.errors, "session-errors"),
      tile("Tool calls", fmtInt(data.tool_call_count), data.tool_call_count, "session-tool-calls"),
      tile("Subagent calls", fmtInt(data.subagent_calls), data.subagent_calls, "session-subagents", SUBAGENT_TITLE),
      tile("Retries", fmtInt(data.retries), data.retries, "session-retries", RETRIES_TITLE),
      (data.repos || []).length ? tile("Repo @ branch", repoText(data), repoText(data), "session-repo") : "",
      tile("Fresh input", fmtInt(data.fresh_input_tokens), data.fresh_input_tokens, "session-fresh-in"),
      tile("Cache read", fmtInt(data.cache_read_tokens), data.cache_read_tokens, "session-cache-read"),
      tile("Cache write", fmtInt(data.cache_write_tokens), data.cache_write_tokens, "session-cache-write"),
      tile("Output", fmtInt(data.output_tokens), data.output_tokens, "session-output"),
      tile("Cache hit", fmtPct(data.cache_hit_ratio), data.cache_hit_ratio, "session-cache-hit"),
      tile("Cache breaks", fmtInt(breaks), breaks, "session-cache-breaks"),
      tile("Saved by cache", fmtCost(data.cache_saved_usd), data.cache_saved_usd, "session-cache-saved"),
      tile("Cache write premium", fmtCost(data.cache_write_premium_usd), data.cache_write_premium_usd,
        "session-cache-premium"),
      tile("Cost", costNodes(data.cost_total, data.unpriced_calls), data.cost_total, "session-cost"),
      tile("Duration", spanText(end - t0), end - t0, "session-duration"),
    ), h("p", { class: "muted small" }, `Models: ${(data.models || []).join(", ") || DASH}`),
    h("p", { class: "muted small", "data-testid": "session-tools" }, "Tool calls by name: ",
      Object.entries(data.tool_calls || {}).map(([n, c]) =>
        h("span", { class: "tag", "data-tool": n, "data-value": c }, `${n} ${fmtInt(c)}`)), data.tool_call_count ? "" : DASH),
    data.derived ? h("p", { class: "muted small", "data-testid": "session-derived" }, `Grouped: ${DERIVED_TITLE}.`) : "",
    data.calls > calls.length ? h("p", { class: "muted" }, `Showing the first ${calls.length} of ${data.calls} turns.`) : "");
    add(clear(chart), lines({
      id: "chart-session-cost", title: "Running cost", format: fmtCost, formatX: offset,
      step: true, width: 1280, height: 200,
      series: [{ name: "running cost", points: [{ x: t0 * 1000, y: 0 }, ...points] }],
      note: ` · ${calls.length} turn${calls.length === 1 ? "" : "s"} over ${spanText(end - t0)}` +
        (data.unpriced_calls ? ` · ${data.unpriced_calls} unpriced, not counted` : ""),
    }));
    add(clear(body), ...rows);
  }
  await refresh();
  return refresh;
}

export function tile(label, text, value, testid, title = null) {
  return h("div", { class: "tile", "data-testid": testid, "data-value": value ?? "", title },
    h("div", { class: "tile-label" }, label), h("div", { class: "tile-value" }, text));
}
