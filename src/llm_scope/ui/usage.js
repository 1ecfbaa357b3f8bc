// #/usage: spend and tokens by model, user and tool per day, totals (unpriced calls counted, never $0), the
// models that have no price with the config that prices them, and latency p50/p95 over time (UTC buckets).
// Cost is shown by bucket where the store knows it (unknown: "—", never $0). Calls refused before any upstream
// was asked are one "(rejected)" row, never a model of their own in the tables, charts or filters.

import { hbars, lines, stackedBars, topSeries } from "./charts.js";
import { add, api, clear, costNodes, fmtCost, fmtInt, fmtMs, h, hashFor, num } from "./dom.js";
import { REJECTED } from "./calls.js";
import { bounds, rangeFrom, rangeParams, rangePicker } from "./range.js";
import { cacheCells, tile, tokenCells } from "./sessions.js";

const BUCKETS = [["cost_fresh_input", "Input $", "cost-input"], ["cost_cache_read", "Cache read $", "cost-cache-read"],
  ["cost_cache_write", "Cache write $", "cost-cache-write"], ["cost_plain_output", "Output $", "cost-output"],
  ["cost_reasoning", "Reasoning $", "cost-reasoning"]];
const BUCKET_TITLE = "Cost by bucket; the buckets add up to the cost of the priced calls";
const COMPACT = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 1 });
const NO_USER = "(no user)";
const DAY_MS = 86400000;

const fmtCompact = (v) => COMPACT.format(v);
const priced = (rows) => rows.filter((r) => r.cost_total !== null && r.cost_total !== undefined); // unknown is not $0
const utcDay = (ms) => new Date(ms).toISOString().slice(0, 10);
const bucketMs = (b) => Date.parse(b.length === 10 ? `${b}T00:00:00Z` : `${b}:00Z`);

/** Cost cells by bucket; a group with priced calls whose split is unknown says so. */
function bucketCells(r) {
  const unsplit = r.cost_unsplit_calls || 0;
  const title = unsplit ? `${fmtInt(unsplit)} priced call${unsplit === 1 ? "" : "s"} with no split by bucket` : null;
  return BUCKETS.map(([key, , col]) => num(fmtCost(r[key]), r[key], { "data-col": col, title }));
}

const bucketHeads = () => BUCKETS.map(([, label]) => h("th", { class: "num", title: BUCKET_TITLE }, label));
const notRejected = (rows) => rows.filter((r) => r.model !== REJECTED);

/** Every UTC day from the first with data to the range's end (today), at least a week, so gaps show as gaps. */
function dayRange(days, until) {
  const end = until ? Math.min(Date.now(), until * 1000 - 1) : Date.now();
  const today = Date.parse(`${utcDay(end)}T00:00:00Z`);
  const first = days.length ? Math.min(...days.map((d) => Date.parse(`${d}T00:00:00Z`))) : today;
  const start = Math.min(first, today - 6 * DAY_MS);
  const out = [];
  for (let t = start; t <= today; t += DAY_MS) out.push(utcDay(t));
  return out;
}

/** rows [{day, <key>, <metric>}] → series [{name, values per day}] for a stacked chart. */
function perDay(rows, key, metric, days, order) {
  const index = new Map(days.map((d, i) => [d, i]));
  const byName = new Map();
  for (const r of rows) {
    const name = r[key] || NO_USER;
    if (!byName.has(name)) byName.set(name, days.map(() => 0));
    const i = index.get(r.day);
    if (i !== undefined) byName.get(name)[i] += r[metric] || 0;
  }
  return topSeries([...byName].map(([name, values]) => ({ name, values })), order);
}

function totalsTable(id, label, rows, key, total) {
  const cells = (r) => [
    num(fmtInt(r.calls), r.calls, { "data-col": "calls" }),
    num(fmtInt(r.input_tokens), r.input_tokens, { "data-col": "tokens-in" }),
    num(fmtInt(r.output_tokens), r.output_tokens, { "data-col": "tokens-out" }),
    ...bucketCells(r),
    num(costNodes(r.cost_total, r.unpriced_calls), r.cost_total, { "data-col": "cost", "data-unpriced": r.unpriced_calls || 0 }),
  ];
  const link = (r) => {
    if (key === "model" && r.model === REJECTED) {
      return h("a", { href: hashFor("calls", null, { status: "rejected" }), class: "muted", "data-testid": "rejected-link",
        title: "Calls refused before any upstream was asked (unknown model, invalid request, key, budget): see the names they carried" },
      REJECTED);
    }
    const name = r[key] || NO_USER;
    return r[key] ? h("a", { href: hashFor("calls", null, key === "user" ? { user: r.user } : { model: r.model }) }, name) : name;
  };
  return h(
    "section",
    { class: "block" },
    h("h2", {}, `By ${label}`),
    h("div", { class: "table-wrap" }, h("table", { class: "grid", id, "data-testid": id },
      h("thead", {}, h("tr", {}, h("th", {}, label[0].toUpperCase() + label.slice(1)),
        ["Calls", "Tokens in", "Tokens out"].map((c) => h("th", { class: "num" }, c)), bucketHeads(),
        h("th", { class: "num" }, "Cost"))),
      h("tbody", {}, rows.map((r) => h("tr", { "data-testid": `${key}-usage-row`, "data-name": r[key] || NO_USER },
        h("td", {}, link(r)), cells(r)))),
      h("tfoot", {}, h("tr", { "data-testid": `${key}-usage-total` }, h("th", {}, "Total"), cells(total))))),
  );
}

function clientsTable(rows) {
  return h(
    "section",
    { class: "block" },
    h("h2", {}, "By tool"),
    h("div", { class: "table-wrap" }, h("table", { class: "grid", id: "usage-by-client", "data-testid": "usage-by-client" },
      h("thead", {}, h("tr", {}, h("th", {}, "Tool"),
        ["Calls", "Fresh in", "Cache read", "Cache write", "Output", "Cache hit", "Cache saved"]
          .map((c) => h("th", { class: "num" }, c)), bucketHeads(), h("th", { class: "num" }, "Cost"))),
      h("tbody", {}, rows.map((r) => h("tr", { "data-testid": "client-usage-row", "data-name": r.client || "" },
        h("td", {}, r.client ? h("a", { href: hashFor("sessions", null, { client: r.client }) }, r.client) : "(unknown)"),
        num(fmtInt(r.calls), r.calls, { "data-col": "calls" }),
        tokenCells(r),
        cacheCells(r),
        ...bucketCells(r),
        num(costNodes(r.cost_total, r.unpriced_calls), r.cost_total,
          { "data-col": "cost", "data-unpriced": r.unpriced_calls || 0 })))))),
  );
}

function unpricedSection(unpriced) {
  if (!unpriced.data.length) return "";
  return h(
    "section",
    { class: "block", id: "unpriced-models", "data-testid": "unpriced-models" },
    h("h2", {}, `Unpriced models · ${fmtInt(unpriced.unpriced_calls)} calls not in any cost`),
    h("p", { class: "muted" }, "These models have no price in LiteLLM's table or your config. Add the prices " +
      "to their model_list entries (USD per token) and new calls are priced:"),
    unpriced.data.map((r) => h("div", { "data-testid": "unpriced-model", "data-model": r.requested_model },
      h("h3", {}, `${r.requested_model} — ${fmtInt(r.calls)} call${r.calls === 1 ? "" : "s"}, `,
        `${fmtInt(r.input_tokens)} tokens in, ${fmtInt(r.output_tokens)} out`),
      h("pre", { class: "snippet" }, r.snippet))),
  );
}

function render(content, usage, stats, clients, unpriced, until) {
  const total = usage.total;
  if (!total.calls) {
    add(clear(content), h("div", { class: "empty", "data-testid": "usage-empty" }, "No calls in this range yet."));
    return;
  }
  const days = dayRange(usage.by_day.map((r) => r.day), until);
  const byDayModel = notRejected(usage.by_day_model);
  const formatX = stats.bucket === "hour"
    ? (ms) => `${new Date(ms).toISOString().slice(5, 13).replace("T", " ")}h`
    : (ms) => new Date(ms).toISOString().slice(5, 10);
  const cat = (d) => d.slice(5);
  const latency = (prefix) => [50, 95].map((p) => ({
    name: `p${p}`,
    dashed: p === 95,
    points: stats.latency.filter((r) => r[`${prefix}_p${p}_ms`] !== undefined && r[`${prefix}_p${p}_ms`] !== null)
      .map((r) => ({ x: bucketMs(r.bucket), y: r[`${prefix}_p${p}_ms`] })),
  }));
  const per = stats.bucket === "hour" ? "per hour" : "per day";
  const buckets = stats.latency.map((r) => bucketMs(r.bucket));
  const xTicks = buckets.filter((_, i) => i % Math.ceil(buckets.length / 6) === 0);
  const models = notRejected(usage.by_model).map((r) => r.model || "(unknown)");
  const users = usage.by_user.map((r) => r.user || NO_USER);
  add(clear(content),
    h("div", { class: "tiles" },
      tile("Calls", fmtInt(total.calls), total.calls, "usage-calls"),
      tile("Input tokens", fmtInt(total.input_tokens), total.input_tokens, "usage-input-tokens"),
      tile("Output tokens", fmtInt(total.output_tokens), total.output_tokens, "usage-output-tokens"),
      tile("Cost", costNodes(total.cost_total, total.unpriced_calls), total.cost_total, "usage-cost"),
      tile("Unpriced calls", fmtInt(total.unpriced_calls), total.unpriced_calls, "usage-unpriced")),
    h("div", { class: "charts" },
      stackedBars({ id: "chart-cost-model-day", title: "Cost per day by model", categories: days, formatCategory: cat,
        series: perDay(byDayModel, "model", "cost_total", days, models), format: fmtCost, note: " · UTC days" }),
      stackedBars({ id: "chart-tokens-model-day", title: "Tokens per day by model", categories: days, formatCategory: cat,
        series: perDay(byDayModel, "model", "total_tokens", days, models), format: fmtInt, formatAxis: fmtCompact }),
      stackedBars({ id: "chart-cost-user-day", title: "Cost per day by user", categories: days, formatCategory: cat,
        series: perDay(stats.by_day_user, "user", "cost_total", days, users), format: fmtCost }),
      stackedBars({ id: "chart-tokens-user-day", title: "Tokens per day by user", categories: days, formatCategory: cat,
        series: perDay(stats.by_day_user, "user", "total_tokens", days, users), format: fmtInt, formatAxis: fmtCompact }),
      hbars({ id: "chart-cost-by-model", title: "Cost by model", format: fmtCost,
        items: priced(notRejected(usage.by_model)).map((r) => ({ label: r.model || "(unknown)", value: r.cost_total })) }),
      hbars({ id: "chart-cost-by-user", title: "Cost by user", format: fmtCost,
        items: priced(usage.by_user).map((r) => ({ label: r.user || NO_USER, value: r.cost_total })) }),
      hbars({ id: "chart-cost-by-client", title: "Cost by tool", format: fmtCost, note: " · priced calls",
        items: priced(clients.data).map((r) => ({ label: r.client || "(unknown)", value: r.cost_total })) }),
      hbars({ id: "chart-calls-by-client", title: "Calls by tool", format: fmtInt,
        items: clients.data.map((r) => ({ label: r.client || "(unknown)", value: r.calls })) }),
      lines({ id: "chart-latency", title: `Latency p50 / p95 ${per}`, series: latency("duration"), format: fmtMs, formatX, xTicks,
        note: " · successful calls, UTC" }),
      lines({ id: "chart-ttft", title: `Time to first token p50 / p95 ${per}`, series: latency("ttft"), format: fmtMs, formatX, xTicks,
        note: " · successful calls, UTC" })),
    totalsTable("usage-by-model", "model", usage.by_model, "model", total),
    totalsTable("usage-by-user", "user", usage.by_user, "user", total),
    clientsTable(clients.data),
    unpricedSection(unpriced),
  );
}

export async function usageView(main, ctx) {
  let range = rangeFrom(ctx.params, "30");
  let last = "";
  const content = h("div", { id: "usage-content" });
  const picker = rangePicker("usage", range, (r) => {
    range = r;
    history.replaceState(null, "", hashFor("usage", null, rangeParams(range)));
    refresh().catch(() => {});
  });
  add(main, h("div", { class: "toolbar" }, h("h1", {}, "Usage"), h("span", { class: "spacer" }), picker), content);

  async function refresh() {
    const { since, until } = bounds(range);
    const usage = await api("api/usage", { since, until });
    const bucket = range.range === "1" || usage.by_day.length <= 2 ? "hour" : "day";
    const [stats, clients, unpriced] = await Promise.all([
      api("api/stats", { since, until, bucket }), api("api/usage", { since, until, group_by: "client" }),
      api("api/unpriced-models", { since, until }),
    ]);
    const signature = JSON.stringify([range, usage, stats, clients, unpriced]);
    if (signature === last || !ctx.alive()) return;
    last = signature;
    render(content, usage, stats, clients, unpriced, until);
  }
  await refresh();
  return refresh;
}
