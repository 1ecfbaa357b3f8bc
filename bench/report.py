# ruff: noqa: RUF001
"""Tables and the report (docs/benchmarks.md), from the raw results `bench.run` collects; the budget check is
in `bench.budget`, the per-repeat derived numbers in `bench.cells`.

Every derived number is computed within one repeat (added latency against direct-to-mock in the same
repeat and cell; ratios against LiteLLM Proxy in the same repeat and cell); the summary shows the
median over repeats, and the per-repeat table shows each one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bench.budget import budget, budget_table
from bench.cells import MODE_LABEL, derive, fmt, median, table, targets_of


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
            row[key] = median(d.get(key) for d in ds)
        row["peak_rss_mb"] = max((d["peak_rss_mb"] for d in ds if d["peak_rss_mb"] is not None), default=None)
        row["errors"] = sum(d["errors"] for d in ds)
        rows.append(row)
    return rows


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
                fmt(r["rps"], 1),
                f"{r['x_litellm']:.1f}×" if r["x_litellm"] is not None else "–",
                fmt(r["p50"]),
                fmt(r["p99"]),
                fmt(r["add50"], 3),
                fmt(r["add99"], 2),
                fmt(r["ttft_add50"], 3),
                fmt(r["cpu_ms"], 3),
                fmt(r["peak_rss_mb"], 0),
                str(r["errors"]),
                fmt(r["other_cpu_pct"], 0),
            ]
        )
    return table(headers, body, "lllrrrrrrrrrrr")


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
            text = fmt(d["rps"], 1)
            if d["x_litellm"] is not None:
                text += f" ({d['x_litellm']:.1f}×)"
            if d["add50"] is not None:
                text += f" · +{fmt(d['add50'], 3)}"
            if d["cpu_ms"] is not None:
                text += f" · {fmt(d['cpu_ms'], 3)}"
            if d["errors"]:
                text += f" · {d['errors']} err"
            row.append(text)
        body.append(row)
    return table(headers, body, "lrl" + "r" * len(repeats))


def starts_table(starts: list[dict[str, Any]]) -> str:
    order = targets_of(starts)
    body = []
    for target in order:
        ss = [s for s in starts if s["target"] == target]
        body.append(
            [
                target,
                " / ".join(f"{s['cold_start_s']:.2f}" for s in ss),
                fmt(median(s["idle_rss_mb"] for s in ss), 0),
                fmt(max((s.get("hwm_mb") or 0 for s in ss), default=None), 0),
                str(ss[0]["processes"]) if ss else "–",
            ]
        )
    return table(
        ["target", "cold start to ready, s (each repeat)", "idle RSS MB", "peak RSS MB (VmHWM)", "processes"], body
    )


# --- soak --------------------------------------------------------------------------------------------------


def soak_summary(
    samples: list[tuple[float, float]], result: dict[str, Any], seconds: float, cpu_s: float
) -> dict[str, Any]:
    """Growth is measured from the end of warm-up (10% of the run, at least 10 s) to the end."""
    warm = max(10.0, seconds * 0.1) if seconds >= 60 else seconds * 0.2
    after = [s for s in samples if s[0] >= warm] or samples
    start = after[0][1] if after else 0.0
    end = median(v for _, v in after[-3:]) or 0.0
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
                    fmt(metrics.get("lost"), 0),
                ]
            )
        out += [
            table(
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
            table(
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
            f"{fmt(soak['p50'])} ms, p99 {fmt(soak['p99'])} ms, {soak['errors']} errors, "
            f"{fmt(soak['cpu_ms_per_call'], 3)} ms CPU per call. RSS {soak['rss_start_mb']:.1f} MB after warm-up → "
            f"{soak['rss_end_mb']:.1f} MB at the end ({soak['growth_pct']:+.1f}%), max {soak['rss_max_mb']:.1f} MB. "
            f"Local store: {soak.get('stored', '?'):,} traces for {soak.get('answered', '?'):,} answered calls; "
            f"Langfuse export outbox when the load stopped: {soak.get('export_backlog', '?'):,} rows; "
            f"trace records lost (`llm_scope_trace_records_lost_total`): {fmt(soak.get('lost'), 0)}.",
            "",
        ]
        step = max(1, len(soak["samples"]) // 12)
        pts = soak["samples"][::step]
        out += [
            table(
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
        "- The load generator and the mock take CPU from the proxy"
        + (" (pinned apart: see the notes)" if a.get("gateway_cores") else ", on the same cores")
        + ", so absolute requests/s are lower than on a bigger box; per-call CPU and the ratios are the stable "
        "numbers.",
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
