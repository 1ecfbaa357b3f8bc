// Every table of the dashboard (`table.grid`), whichever view built it, sorts by a click on its header and
// exports as CSV: one observer over the view instead of code in each view, so a table added later gets both.
//
// Sorting is by each cell's exact value (data-value, which every number cell carries) or else its text; unknown
// cells ("—", an empty data-value) sort last either way, so unknown never passes for 0. A view that refreshes
// its rows (the live call list) keeps the order the user chose: the observer sorts the new rows again. The CSV
// holds what the table shows, with exact numbers and unknown as an empty cell; the call list also links to the
// server's CSV of every matching call (/api/traces?format=csv).

import { h } from "./dom.js";

const sorts = new Map(); // table id → { col, dir }: survives a view rebuilding its table on refresh
const DASH = "—";

function cellValue(td) {
  if (!td) return "";
  if (td.hasAttribute("data-value")) return td.getAttribute("data-value");
  if (td.dataset.full) return td.dataset.full;
  const text = td.textContent.trim();
  return text === DASH ? "" : text;
}

function sortKey(td) {
  const raw = cellValue(td);
  if (raw === "") return null;
  const n = Number(raw);
  return Number.isFinite(n) && raw.trim() !== "" ? n : raw.toLowerCase();
}

function compare(a, b) {
  if (typeof a === "number" && typeof b === "number") return a - b;
  return String(a).localeCompare(String(b), undefined, { numeric: true });
}

function rowsOf(table) {
  return table.tBodies[0] ? [...table.tBodies[0].rows] : [];
}

/** Sort the body by the saved column; returns whether rows moved. */
function applySort(table) {
  const state = sorts.get(table.id);
  if (!state || !table.tBodies[0]) return false;
  const rows = rowsOf(table);
  const keyed = rows.map((row, i) => ({ row, i, key: sortKey(row.cells[state.col]) }));
  keyed.sort((x, y) => {
    if (x.key === null || y.key === null) return x.key === y.key ? x.i - y.i : x.key === null ? 1 : -1;
    return (state.dir === "asc" ? compare(x.key, y.key) : compare(y.key, x.key)) || x.i - y.i;
  });
  if (keyed.every((k, i) => k.row === rows[i])) return false;
  table.tBodies[0].append(...keyed.map((k) => k.row));
  return true;
}

function markHeaders(table) {
  const state = sorts.get(table.id);
  const heads = table.tHead?.rows[0] ? [...table.tHead.rows[0].cells] : [];
  heads.forEach((th, i) => {
    const dir = state && state.col === i ? state.dir : null;
    if (dir) th.dataset.sort = dir;
    else delete th.dataset.sort;
    th.setAttribute("aria-sort", dir ? (dir === "asc" ? "ascending" : "descending") : "none");
  });
}

function onHeaderClick(table, th) {
  const col = th.cellIndex;
  const state = sorts.get(table.id);
  const numeric = rowsOf(table).some((r) => typeof sortKey(r.cells[col]) === "number");
  const first = numeric ? "desc" : "asc"; // the biggest spender, or A to Z, first
  const dir = state && state.col === col ? (state.dir === "asc" ? "desc" : "asc") : first;
  sorts.set(table.id, { col, dir });
  markHeaders(table);
  applySort(table);
}

function csvCell(value) {
  let text = String(value ?? "");
  if (/^[=+\-@]/.test(text) && !Number.isFinite(Number(text))) text = `'${text}`; // a spreadsheet would run it
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** The table as CSV text: header labels, then each row's exact values. A cost column whose cells count
 * unpriced calls beside the dollars ("$X + N unpriced") gets a column of those counts next to it, so the CSV
 * never reads as if the priced calls were all. */
export function tableCsv(table) {
  const heads = table.tHead?.rows[0] ? [...table.tHead.rows[0].cells].map((th) => th.textContent.trim()) : [];
  const rows = rowsOf(table);
  const counted = heads.map((_, i) => rows.some((r) => r.cells[i]?.hasAttribute("data-unpriced")));
  const lines = [heads.flatMap((head, i) => (counted[i] ? [head, `${head}: unpriced calls`] : [head])).map(csvCell).join(",")];
  for (const row of rows) {
    const cells = [...row.cells].flatMap((td, i) => (counted[i] ? [cellValue(td), td.dataset.unpriced || "0"] : [cellValue(td)]));
    lines.push(cells.map(csvCell).join(","));
  }
  return lines.join("\n") + "\n";
}

function download(table) {
  const blob = new Blob([tableCsv(table)], { type: "text/csv;charset=utf-8" });
  const url = URL.createObjectURL(blob);
  const a = h("a", { href: url, download: `${table.id || "table"}.csv` });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** Make a header row's cells sortable (again when a view replaces its header row, e.g. with a new column). */
function decorateHeader(table) {
  const row = table.tHead?.rows[0];
  if (!row || row.dataset.sortable) return;
  row.dataset.sortable = "1";
  for (const th of row.cells) {
    th.classList.add("sortable");
    th.title = th.title || "Sort";
    th.addEventListener("click", () => onHeaderClick(table, th));
    th.tabIndex = 0;
    th.addEventListener("keydown", (e) => (e.key === "Enter" || e.key === " ") && (e.preventDefault(), onHeaderClick(table, th)));
  }
  markHeaders(table);
}

function enhance(table) {
  if (table.id && !table.tHead?.rows[0]) return; // its view fills the header in later: enhanced once it does
  table.dataset.enhanced = "1";
  if (!table.id) return;
  decorateHeader(table);
  markHeaders(table);
  applySort(table);
  const button = h("button", { type: "button", class: "link small csv", "data-testid": `csv-${table.id}`,
    title: "Download this table as CSV" }, "CSV ↓");
  button.addEventListener("click", () => download(table));
  const anchor = table.parentElement?.classList.contains("table-wrap") ? table.parentElement : table;
  anchor.before(h("div", { class: "table-tools" }, button));
}

/** Watch a container: enhance each table.grid that appears, and keep each sorted table sorted. */
export function watchTables(root) {
  const observer = new MutationObserver(() => {
    for (const table of root.querySelectorAll("table.grid")) {
      if (!table.dataset.enhanced) enhance(table);
      else {
        if (table.id) decorateHeader(table);
        applySort(table);
      }
    }
    observer.takeRecords(); // our own moves are not news
  });
  observer.observe(root, { childList: true, subtree: true });
}
