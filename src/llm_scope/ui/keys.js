// #/keys (master key only): every virtual key with its owner, allowed models, rate limits, and a bar per
// budget showing what it spent today and this month (UTC) against it. Unpriced calls are counted beside the
// dollars, never read as $0; a key is shown by its hint, never its secret.

import { add, api, clear, costNodes, fmtCost, fmtInt, fmtTime, h, hashFor, isoTime, num } from "./dom.js";

const DASH = "—";
const WARN = 0.8; // the budget alerts' first threshold: bars turn amber here, red at 100%

/** One budget: a bar filled to spend / budget (capped at full), and "$spent of $budget · N%". */
function budgetCell(col, budget, spend) {
  if (budget === null || budget === undefined) {
    return h("td", { "data-col": col, "data-budget": "", "data-value": spend.usd ?? "" },
      h("span", { class: "muted" }, "no budget"), spend.calls ? [" · ", costNodes(spend.usd, spend.unpriced_calls)] : "");
  }
  const used = spend.usd ?? 0; // unpriced calls are not in it: they are shown beside it, not as $0
  const ratio = budget > 0 ? used / budget : used > 0 ? Infinity : 0;
  const level = ratio >= 1 ? "over" : ratio >= WARN ? "warn" : "ok";
  const fill = h("div", { class: "fill" });
  fill.style.width = `${Math.min(100, ratio * 100).toFixed(1)}%`; // CSSOM, which the page's CSP allows
  const pct = (spend.unpriced_calls ? "at least " : "") + (Number.isFinite(ratio) ? `${Math.round(ratio * 100)}%` : "over");
  return h("td", { "data-col": col, "data-budget": budget, "data-value": spend.usd ?? "",
    "data-ratio": Number.isFinite(ratio) ? ratio.toFixed(4) : "", "data-level": level },
    h("div", { class: `budget ${level}`, "data-testid": "budget-bar", role: "progressbar",
      "aria-valuemin": 0, "aria-valuemax": budget, "aria-valuenow": used }, fill),
    h("div", { class: "budget-text small" }, costNodes(spend.usd, spend.unpriced_calls), ` of ${fmtCost(budget)} · ${pct}`));
}

function row(key) {
  const revoked = key.revoked !== null && key.revoked !== undefined;
  return h("tr", { "data-testid": "key-row", "data-key-id": key.id, class: revoked ? "revoked" : null },
    h("td", { "data-col": "key" }, h("div", { class: "model" }, key.id), h("code", { class: "muted small" }, key.hint)),
    h("td", { "data-col": "owner" }, key.owner),
    h("td", { "data-col": "models" }, key.models === null ? h("span", { class: "muted" }, "all models") : key.models.join(", ")),
    budgetCell("daily", key.budget_daily_usd, key.spend_today),
    budgetCell("monthly", key.budget_monthly_usd, key.spend_month),
    num(key.rpm === null ? DASH : fmtInt(key.rpm), key.rpm, { "data-col": "rpm" }),
    num(key.tpm === null ? DASH : fmtInt(key.tpm), key.tpm, { "data-col": "tpm" }),
    h("td", { "data-col": "created", title: isoTime(key.created) }, fmtTime(key.created)),
    h("td", { "data-col": "last-used", title: isoTime(key.last_used), "data-value": key.last_used ?? "" },
      key.last_used ? fmtTime(key.last_used) : "never"),
    h("td", { "data-col": "status" }, revoked
      ? h("span", { class: "badge bad", title: isoTime(key.revoked) }, "revoked")
      : h("span", { class: "badge ok" }, "active")));
}

export async function keysView(main, ctx) {
  const showRevoked = h("input", { type: "checkbox", "data-testid": "keys-revoked", checked: ctx.params.get("revoked") === "1" });
  const count = h("span", { class: "muted", "data-testid": "keys-count" });
  const body = h("tbody", {});
  const content = h("div", { class: "table-wrap" },
    h("table", { class: "grid", id: "keys", "data-testid": "keys-table" },
      h("thead", {}, h("tr", {}, ["Key", "Owner", "Models", "Daily budget", "Monthly budget"].map((c) => h("th", {}, c)),
        ["RPM", "TPM"].map((c) => h("th", { class: "num" }, c)), ["Created", "Last used", "Status"].map((c) => h("th", {}, c)))),
      body));
  const window = h("span", { class: "muted small", "data-testid": "keys-window" });
  add(main, h("div", { class: "toolbar" }, h("h1", {}, "Keys"), count, h("span", { class: "spacer" }), window,
    h("label", { class: "check" }, showRevoked, " Show revoked")), content);
  let last = "";

  async function refresh() {
    const found = await api("api/keys");
    const keys = found.data.filter((k) => showRevoked.checked || k.revoked === null);
    const signature = JSON.stringify([showRevoked.checked, found]);
    if (signature === last || !ctx.alive()) return;
    last = signature;
    window.textContent = `Spend today (${found.day}) and this month (${found.month}), UTC`;
    count.textContent = `${keys.length} key${keys.length === 1 ? "" : "s"}`;
    if (!keys.length) {
      add(clear(body), h("tr", {}, h("td", { colspan: 10, class: "empty", "data-testid": "keys-empty" },
        "No virtual keys yet. Create one with POST /admin/keys or `llm-scope keys create`.")));
      return;
    }
    add(clear(body), keys.map(row));
  }
  showRevoked.addEventListener("change", () => {
    history.replaceState(null, "", hashFor("keys", null, { revoked: showRevoked.checked ? "1" : "" }));
    refresh().catch(() => {});
  });
  await refresh();
  return refresh;
}
