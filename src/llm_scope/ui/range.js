// The date-range picker of the call list and the usage view: a preset (last 24 hours … all time) or any span
// of days picked with two date inputs, both ends included, in the browser's local time. It lives in the URL
// (`range`, `from`, `to`) so a range can be shared as a link.

import { h } from "./dom.js";

export const PRESETS = [
  ["1", "Last 24 hours"], ["7", "Last 7 days"], ["30", "Last 30 days"], ["90", "Last 90 days"], ["all", "All time"],
  ["custom", "Custom range"],
];
const DAY_RE = /^\d{4}-\d{2}-\d{2}$/;

/** The range a view's URL asks for, with its default preset. */
export function rangeFrom(params, fallback) {
  const from = DAY_RE.test(params.get("from") || "") ? params.get("from") : "";
  const to = DAY_RE.test(params.get("to") || "") ? params.get("to") : "";
  const asked = params.get("range");
  const range = from || to ? "custom" : PRESETS.some(([v]) => v === asked) && asked !== "custom" ? asked : fallback;
  return { range, from, to };
}

function localMidnight(day) {
  const [y, m, d] = day.split("-").map(Number);
  return new Date(y, m - 1, d).getTime() / 1000;
}

/** {since, until} in epoch seconds for the API (null: open). A custom range ends after its last day. */
export function bounds(r) {
  if (r.range === "custom") {
    return { since: r.from ? localMidnight(r.from) : null, until: r.to ? localMidnight(r.to) + 86400 : null };
  }
  if (r.range === "all") return { since: null, until: null };
  return { since: Math.floor(Date.now() / 1000 - Number(r.range) * 86400), until: null };
}

/** What the URL keeps of a range. */
export function rangeParams(r) {
  return r.range === "custom" ? { from: r.from, to: r.to } : { range: r.range };
}

/** The picker: a preset select and two date inputs; onChange gets the new range. */
export function rangePicker(prefix, r, onChange) {
  const select = h("select", { id: `${prefix}-range`, "data-testid": `${prefix}-range`, title: "Time range" },
    PRESETS.map(([v, label]) => h("option", { value: v, selected: v === r.range }, label)));
  const day = (name, value) => h("input", { type: "date", id: `${prefix}-${name}`, "data-testid": `${prefix}-${name}`,
    value, class: "day", title: name === "from" ? "From (first day)" : "To (last day, included)" });
  const from = day("from", r.from);
  const to = day("to", r.to);
  const dates = h("span", { class: "dates", hidden: r.range !== "custom" }, from, h("span", { class: "muted" }, "–"), to);
  select.addEventListener("change", () => {
    dates.hidden = select.value !== "custom";
    if (select.value !== "custom") {
      from.value = to.value = "";
      onChange({ range: select.value, from: "", to: "" });
    } else if (from.value || to.value) {
      onChange({ range: "custom", from: from.value, to: to.value });
    }
  });
  const picked = () => {
    if (from.value && to.value && from.value > to.value) [from.value, to.value] = [to.value, from.value];
    onChange({ range: "custom", from: from.value, to: to.value });
  };
  from.addEventListener("change", picked);
  to.addEventListener("change", picked);
  return h("span", { class: "range-picker", "data-testid": `${prefix}-range-picker` }, select, dates);
}
