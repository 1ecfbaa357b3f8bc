# ruff: noqa: RUF001
"""Tables, ratios and the budget check, from the raw results `bench.run` collects.

Every derived number is computed within one repeat (added latency against direct-to-mock in the same
repeat and cell; ratios against LiteLLM Proxy in the same repeat and cell); the summary shows the
median over repeats, and the per-repeat table shows each one.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

PROXIES_ORDER = ("direct", "passthrough", "llm-scope", "llm-scope-w2", "llm-scope-w3", "llm-scope-w4", "litellm")
MODE_LABEL = {"nonstream": "non-stream", "stream": "stream", "mixed": "mixed"}


def _fmt(v: float | None, digits: int = 2) -> str:
    if v is None:
        return "–"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    return f"{v:.{digits}f}"


def _median(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def cell_line(c: dict[str, Any]) -> str:
    parts = [
        f"{c['target']:<13} {MODE_LABEL[c['mode']]:<10} c={c['c']:<3}",
        f"{c['rps']:>9.1f} req/s",
        f"p50 {_fmt(c['p50'])} ms",
        f"p99 {_fmt(c['p99'])} ms",
    ]
    if c["ttft50"] is not None:
        parts.append(f"ttft {_fmt(c['ttft50'])} ms")
    if c["cpu_ms"] is not None:
        parts.append(f"cpu {c['cpu_ms']:.3f} ms/req")
    if c["peak_rss_mb"] is not None:
        parts.append(f"rss {c['peak_rss_mb']:.0f} MB")
    if c.get("export_backlog"):
        parts.append(f"export backlog {c['export_backlog']} rows, drained in {c['drain_s']:.0f} s")
    if c.get("export_left"):
        parts.append(f"({c['export_left']} rows left, their CPU extrapolated)")
    if c.get("other_cpu_pct", 0) >= 5:
        parts.append(f"[other work on the machine: {c['other_cpu_pct']:.0f}% CPU]")
    if c["errors"]:
        parts.append(f"ERRORS {c['errors']}: {c['error_samples'][:1]}")
    return "  ".join(parts)


# --- derived numbers ---------------------------------------------------------------------------------------


def derive(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each cell plus what it adds over direct and its throughput ratio to LiteLLM, same repeat and cell."""
    index = {(c["repeat"], c["target"], c["mode"], c["c"]): c for c in cells}
    out = []
    for c in cells:
        d = dict(c)
        base = index.get((c["repeat"], "direct", c["mode"], c["c"]))
        lite = index.get((c["repeat"], "litellm", c["mode"], c["c"]))
        for key, src in (("add50", "p50"), ("add99", "p99"), ("ttft_add50", "ttft50"), ("ttft_add99", "ttft99")):
            d[key] = (
                c[src] - base[src]
                if base and c["target"] != "direct" and c[src] is not None and base[src] is not None
                else None
            )
        d["x_litellm"] = c["rps"] / lite["rps"] if lite and lite["rps"] and c["target"] != "litellm" else None
        out.append(d)
    return out


def targets_of(cells: list[dict[str, Any]]) -> list[str]:
    names = {c["target"] for c in cells}
    return [t for t in PROXIES_ORDER if t in names] + sorted(names - set(PROXIES_ORDER))


def summary_rows(derived: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for d in derived:
        groups.setdefault((d["mode"], d["target"], d["c"]), []).append(d)
    order = targets_of(derived)
    rows = []
    for (mode, target, c), ds in sorted(
        groups.items(), key=lambda kv: (list(MODE_LABEL).index(kv[0][0]), kv[0][2], order.index(kv[0][1]))
    ):
        row: dict[str, Any] = {"mode": mode, "target": target, "c": c, "repeats": len(ds)}
        for key in (
            "rps",
            "p50",
            "p99",
            "add50",
            "add99",
            "ttft50",
            "ttft_add50",
            "cpu_ms",
            "x_litellm",
            "other_cpu_pct",
        ):
            row[key] = _median(d.get(key) for d in ds)
        row["peak_rss_mb"] = max((d["peak_rss_mb"] for d in ds if d["peak_rss_mb"] is not None), default=None)
        row["errors"] = sum(d["errors"] for d in ds)
        rows.append(row)
    return rows


def _table(headers: list[str], rows: list[list[str]], align: str | None = None) -> str:
    align = align or "l" + "r" * (len(headers) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(sep) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def summary_table(rows: list[dict[str, Any]]) -> str:
    headers = [
        "mode", "target", "conc.", "req/s", "× LiteLLM", "p50 ms", "p99 ms", "added p50 ms", "added p99 ms",
        "TTFT added p50 ms", "proxy CPU ms/req", "peak RSS MB", "errors", "other load %",
    ]  # fmt: skip
    body = []
    for r in rows:
        body.append(
            [
                MODE_LABEL[r["mode"]],
                r["target"],
                str(r["c"]),
                _fmt(r["rps"], 1),
                f"{r['x_litellm']:.1f}×" if r["x_litellm"] is not None else "–",
                _fmt(r["p50"]),
                _fmt(r["p99"]),
                _fmt(r["add50"], 3),
                _fmt(r["add99"], 2),
                _fmt(r["ttft_add50"], 3),
                _fmt(r["cpu_ms"], 3),
                _fmt(r["peak_rss_mb"], 0),
                str(r["errors"]),
                _fmt(r["other_cpu_pct"], 0),
            ]
        )
    return _table(headers, body, "lllrrrrrrrrrrr")


def repeats_table(derived: list[dict[str, Any]]) -> str:
    repeats = sorted({d["repeat"] for d in derived})
    order = targets_of(derived)
    index = {(d["mode"], d["c"], d["target"], d["repeat"]): d for d in derived}
    keys = sorted(
        {(d["mode"], d["c"], d["target"]) for d in derived},
        key=lambda k: (list(MODE_LABEL).index(k[0]), k[1], order.index(k[2])),
    )
    headers = ["mode", "conc.", "target"] + [f"r{r}: req/s (× LiteLLM) · +p50 ms · CPU ms" for r in repeats]
    body = []
    for mode, c, target in keys:
        row = [MODE_LABEL[mode], str(c), target]
        for r in repeats:
            d = index.get((mode, c, target, r))
            if d is None:
                row.append("–")
                continue
            text = _fmt(d["rps"], 1)
            if d["x_litellm"] is not None:
                text += f" ({d['x_litellm']:.1f}×)"
            if d["add50"] is not None:
                text += f" · +{_fmt(d['add50'], 3)}"
            if d["cpu_ms"] is not None:
                text += f" · {_fmt(d['cpu_ms'], 3)}"
            if d["errors"]:
                text += f" · {d['errors']} err"
            row.append(text)
        body.append(row)
    return _table(headers, body, "lrl" + "r" * len(repeats))


def starts_table(starts: list[dict[str, Any]]) -> str:
    order = targets_of(starts)
    body = []
    for target in order:
        ss = [s for s in starts if s["target"] == target]
        body.append(
            [
                target,
                " / ".join(f"{s['cold_start_s']:.2f}" for s in ss),
                _fmt(_median(s["idle_rss_mb"] for s in ss), 0),
                _fmt(max((s.get("hwm_mb") or 0 for s in ss), default=None), 0),
                str(ss[0]["processes"]) if ss else "–",
            ]
        )
    return _table(
        ["target", "cold start to ready, s (each repeat)", "idle RSS MB", "peak RSS MB (VmHWM)", "processes"], body
    )


# --- budget ------------------------------------------------------------------------------------------------


def budget(data: dict[str, Any], target: str = "llm-scope") -> list[tuple[str, str, str]]:
    """(line, measured, PASS/MISS/n/a) for each line of the issue's budget, for one worker."""
    derived = derive(data["cells"])
    mine = [d for d in derived if d["target"] == target]

    def per_repeat(mode: str, c: int, key: str) -> list[float]:
        return [
            d[key]
            for d in sorted(mine, key=lambda d: d["repeat"])
            if d["mode"] == mode and d["c"] == c and d[key] is not None
        ]

    def verdict(ok: bool | None) -> str:
        return "n/a" if ok is None else ("PASS" if ok else "MISS")

    lines: list[tuple[str, str, str]] = []

    def ratio_line(label: str, mode: str, c: int, need: float) -> None:
        vals = per_repeat(mode, c, "x_litellm")
        med = _median(vals)
        shown = f"{med:.1f}× (repeats: {', '.join(f'{v:.1f}×' for v in vals)})" if vals else "not measured"
        lines.append((label, shown, verdict(None if med is None else med >= need)))

    def worst_line(label: str, mode: str, key: str, limit: float, unit: str, only: set[int] | None = None) -> None:
        cs = sorted(c for c in {d["c"] for d in mine if d["mode"] == mode} if only is None or c in only)
        meds = {c: _median(per_repeat(mode, c, key)) for c in cs}
        meds = {c: v for c, v in meds.items() if v is not None}
        if not meds:
            lines.append((label, "not measured", "n/a"))
            return
        worst = max(meds.values())
        shown = f"{worst:.3f} {unit} worst (" + ", ".join(f"c{c}: {v:.3f}" for c, v in meds.items()) + ")"
        lines.append((label, shown, verdict(worst <= limit)))

    def at_line(
        label: str, mode: str, c: int, key: str, limit: float, unit: str, also: Callable[[], str] = str
    ) -> None:
        vals = per_repeat(mode, c, key)
        med = _median(vals)
        if med is None:
            lines.append((label, "not measured", "n/a"))
            return
        shown = f"{med:.3f} {unit} (repeats: {', '.join(f'{v:.3f}' for v in vals)})" + also()
        lines.append((label, shown, verdict(med <= limit)))

    ratio_line("non-stream throughput ≥ 20× LiteLLM Proxy at c16", "nonstream", 16, 20)
    ratio_line("non-stream throughput ≥ 20× LiteLLM Proxy at c64", "nonstream", 64, 20)
    worst_line(
        "proxy CPU ≤ 0.3 ms per non-stream request under load (c16, c64)", "nonstream", "cpu_ms", 0.3, "ms", {16, 64}
    )

    def floor_at_c1() -> str:
        # The floor moves with this VM's speed from run to run (0.15-0.20 ms seen); the ratio within a repeat
        # says how much of a miss is the machine.
        floors = {
            d["repeat"]: d["cpu_ms"]
            for d in derived
            if d["target"] == "passthrough" and d["mode"] == "nonstream" and d["c"] == 1 and d["cpu_ms"]
        }
        floor = _median(floors.values())
        if floor is None:
            return ""
        ratios = [
            d["cpu_ms"] / floors[d["repeat"]]
            for d in mine
            if d["mode"] == "nonstream" and d["c"] == 1 and d["cpu_ms"] is not None and d["repeat"] in floors
        ]
        ratio = _median(ratios)
        return f"; the bare passthrough alone: {floor:.3f} ms" + (
            f" (llm-scope {ratio:.2f}× it, median of the repeats' ratios)" if ratio is not None else ""
        )

    at_line("proxy CPU ≤ 0.3 ms per non-stream request at c1", "nonstream", 1, "cpu_ms", 0.3, "ms", floor_at_c1)
    ratio_line("streams/s ≥ 10× LiteLLM Proxy at c64", "stream", 64, 10)
    worst_line("proxy CPU ≤ 1.5 ms per 20-chunk stream (every concurrency)", "stream", "cpu_ms", 1.5, "ms")

    def ttft_others() -> str:
        others = []
        for c in sorted({d["c"] for d in mine if d["mode"] == "stream"} - {1}):
            v = _median(per_repeat("stream", c, "ttft_add50"))
            if v is not None:
                others.append(f"c{c}: {v:.2f} ms")
        return f"; under load (queueing included) {', '.join(others)}" if others else ""

    at_line("first token added ≤ 1 ms p50 (c1)", "stream", 1, "ttft_add50", 1.0, "ms", ttft_others)
    at_line("added latency at c1 ≤ 0.5 ms p50 (non-stream)", "nonstream", 1, "add50", 0.5, "ms")
    starts = [s for s in data["starts"] if s["target"] == target]
    cold = _median(s["cold_start_s"] for s in starts)
    each = ", ".join(f"{s['cold_start_s']:.2f}" for s in starts)
    lines.append(
        (
            "cold start to /ready ≤ 1 s",
            f"{cold:.2f} s (repeats: {each})" if cold else "not measured",
            verdict(None if cold is None else cold <= 1.0),
        )
    )
    idle = _median(s["idle_rss_mb"] for s in starts)
    lines.append(
        (
            "idle RSS ≤ 100 MB",
            f"{idle:.0f} MB" if idle else "not measured",
            verdict(None if idle is None else idle <= 100),
        )
    )
    soak = data.get("soak")
    if soak:
        lines.append(
            (
                "RSS growth over the soak < 5%",
                f"{soak['growth_pct']:+.1f}% over {soak['minutes']:g} min "
                f"({soak['rss_start_mb']:.0f} → {soak['rss_end_mb']:.0f} MB)"
                + (
                    f"; but {soak['lost']:,.0f} traces were dropped, so memory is flat because the bounded trace "
                    "queue was full, not because the gateway kept up"
                    if soak.get("lost")
                    else ""
                ),
                verdict(soak["growth_pct"] < 5),
            )
        )
    else:
        lines.append(("RSS growth over the soak < 5%", "soak not run (--soak MINUTES)", "n/a"))
    traced = [t for t in data.get("tracing", []) if t["target"] == target]
    if soak and soak.get("stored") is not None:
        traced.append({"answered": soak["answered"], "stored": soak["stored"], "metrics": {"lost": soak.get("lost")}})
    if traced:
        answered = sum(t["answered"] for t in traced)
        stored = sum(t.get("stored") or 0 for t in traced)
        lost = sum((t.get("metrics") or {}).get("lost") or 0 for t in traced)
        lines.append(
            (
                "every call traced, none lost (local store = calls answered)",
                f"{stored:,} stored of {answered:,} answered, {lost:,.0f} counted lost"
                + (" (cells and soak)" if soak else ""),
                verdict(stored == answered and lost == 0),
            )
        )
    errors = sum(d["errors"] for d in mine) + (soak["errors"] if soak else 0)
    lines.append(
        ("zero errors", f"{errors} errors in {sum(d['count'] for d in mine)} measured calls", verdict(errors == 0))
    )
    return lines


def budget_table(lines: list[tuple[str, str, str]]) -> str:
    return _table(
        ["budget (one worker, everything on)", "measured (median of repeats)", ""], [list(x) for x in lines], "lll"
    )


# --- soak --------------------------------------------------------------------------------------------------


def soak_summary(
    samples: list[tuple[float, float]], result: dict[str, Any], seconds: float, cpu_s: float
) -> dict[str, Any]:
    """Growth is measured from the end of warm-up (10% of the run, at least 10 s) to the end."""
    warm = max(10.0, seconds * 0.1) if seconds >= 60 else seconds * 0.2
    after = [s for s in samples if s[0] >= warm] or samples
    start = after[0][1] if after else 0.0
    end = _median(v for _, v in after[-3:]) or 0.0
    return {
        "minutes": seconds / 60,
        "concurrency": result["concurrency"],
        "calls": result["count"],
        "errors": result["errors"],
        "error_samples": result["error_samples"],
        "rps": result["rps"],
        "p50": result["latency_ms"]["p50"],
        "p99": result["latency_ms"]["p99"],
        "rss_start_mb": start,
        "rss_end_mb": end,
        "rss_max_mb": max((v for _, v in samples), default=0.0),
        "growth_pct": (end - start) / start * 100 if start else 0.0,
        "cpu_ms_per_call": cpu_s * 1000 / result["count"] if result["count"] else None,
        "samples": samples,
    }


# --- documents ---------------------------------------------------------------------------------------------


def stdout_summary(data: dict[str, Any]) -> str:
    rows = summary_rows(derive(data["cells"]))
    text = [f"Summary: median of {data['args']['repeats']} repeat(s), {data['args']['duration']:g} s per cell", ""]
    text.append(summary_table(rows))
    text += ["", "Start-up and memory", "", starts_table(data["starts"])]
    text += ["", "Budget (issue 6)", ""]
    width = max(len(line) for line, _, _ in budget(data))
    text += [f"  {verdict:<4}  {line:<{width}}  {measured}" for line, measured, verdict in budget(data)]
    return "\n".join(text)


def markdown(data: dict[str, Any], *, chart_path: Path | None, md_path: Path) -> str:
    m, a = data["machine"], data["args"]
    derived = derive(data["cells"])
    rows = summary_rows(derived)
    lite = f"LiteLLM Proxy {m['litellm_proxy']}" if m.get("litellm_proxy") else "LiteLLM Proxy (not run)"
    out = [
        "# Benchmarks",
        "",
        f"llm-scope {m['llm_scope']} against {lite} and direct calls to the same mock upstream, "
        f"one worker each, on {m['cores']} cores. Generated by `make bench` on {m['date']}; "
        f"this run: `{data['command']}` ({data['elapsed_s'] / 60:.1f} min).",
        "",
        "Regenerate with `make bench` (the first run also installs LiteLLM Proxy and matplotlib into "
        "`bench/.venvs/`, outside the project's dependencies). Absolute numbers depend on the machine and on what "
        "else runs on it; the ratios within one run and the CPU per call are the point.",
        "",
    ]
    if chart_path is not None:
        rel = os.path.relpath(chart_path, md_path.parent)
        out += [f"![throughput and added latency by concurrency]({rel})", ""]
    out += [
        f"## Summary (median of {a['repeats']} repeat{'s' if a['repeats'] != 1 else ''})",
        "",
        "*added* = this target's latency minus direct-to-mock's, same repeat and cell; *× LiteLLM* = requests/s "
        "over LiteLLM Proxy's in the same repeat and cell; *proxy CPU* = user+system CPU of the proxy's processes "
        "per answered call, deferred work (trace writes, export) included; TTFT = time to the first body byte; "
        "*other load* = CPU used on the machine by processes outside the benchmark during the cell, as a share of "
        "all cores (this machine is shared; cells with a high value are less trustworthy).",
        "",
        summary_table(rows),
        "",
        "## Budget (issue 6)",
        "",
        budget_table(budget(data)),
        "",
        "## Start-up and memory",
        "",
        "Cold start: spawn of the server process until its readiness endpoint first answers 200 (llm-scope "
        "`/ready`, LiteLLM Proxy `/health/readiness`). Idle RSS: one second after ready, before any traffic, "
        "summed over the target's processes.",
        "",
        starts_table(data["starts"]),
        "",
    ]
    if data["tracing"]:
        out += ["## Everything on: what llm-scope recorded during the run", ""]
        body = []
        for t in data["tracing"]:
            sink = t.get("sink") or {}
            metrics = t.get("metrics") or {}
            body.append(
                [
                    str(t["repeat"]),
                    t["target"],
                    str(t["answered"]),
                    str(t.get("stored", t.get("store_error", "?"))),
                    str(t.get("outbox", "?")),
                    f"{sink.get('otlp_posts', '?')} ({(sink.get('bytes') or 0) / 1e6:.1f} MB, cumulative)",
                    f"{metrics['series']} series" if metrics.get("status") == 200 else "not served",
                    _fmt(metrics.get("lost"), 0),
                ]
            )
        out += [
            _table(
                [
                    "repeat",
                    "target",
                    "calls answered",
                    "traces in local store",
                    "outbox left",
                    "OTLP export POSTs to the sink",
                    "/metrics",
                    "lost (metric)",
                ],
                body,
                "rlrrrrlr",
            ),
            "",
        ]
    backlog = [d for d in derived if d.get("export_backlog") is not None]
    if backlog:
        out += [
            "Langfuse export backlog: rows in llm-scope's export outbox when the load of a cell stopped, and how "
            "long the outbox took to empty afterwards (the benchmark waits, so export CPU is charged to its cell"
            + (
                ", extrapolated for rows still left after --drain-max"
                if any(d.get("export_left") for d in backlog)
                else ""
            )
            + "). A backlog that grows with the load means export does not keep up with the calls.",
            "",
        ]
        body = [
            [str(d["repeat"]), d["target"], MODE_LABEL[d["mode"]], str(d["c"]), f"{d['count']:,}",
             f"{d['export_backlog']:,}", f"{d['drain_s']:.1f}", f"{d.get('export_left') or 0:,}"]
            for d in backlog
        ]  # fmt: skip
        out += [
            _table(
                [
                    "repeat",
                    "target",
                    "mode",
                    "conc.",
                    "measured calls",
                    "outbox rows at end of load",
                    "drain s",
                    "left",
                ],
                body,
                "rllrrrrr",
            ),
            "",
        ]
    soak = data.get("soak")
    if soak:
        out += [
            "## Soak",
            "",
            f"{soak['minutes']:g} minutes of mixed traffic (alternating non-stream and stream calls) at concurrency "
            f"{soak['concurrency']} against llm-scope: {soak['calls']:,} calls, {soak['rps']:.0f} req/s, p50 "
            f"{_fmt(soak['p50'])} ms, p99 {_fmt(soak['p99'])} ms, {soak['errors']} errors, "
            f"{_fmt(soak['cpu_ms_per_call'], 3)} ms CPU per call. RSS {soak['rss_start_mb']:.1f} MB after warm-up → "
            f"{soak['rss_end_mb']:.1f} MB at the end ({soak['growth_pct']:+.1f}%), max {soak['rss_max_mb']:.1f} MB. "
            f"Local store: {soak.get('stored', '?'):,} traces for {soak.get('answered', '?'):,} answered calls; "
            f"Langfuse export outbox when the load stopped: {soak.get('export_backlog', '?'):,} rows; "
            f"trace records lost (`llm_scope_trace_records_lost_total`): {_fmt(soak.get('lost'), 0)}.",
            "",
        ]
        step = max(1, len(soak["samples"]) // 12)
        pts = soak["samples"][::step]
        out += [
            _table(
                ["t (s)"] + [f"{t:.0f}" for t, _ in pts],
                [["RSS MB"] + [f"{v:.1f}" for _, v in pts]],
                "l" + "r" * len(pts),
            ),
            "",
        ]
    out += [
        "## Every repeat",
        "",
        "Each cell: requests/s (ratio to LiteLLM Proxy in that repeat) · added p50 latency over direct (ms) · proxy "
        "CPU ms per call.",
        "",
        repeats_table(derived),
        "",
    ]
    if data.get("notes"):
        out += ["## Notes", ""] + [f"- {n}" for n in data["notes"]] + [""]
    errs = [d for d in derived if d["errors"]]
    if errs:
        out += (
            ["## Errors", ""]
            + [
                f"- r{d['repeat']} {d['target']} {MODE_LABEL[d['mode']]} c{d['c']}: {d['errors']} errors, "
                f"e.g. {d['error_samples'][:2]}"
                for d in errs
            ]
            + [""]
        )
    out += [
        "## Method",
        "",
        f"- **Upstream**: `bench/mock_upstream.py`, a raw-asyncio + httptools OpenAI-compatible mock on uvloop, its "
        f"own process. Non-stream answers are a `chat.completion` with `usage`; streams are {a['chunks']} content "
        f"chunks {a['delay_ms']:g} ms apart, a finish chunk, a usage chunk when `stream_options.include_usage` is "
        "set, and `[DONE]`, sent with chunked transfer encoding.",
        "- **llm-scope**: `llm-scope serve --workers 1` with a config routing `bench-model` to the mock "
        "(`openai/` passthrough), everything a user would have on: a master key, the local SQLite trace store "
        "in a fresh data dir, Langfuse export (`LANGFUSE_PUBLIC_KEY`/`SECRET_KEY`/`HOST`) to `bench/otlp_sink.py`, "
        "a loopback receiver that answers `/api/public/otel/v1/traces` with 200, and Prometheus metrics. "
        + (
            ""
            if a["include_usage"]
            else "Stream clients do not ask for usage, so llm-scope adds "
            "`stream_options.include_usage` upstream and strips the usage event from what the client gets. "
        )
        + "Everything llm-scope does after the answer (trace write, export) is charged to the cell: CPU is read "
        "once the process has gone quiet after the load.",
        f"- **LiteLLM Proxy**: `litellm[proxy]=={m.get('litellm_proxy') or '?'}` from the package registry in its "
        "own virtualenv (`bench/.venvs/litellm-proxy`), `litellm --config … --num_workers 1`, the same model entry, "
        "`LITELLM_TELEMETRY=False`, `LITELLM_LOCAL_MODEL_COST_MAP=True`, no database, a master key (it refuses to "
        "start without one), `LITELLM_LOG=ERROR`.",
        f"- **Load**: `bench/loadgen.py`, a closed-loop generator in its own process (uvloop, pre-serialized "
        f"requests, httptools parsing): *c* connections each with one call in flight, {a['warmup']:g} s of "
        f"warm-up, then {a['duration']:g} s measured. Calls are counted as errors unless HTTP 200 and, for "
        "streams, ending with `[DONE]`.",
        f"- **Cells**: {', '.join(MODE_LABEL[x] for x in a['modes'])} × concurrency "
        f"{', '.join(str(c) for c in a['concurrency'])}; in each repeat every cell runs the targets back to back, "
        "first target rotating from cell to cell; each repeat starts fresh server processes (that is also where "
        "cold start and idle RSS come from).",
        "- **CPU** is utime+stime from `/proc/<pid>/stat` of the server process and its children, before and "
        "after the measured window. **Peak RSS** per cell is the highest sum of `VmRSS` sampled every 100 ms.",
        "- **Logging**: both proxies at their default log level (llm-scope logs one line per call, LiteLLM Proxy "
        "its access log), to a file.",
        "- **Profiling**: `python -m bench.profile --mode nonstream --concurrency 16 --gil` starts llm-scope the same "
        "way, samples it with py-spy (installed into `bench/.venvs/tools`) and prints the top functions by thread.",
        "- All processes share the same 2 cores: the load generator and the mock take CPU from the proxy, so "
        "absolute requests/s are lower than on a bigger box; per-call CPU and the ratios are the stable numbers.",
        "",
        "## Machine",
        "",
        f"- CPU: {m['cpu']}, {m['cores']} cores; memory {m['memory']}; Linux {m['kernel']}",
        f"- Python {m['python']}; llm-scope {m['llm_scope']} (uvicorn {m['uvicorn']}); "
        f"LiteLLM Proxy {m.get('litellm_proxy') or 'not run'}",
        f"- Date: {m['date']}; load average (1/5/15 min) {m.get('loadavg_start', '?')} at the start, "
        f"{m.get('loadavg_end', '?')} at the end (the benchmark itself keeps about 2 busy; more means other work "
        "shared the machine)",
        "",
    ]
    return "\n".join(out)
