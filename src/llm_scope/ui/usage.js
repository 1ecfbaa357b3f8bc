// #/usage: spend and tokens by model and by user per day, totals, and latency p50/p95 over time (UTC buckets).

import { hbars, lines, stackedBars, topSeries } from "./charts.js";
import { add, api, clear, fmtCost, fmtInt, fmtMs, h, hashFor, num } from "./dom.js";
import { tile } from "./sessions.js";

const RANGES = [["1", "Last 24 hours"], ["7", "Last 7 days"], ["30", "Last 30 days"], ["90", "Last 90 days"], ["all", "All time"]];
const COMPACT = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 1 });
const NO_USER = "(no user)";
const DAY_MS = 86400000;

const fmtCompact = (v) => COMPACT.format(v);
const utcDay = (ms) => new Date(ms).toISOString().slice(0, 10);
const bucketMs = (b) => Date.parse(b.length === 10 ? `${b}T00:00:00Z` : `${b}:00Z`);

/** Every UTC day from the first with data to today, at least a week, so gaps show as gaps. */
function dayRange(days) {
  const today = Date.parse(`${utcDay(Date.now())}T00:00:00Z`);
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

function totalsTable(id, label, rows, key) {
  return h(
    "section",
    { class: "block" },
    h("h2", {}, `By ${label}`),
    h("table", { class: "grid", id, "data-testid": id },
      h("thead", {}, h("tr", {}, h("th", {}, label[0].toUpperCase() + label.slice(1)),
        ["Calls", "Tokens in", "Tokens out", "Cost"].map((c) => h("th", { class: "num" }, c)))),
      h("tbody", {}, rows.map((r) => {
        const name = r[key] || NO_USER;
        const filter = key === "user" ? { user: r.user } : { model: r.model };
        return h("tr", { "data-testid": `${key}-usage-row`, "data-name": name },
          h("td", {}, r[key] ? h("a", { href: hashFor("calls", null, filter) }, name) : name),
          num(fmtInt(r.calls), r.calls, { "data-col": "calls" }),
          num(fmtInt(r.input_tokens), r.input_tokens, { "data-col": "tokens-in" }),
          num(fmtInt(r.output_tokens), r.output_tokens, { "data-col": "tokens-out" }),
          num(fmtCost(r.cost_total), r.cost_total, { "data-col": "cost" }));
      }))),
  );
}

function render(content, usage, stats) {
  const total = usage.total;
  if (!total.calls) {
    add(clear(content), h("div", { class: "empty", "data-testid": "usage-empty" }, "No calls in this range yet."));
    return;
  }
  const days = dayRange(usage.by_day.map((r) => r.day));
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
  const models = usage.by_model.map((r) => r.model || "(unknown)");
  const users = usage.by_user.map((r) => r.user || NO_USER);
  add(clear(content),
    h("div", { class: "tiles" },
      tile("Calls", fmtInt(total.calls), total.calls, "usage-calls"),
      tile("Input tokens", fmtInt(total.input_tokens), total.input_tokens, "usage-input-tokens"),
      tile("Output tokens", fmtInt(total.output_tokens), total.output_tokens, "usage-output-tokens"),
      tile("Cost", fmtCost(total.cost_total), total.cost_total, "usage-cost")),
    h("div", { class: "charts" },
      stackedBars({ id: "chart-cost-model-day", title: "Cost per day by model", categories: days, formatCategory: cat,
        series: perDay(usage.by_day_model, "model", "cost_total", days, models), format: fmtCost, note: " · UTC days" }),
      stackedBars({ id: "chart-tokens-model-day", title: "Tokens per day by model", categories: days, formatCategory: cat,
        series: perDay(usage.by_day_model, "model", "total_tokens", days, models), format: fmtInt, formatAxis: fmtCompact }),
      stackedBars({ id: "chart-cost-user-day", title: "Cost per day by user", categories: days, formatCategory: cat,
        series: perDay(stats.by_day_user, "user", "cost_total", days, users), format: fmtCost }),
      stackedBars({ id: "chart-tokens-user-day", title: "Tokens per day by user", categories: days, formatCategory: cat,
        series: perDay(stats.by_day_user, "user", "total_tokens", days, users), format: fmtInt, formatAxis: fmtCompact }),
      hbars({ id: "chart-cost-by-model", title: "Cost by model", format: fmtCost,
        items: usage.by_model.map((r) => ({ label: r.model || "(unknown)", value: r.cost_total || 0 })) }),
      hbars({ id: "chart-cost-by-user", title: "Cost by user", format: fmtCost,
        items: usage.by_user.map((r) => ({ label: r.user || NO_USER, value: r.cost_total || 0 })) }),
      lines({ id: "chart-latency", title: `Latency p50 / p95 ${per}`, series: latency("duration"), format: fmtMs, formatX, xTicks,
        note: " · successful calls, UTC" }),
      lines({ id: "chart-ttft", title: `Time to first token p50 / p95 ${per}`, series: latency("ttft"), format: fmtMs, formatX, xTicks,
        note: " · successful calls, UTC" })),
    h("div", { class: "io" }, totalsTable("usage-by-model", "model", usage.by_model, "model"),
      totalsTable("usage-by-user", "user", usage.by_user, "user")),
  );
}

export async function usageView(main, ctx) {
  let range = RANGES.some(([v]) => v === ctx.params.get("range")) ? ctx.params.get("range") : "30";
  let last = "";
  const content = h("div", { id: "usage-content" });
  const select = h("select", { id: "usage-range", "data-testid": "usage-range" },
    RANGES.map(([v, label]) => h("option", { value: v, selected: v === range }, label)));
  select.addEventListener("change", () => {
    range = select.value;
    history.replaceState(null, "", hashFor("usage", null, { range }));
    refresh().catch(() => {});
  });
  add(main, h("div", { class: "toolbar" }, h("h1", {}, "Usage"), h("span", { class: "spacer" }), select), content);

  async function refresh() {
    const since = range === "all" ? null : Math.floor(Date.now() / 1000 - Number(range) * 86400);
    const usage = await api("api/usage", { since });
    const bucket = range === "1" || usage.by_day.length <= 2 ? "hour" : "day";
    const stats = await api("api/stats", { since, bucket });
    const signature = JSON.stringify([range, usage, stats]);
    if (signature === last || !ctx.alive()) return;
    last = signature;
    render(content, usage, stats);
  }
  await refresh();
  return refresh;
}
