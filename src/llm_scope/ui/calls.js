// #/calls: the live list of recent calls, filterable by user, session, tool (client), model, status (rejected
// calls among them: refused before any upstream was asked) and time range.

import {
  add, api, clear, fmtCost, fmtInt, fmtMs, fmtTime, h, hashFor, isError, isoTime, num, statusBadge,
} from "./dom.js";
import { bounds, rangeFrom, rangeParams, rangePicker } from "./range.js";

const LIMIT = 100;
const FILTERS = ["user", "session", "client", "model", "status"];
const DASH = "—";
export const REJECTED = "(rejected)"; // /api/usage's one model row for every rejected call

/** A session id as shown: whole, since a cut one can be neither searched for nor pasted (the views that call
 * this still pass the length they once cut at). */
export function shortId(id) {
  return id;
}

/** Failed before any deployment was chosen (tracing/queries.py REJECTED): the model is what the client typed. */
export function isRejected(t) {
  return ((t.status_code ?? 0) >= 400 || !!t.error_type) && !t.resolved_model;
}

export function modelCell(t) {
  const resolved = t.resolved_model && t.resolved_model !== t.requested_model ? t.resolved_model : null;
  const rejected = isRejected(t);
  return h(
    "td",
    { "data-col": "model" },
    h("span", { class: rejected ? "model muted" : "model" }, t.requested_model || t.resolved_model || DASH),
    resolved ? h("span", { class: "muted small" }, ` → ${resolved}`) : null,
    rejected ? h("span", { class: "tag rejected", title: "refused before any upstream was asked; the name is what " +
      "the client sent", "data-testid": "rejected-tag" }, "rejected") : null,
    t.stream ? h("span", { class: "tag", title: "streamed" }, "stream") : null,
  );
}

/** The cost by bucket (disjoint, adding up to the total), for a cell's tooltip; unknown parts say so. */
export function costParts(t) {
  if (t.cost_total === null || t.cost_total === undefined) return null;
  if (t.cost_cache_read === null || t.cost_cache_read === undefined) return "split by bucket unknown";
  const parts = [
    ["input", t.cost_input - t.cost_cache_read - t.cost_cache_write], ["cache read", t.cost_cache_read],
    ["cache write", t.cost_cache_write], ["output", t.cost_output - t.cost_reasoning], ["reasoning", t.cost_reasoning],
  ];
  return parts.map(([name, v]) => `${name} ${fmtCost(Math.max(0, Math.round(v * 1e10) / 1e10))}`).join(" · ");
}

function callRow(t, fresh) {
  const href = hashFor("call", t.trace_id);
  const classes = [fresh ? "new" : "", isError(t) ? "error" : ""].filter(Boolean).join(" ");
  return h(
    "tr",
    {
      "data-testid": "call-row",
      "data-trace-id": t.trace_id,
      class: classes || null,
      onclick: (e) => {
        if (!e.target.closest("a")) location.hash = href;
      },
    },
    h("td", { "data-col": "time", title: isoTime(t.start_time), "data-value": isoTime(t.start_time) },
      h("a", { href }, fmtTime(t.start_time))),
    h("td", { "data-col": "user" }, t.user_id || DASH),
    h(
      "td",
      { "data-col": "session", class: "sid" },
      t.session_id ? h("a", { href: hashFor("session", t.session_id) }, t.session_id) : DASH,
    ),
    h("td", { "data-col": "client", class: "muted" }, t.client || DASH),
    h("td", { "data-col": "route", class: "muted" }, t.route || DASH),
    modelCell(t),
    h("td", { "data-col": "status" }, statusBadge(t)),
    h("td", { "data-col": "error", class: t.error_type ? "bad-text small" : "muted" }, t.error_type || DASH),
    num(fmtInt(t.input_tokens), t.input_tokens, { "data-col": "tokens-in" }),
    num(fmtInt(t.output_tokens), t.output_tokens, { "data-col": "tokens-out" }),
    num(fmtCost(t.cost_total), t.cost_total, { "data-col": "cost", title: costParts(t) }),
    num(fmtMs(t.duration_ms), t.duration_ms, { "data-col": "latency" }),
    num(fmtMs(t.ttft_ms), t.ttft_ms, { "data-col": "ttft" }),
  );
}

function emptyState(filtered) {
  if (filtered) return h("div", { class: "empty", "data-testid": "calls-empty" }, "No calls match these filters.");
  const base = `${location.origin}/v1`;
  return h(
    "div",
    { class: "empty", "data-testid": "calls-empty" },
    h("p", {}, "No calls yet. Point any OpenAI- or Anthropic-compatible client at this gateway:"),
    h("pre", {}, `export OPENAI_BASE_URL=${base}\ncurl ${base}/chat/completions -H 'content-type: application/json' \\\n  -d '{"model": "<model>", "messages": [{"role": "user", "content": "hello"}]}'`),
    h("p", { class: "muted" }, "New calls appear here within two seconds."),
  );
}

function datalist(id, values) {
  return h("datalist", { id }, values.filter(Boolean).map((v) => h("option", { value: v })));
}

async function suggestions() {
  try {
    const [usage, sessions, clients] = await Promise.all([
      api("api/usage"), api("api/sessions", { limit: 200 }), api("api/usage", { group_by: "client" }),
    ]);
    return [
      datalist("user-options", usage.by_user.map((r) => r.user)),
      datalist("client-options", clients.data.map((r) => r.client)),
      datalist("model-options", usage.by_model.map((r) => r.model).filter((m) => m !== REJECTED)),
      datalist("session-options", sessions.data.map((r) => r.session_id)),
    ];
  } catch {
    return [];
  }
}

export async function callsView(main, ctx) {
  const filters = Object.fromEntries(FILTERS.map((k) => [k, ctx.params.get(k) || ""]));
  let range = rangeFrom(ctx.params, "all");
  const query = () => ({ ...filters, ...bounds(range) });
  const where = () => ({ ...filters, ...(range.range === "all" ? {} : rangeParams(range)) });
  let offset = Math.max(0, Number(ctx.params.get("offset")) || 0);
  let last = "";
  let latest = 0;
  let loaded = false;
  const seen = new Set();

  const body = h("tbody", { id: "calls-body" });
  const summary = h("span", { class: "muted", "data-testid": "calls-count" });
  const pager = h("span", { class: "pager" });
  const empty = h("div");

  const apply = () => {
    offset = 0;
    history.replaceState(null, "", hashFor("calls", null, where()));
    last = "";
    return refresh().catch(() => {});
  };
  let timer = 0;
  const field = (name, placeholder) => {
    const el = h("input", {
      id: `filter-${name}`, "data-testid": `filter-${name}`, type: "search", placeholder,
      value: filters[name], list: `${name}-options`, autocomplete: "off", spellcheck: "false",
    });
    el.addEventListener("input", () => {
      filters[name] = el.value.trim();
      clearTimeout(timer);
      timer = setTimeout(apply, 250);
    });
    return el;
  };
  const status = h(
    "select",
    { id: "filter-status", "data-testid": "filter-status" },
    [["", "Any status"], ["ok", "OK"], ["error", "Errors"], ["rejected", "Rejected"]].map(([v, label]) =>
      h("option", { value: v, selected: filters.status === v }, label),
    ),
  );
  status.addEventListener("change", () => {
    filters.status = status.value;
    apply();
  });

  async function refresh() {
    const request = ++latest;
    const data = await api("api/traces", { ...query(), limit: LIMIT, offset });
    if (request !== latest || !ctx.alive()) return;
    const signature = JSON.stringify(data);
    if (signature === last) return;
    last = signature;
    add(clear(body), ...data.data.map((t) => callRow(t, loaded && !seen.has(t.trace_id))));
    for (const t of data.data) seen.add(t.trace_id);
    loaded = true;
    const filtered = FILTERS.some((k) => filters[k]) || range.range !== "all";
    const all = new URLSearchParams(Object.entries({ ...query(), format: "csv" }).filter(([, v]) => v));
    exportLink.setAttribute("href", `api/traces?${all}`);
    summary.textContent = `${fmtInt(data.total)} call${data.total === 1 ? "" : "s"}${filtered ? " match" : ""}`;
    add(clear(empty), data.total ? "" : emptyState(filtered));
    const end = Math.min(data.total, offset + data.data.length);
    add(clear(pager),
      data.total > LIMIT ? h("span", { class: "muted" }, `${fmtInt(offset + 1)}–${fmtInt(end)} `) : "",
      offset > 0 ? h("button", { type: "button", onclick: () => page(-LIMIT) }, "← Newer") : "",
      end < data.total ? h("button", { type: "button", onclick: () => page(LIMIT) }, "Older →") : "",
    );
  }
  const page = (delta) => {
    offset = Math.max(0, offset + delta);
    history.replaceState(null, "", hashFor("calls", null, { ...where(), offset: offset || "" }));
    last = "";
    refresh().catch(() => {});
  };

  const clearButton = h("button", { type: "button", class: "link", "data-testid": "filter-clear" }, "Clear");
  clearButton.addEventListener("click", () => {
    for (const k of FILTERS) filters[k] = "";
    for (const el of main.querySelectorAll(".filters input")) el.value = "";
    status.value = "";
    range = { range: "all", from: "", to: "" };
    picker.replaceWith((picker = rangePicker("calls", range, onRange)));
    apply();
  });
  const onRange = (r) => {
    range = r;
    apply();
  };
  let picker = rangePicker("calls", range, onRange);
  const exportLink = h("a", { class: "button small", "data-testid": "calls-csv", download: "calls.csv",
    title: "Every call that matches these filters, as CSV" }, "CSV (all matching)");

  add(main,
    h(
      "div",
      { class: "toolbar" },
      h("h1", {}, "Calls"),
      summary,
      h("span", { class: "spacer" }),
      h(
        "div",
        { class: "filters" },
        field("user", "User"),
        field("session", "Session"),
        field("client", "Tool"),
        field("model", "Model"),
        status,
        picker,
        clearButton,
        exportLink,
      ),
    ),
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "grid calls", id: "calls-table", "data-testid": "calls-table" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ["Time", "User", "Session", "Tool", "Route", "Model", "Status", "Error"].map((c) => h("th", {}, c)),
            ["Tokens in", "Tokens out", "Cost", "Latency", "TTFT"].map((c) => h("th", { class: "num" }, c)),
          ),
        ),
        body,
      ),
    ),
    empty,
    h("div", { class: "footer-row" }, pager),
  );
  suggestions().then((lists) => ctx.alive() && add(main, lists));
  await refresh();
  return refresh;
}
