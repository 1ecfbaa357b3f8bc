// #/call/<id>: one call in full: who and what, timing, usage and cost, error, scores, input and output.

import { isRejected } from "./calls.js";
import { add, api, fmtCost, fmtInt, fmtMs, h, hashFor, isError, isoTime, pretty, s, statusBadge } from "./dom.js";
import { lazyDetails, renderInput, renderOutput } from "./messages.js";

const DASH = "—";

/** The cost card's rows: disjoint buckets that add up to the total, from the record's cost (its parts are kept
 * only when non-zero); no cost at all is unknown, every bucket "—", never $0. */
function costRows(t) {
  const c = t.cost;
  if (!c) return [["Total", "cost-total", null, t.status_code >= 400 ? "— (not billed)" : "— (no price)"]];
  const read = c.cache_read || 0;
  const write = c.cache_write || 0;
  const reasoning = c.reasoning || 0;
  const money = (v) => Math.max(0, Math.round(v * 1e10) / 1e10);
  const rows = [
    ["Input", "cost-input", money(c.input - read - write)],
    ["Cache read", "cost-cache-read", read],
    ["Cache write", "cost-cache-write", write],
    ["Output", "cost-output", money(c.output - reasoning)],
    ["Reasoning", "cost-reasoning", reasoning],
    ["Total", "cost-total", c.total],
  ];
  return rows.map(([label, id, v]) => [label, id, v, fmtCost(v)]);
}

function facts(pairs) {
  return h("dl", { class: "facts" }, pairs.filter(([, v]) => v !== null && v !== undefined && v !== "").map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

/** A card of label/value rows; each value carries data-testid and its exact number in data-value. */
function card(title, id, rows) {
  return h(
    "section",
    { class: "card", id, "data-testid": id },
    h("h2", {}, title),
    h("dl", { class: "kv" }, rows.map(([label, testid, value, text]) => [
      h("dt", {}, label),
      h("dd", { "data-testid": testid, "data-value": value ?? "" }, text),
    ])),
  );
}

/** Where the time went: gateway overhead around the upstream call, and when the first token arrived. */
function timingBar(t, overhead) {
  const total = t.duration_ms;
  if (!(total > 0)) return null;
  const W = 300;
  const x = (ms) => Math.max(0, Math.min(W, (ms / total) * W));
  const upstream = t.upstream_ms ?? null;
  return s(
    "svg",
    { viewBox: `0 0 ${W} 18`, class: "timing-bar", "data-testid": "timing-bar", role: "img", "aria-label": "timing" },
    s("rect", { x: 0, y: 4, width: W, height: 10, rx: 2, class: "seg overhead" }, s("title", {}, `total ${fmtMs(total)}`)),
    upstream !== null ? s("rect", { x: x(overhead / 2), y: 4, width: x(upstream), height: 10, rx: 2, class: "seg c0" },
      s("title", {}, `upstream ${fmtMs(upstream)}`)) : null,
    t.ttft_ms !== null && t.ttft_ms !== undefined
      ? s("line", { x1: x(t.ttft_ms), x2: x(t.ttft_ms), y1: 0, y2: 18, class: "marker" }, s("title", {}, `first token ${fmtMs(t.ttft_ms)}`))
      : null,
  );
}

function scoresTable(scores) {
  if (!scores?.length) return null;
  return h(
    "section",
    { class: "block", "data-testid": "scores" },
    h("h2", {}, "Scores"),
    h("table", { class: "grid", id: "scores-table" },
      h("thead", {}, h("tr", {}, ["Name", "Value", "Type", "Comment"].map((c) => h("th", {}, c)))),
      h("tbody", {}, scores.map((sc) => h("tr", { "data-testid": "score-row" },
        h("td", {}, sc.name), h("td", {}, sc.value), h("td", { class: "muted" }, sc.data_type), h("td", {}, sc.comment || ""))))),
  );
}

function langfuseLink(config, id) {
  const base = config.langfuse_url;
  if (!base || !/^https?:\/\//i.test(base)) return null;
  return h("a", { href: `${base}/trace/${encodeURIComponent(id)}`, target: "_blank", rel: "noopener noreferrer",
    class: "button ext", id: "langfuse-link", "data-testid": "langfuse-link" }, "Open in Langfuse ↗");
}

export async function callView(main, ctx) {
  const t = await api(`api/traces/${encodeURIComponent(ctx.id || "")}`);
  const overhead = t.upstream_ms !== null && t.upstream_ms !== undefined ? Math.max(0, t.duration_ms - t.upstream_ms) : null;
  const usage = t.usage || {};
  const copy = h("button", { type: "button", class: "link small", title: "Copy trace id" }, "copy");
  copy.addEventListener("click", () => navigator.clipboard?.writeText(t.trace_id));
  const error = isError(t)
    ? h("section", { class: "notice bad", id: "detail-error", "data-testid": "detail-error" },
      h("strong", {}, `${t.status_code} ${t.error_type || "error"}`), t.error_message ? h("pre", { class: "text" }, t.error_message) : null)
    : null;

  add(main,
    h(
      "div",
      { class: "toolbar" },
      h("a", { href: "#/calls", class: "back" }, "← Calls"),
      h("h1", { "data-testid": "detail-model" }, t.requested_model || t.resolved_model || "call"),
      t.resolved_model && t.resolved_model !== t.requested_model ? h("span", { class: "muted" }, `→ ${t.resolved_model}`) : null,
      statusBadge(t),
      h("span", { class: "spacer" }),
      langfuseLink(ctx.config, t.trace_id),
    ),
    facts([
      ["Trace", h("span", {}, h("code", { "data-testid": "detail-trace-id" }, t.trace_id), " ", copy)],
      ["Time", h("span", { title: isoTime(t.start_time) }, new Date(t.start_time * 1000).toLocaleString())],
      ["User", t.user_id || DASH],
      ["Session", t.session_id ? h("a", { href: hashFor("session", t.session_id), "data-testid": "detail-session", class: "sid" }, t.session_id) : DASH],
      ["Client", t.client || DASH],
      ["Route", `${t.route}${t.stream ? " · stream" : ""}`],
      ["Model", isRejected(t) ? h("span", { "data-testid": "detail-rejected" }, "rejected before any upstream was asked: " +
        `'${t.requested_model || ""}' is what the client sent`) : null],
      ["Provider", t.provider || DASH],
      ["Finish", t.finish_reason || DASH],
      ["Tool calls", t.tool_calls ? h("span", { "data-testid": "detail-tools" }, Object.entries(t.tool_calls).map(([n, c], i) =>
        [i ? " · " : "", h("span", { "data-tool": n, "data-value": c }, `${n} ${c}`)])) : null],
      ["Subagent", t.subagent ? h("span", { "data-testid": "detail-subagent" }, t.subagent) : null],
      ["Repository", t.repo ? h("span", { "data-testid": "detail-repo" }, `${t.repo}${t.branch ? ` @ ${t.branch}` : ""}`) : null],
    ]),
    error,
    h(
      "div",
      { class: "cards" },
      card("Timing", "detail-timing", [
        ["Time to first token", "ttft", t.ttft_ms, fmtMs(t.ttft_ms)],
        ["Total", "total", t.duration_ms, fmtMs(t.duration_ms)],
        ["Upstream", "upstream", t.upstream_ms, fmtMs(t.upstream_ms)],
        ["Gateway overhead", "overhead", overhead, fmtMs(overhead)],
      ]),
      card("Usage", "detail-usage", [
        ["Input tokens", "usage-input", usage.input ?? t.input_tokens, fmtInt(usage.input ?? t.input_tokens)],
        ["  cached (read)", "usage-cache-read", usage.cache_read, fmtInt(usage.cache_read)],
        ["  cache write", "usage-cache-write", usage.cache_write, fmtInt(usage.cache_write)],
        ["Output tokens", "usage-output", usage.output ?? t.output_tokens, fmtInt(usage.output ?? t.output_tokens)],
        ["  reasoning", "usage-reasoning", usage.reasoning, fmtInt(usage.reasoning)],
        ["Total tokens", "usage-total", usage.total ?? t.total_tokens, fmtInt(usage.total ?? t.total_tokens)],
      ]),
      card("Cost (USD)", "detail-cost", costRows(t)),
    ),
    h("div", { class: "timing-row" }, timingBar(t, overhead ?? 0),
      h("span", { class: "muted small" }, "total · upstream (blue) · first token (line)")),
    scoresTable(t.scores),
    h("div", { class: "io" },
      h("section", { class: "block", id: "detail-input", "data-testid": "detail-input" }, h("h2", {}, "Input"), renderInput(t.input, t.route)),
      h("section", { class: "block", id: "detail-output", "data-testid": "detail-output" }, h("h2", {}, "Output"), renderOutput(t.output))),
    Object.keys(t.model_parameters || {}).length
      ? h("details", { class: "block" }, h("summary", {}, "Model parameters"), h("pre", { class: "json" }, pretty(t.model_parameters)))
      : null,
    Object.keys(t.metadata || {}).length
      ? h("details", { class: "block" }, h("summary", {}, "Metadata"), h("pre", { class: "json" }, pretty(t.metadata)))
      : null,
    lazyDetails({ class: "block", "data-testid": "raw" }, "Raw trace (JSON)", () => h("pre", { class: "json" }, pretty(t))),
  );
  return null; // a finished trace does not change
}
