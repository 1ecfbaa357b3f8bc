// Hand-drawn SVG charts: stacked bars per category, horizontal bars, and time-scaled lines.
// Colours come from CSS classes c0..c9 (see style.css), so the charts follow the light/dark theme.

import { h, s } from "./dom.js";

const WIDTH = 640;
const PALETTE_SIZE = 10;
const M = { top: 12, right: 14, bottom: 26, left: 62 };

export const colorClass = (i) => `c${i % PALETTE_SIZE}`;

/** Up to 5 round ticks from 0 covering max (steps of 1, 2 or 5 × 10^k). */
export function ticks(max) {
  if (!(max > 0)) return [0, 1];
  const raw = max / 4;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((v) => v >= raw);
  const out = [];
  for (let v = 0; v < max + step * 0.999; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

function frame(id, title, W, height, body) {
  return s(
    "svg",
    { id, "data-testid": id, viewBox: `0 0 ${W} ${height}`, role: "img", "aria-label": title, class: "chart-svg" },
    body,
  );
}

function yAxis(W, tickValues, y, formatAxis) {
  return tickValues.map((v) =>
    s(
      "g",
      { class: "tick" },
      s("line", { x1: M.left, x2: W - M.right, y1: y(v), y2: y(v), class: "grid" }),
      s("text", { x: M.left - 6, y: y(v) + 4, "text-anchor": "end", class: "axis" }, formatAxis(v)),
    ),
  );
}

function legend(names) {
  if (names.length < 2) return null;
  return h(
    "div",
    { class: "legend" },
    names.map((name, i) =>
      h("span", { class: "legend-item" }, h("span", { class: `swatch ${colorClass(i)}` }), name),
    ),
  );
}

export function figure(title, chart, names, note) {
  return h("figure", { class: "chart" }, h("figcaption", {}, title, note ? h("small", {}, note) : null), chart, legend(names || []));
}

/**
 * Series in a fixed order (so a name keeps its colour across charts), the rest after it by total, and beyond
 * `keep` summed into "other". Series: [{name, values[]}]; order: names, most important first.
 */
export function topSeries(series, order = [], keep = 7) {
  const total = (x) => x.values.reduce((a, b) => a + b, 0);
  const rank = (x) => (order.indexOf(x.name) + 1 || order.length + 1);
  const sorted = [...series].sort((a, b) => rank(a) - rank(b) || total(b) - total(a));
  if (sorted.length <= keep + 1) return sorted;
  const rest = sorted.slice(keep);
  const other = rest[0].values.map((_, i) => rest.reduce((a, x) => a + x.values[i], 0));
  return [...sorted.slice(0, keep), { name: "other", values: other }];
}

/** Stacked bars: one bar per category (e.g. day), one coloured segment per series (e.g. model). */
export function stackedBars({ id, title, categories, series, format, formatAxis, formatCategory, note }) {
  const W = WIDTH;
  const height = 220;
  const plotH = height - M.top - M.bottom;
  const plotW = W - M.left - M.right;
  const sums = categories.map((_, i) => series.reduce((a, x) => a + (x.values[i] || 0), 0));
  const tickValues = ticks(Math.max(0, ...sums));
  const top = tickValues[tickValues.length - 1] || 1;
  const y = (v) => M.top + plotH - (v / top) * plotH;
  const band = plotW / Math.max(1, categories.length);
  const barW = Math.max(2, Math.min(36, band * 0.7));
  const every = Math.ceil(categories.length / 10);
  const bars = categories.map((cat, i) => {
    let acc = 0;
    const x = M.left + band * i + (band - barW) / 2;
    const segments = series.map((ser, j) => {
      const v = ser.values[i] || 0;
      if (!v) return null;
      const rect = s(
        "rect",
        {
          x, y: y(acc + v), width: barW, height: Math.max(0.5, y(acc) - y(acc + v)),
          class: `seg ${colorClass(j)}`, "data-series": ser.name, "data-category": cat, "data-value": v,
        },
        s("title", {}, `${cat} · ${ser.name}: ${format(v)}`),
      );
      acc += v;
      return rect;
    });
    const label = i % every === 0
      ? s("text", { x: x + barW / 2, y: height - 8, "text-anchor": "middle", class: "axis" }, (formatCategory || String)(cat))
      : null;
    return s("g", { class: "bar", "data-category": cat, "data-total": sums[i] }, segments, label);
  });
  const chart = frame(id, title, W, height, [yAxis(W, tickValues, y, formatAxis || format), bars]);
  return figure(title, chart, series.map((x) => x.name), note);
}

/** Horizontal bars with their label and value, largest first. Items: [{label, value}]. */
export function hbars({ id, title, items, format, note }) {
  const W = WIDTH;
  const rowH = 26;
  const labelW = 170;
  const valueW = 90;
  const sorted = [...items].sort((a, b) => b.value - a.value);
  const height = Math.max(1, sorted.length) * rowH + 8;
  const max = Math.max(0, ...sorted.map((x) => x.value)) || 1;
  const span = W - labelW - valueW - 10;
  const rows = sorted.map((item, i) => {
    const yTop = 4 + i * rowH;
    const width = Math.max(1, (item.value / max) * span);
    const short = item.label.length > 24 ? item.label.slice(0, 23) + "…" : item.label;
    return s(
      "g",
      { class: "hbar", "data-testid": "bar", "data-label": item.label, "data-value": item.value },
      s("title", {}, `${item.label}: ${format(item.value)}`),
      s("text", { x: labelW - 8, y: yTop + 16, "text-anchor": "end", class: "label", "data-testid": "bar-label" }, short),
      s("rect", { x: labelW, y: yTop + 3, width, height: rowH - 8, rx: 3, class: `seg ${colorClass(i)}` }),
      s("text", { x: labelW + width + 6, y: yTop + 16, class: "value", "data-testid": "bar-value" }, format(item.value)),
    );
  });
  return figure(title, frame(id, title, W, height, rows), null, note);
}

/**
 * Lines over a time axis. Series: [{name, dashed, points: [{x: epoch ms, y}]}]. `step` draws a staircase (a
 * running total); `xTicks` puts the axis labels at given times (default: five evenly spaced).
 */
export function lines({ id, title, series, format, formatX, note, step, xTicks, width = WIDTH, height = 220 }) {
  const W = width;
  const plotH = height - M.top - M.bottom;
  const plotW = W - M.left - M.right;
  const xs = series.flatMap((x) => x.points.map((p) => p.x));
  let x0 = Math.min(...xs);
  let x1 = Math.max(...xs);
  if (!xs.length) [x0, x1] = [Date.now() - 86400000, Date.now()];
  if (x0 === x1) [x0, x1] = [x0 - 3600000, x1 + 3600000];
  const tickValues = ticks(Math.max(0, ...series.flatMap((x) => x.points.map((p) => p.y))));
  const top = tickValues[tickValues.length - 1] || 1;
  const x = (v) => M.left + ((v - x0) / (x1 - x0)) * plotW;
  const y = (v) => M.top + plotH - (v / top) * plotH;
  const at = xTicks || [0, 0.25, 0.5, 0.75, 1].map((f) => x0 + f * (x1 - x0));
  const seen = new Set();
  const xAxis = at.map((v) => {
    const label = formatX(v);
    if (seen.has(label)) return null;
    seen.add(label);
    const anchor = x(v) < M.left + 30 ? "start" : x(v) > W - M.right - 30 ? "end" : "middle";
    return s("text", { x: x(v), y: height - 8, "text-anchor": anchor, class: "axis" }, label);
  });
  const paths = series.map((ser, i) => {
    const pts = ser.points.filter((p) => p.y !== null && p.y !== undefined);
    const d = pts.map((p, k) => {
      const [px, py] = [x(p.x).toFixed(1), y(p.y).toFixed(1)];
      if (!k) return `M${px},${py}`;
      return step ? `H${px}V${py}` : `L${px},${py}`;
    }).join("");
    return s(
      "g",
      { class: `series ${colorClass(i)}`, "data-series": ser.name },
      pts.length > 1 ? s("path", { d, class: `line${ser.dashed ? " dashed" : ""}` }) : null,
      pts.map((p) =>
        s("circle", { cx: x(p.x), cy: y(p.y), r: 3, class: "dot", "data-value": p.y },
          s("title", {}, `${p.label ? p.label + " · " : ""}${ser.name} ${formatX(p.x)}: ${format(p.y)}`)),
      ),
    );
  });
  const chart = frame(id, title, W, height, [yAxis(W, tickValues, y, format), xAxis, paths]);
  return figure(title, chart, series.length > 1 ? series.map((x) => x.name) : [], note);
}
