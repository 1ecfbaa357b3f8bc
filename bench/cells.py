# ruff: noqa: RUF001
"""What the benchmark's report and its budget check share: ordering, formatting, and the numbers derived
within one repeat (added latency against direct-to-mock, throughput against LiteLLM Proxy, same cell)."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from typing import Any

PROXIES_ORDER = ("direct", "passthrough", "llm-scope", "llm-scope-w2", "llm-scope-w3", "llm-scope-w4", "litellm")
MODE_LABEL = {"nonstream": "non-stream", "stream": "stream", "mixed": "mixed"}


def fmt(v: float | None, digits: int = 2) -> str:
    if v is None:
        return "–"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    return f"{v:.{digits}f}"


def median(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


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


def table(headers: list[str], rows: list[list[str]], align: str | None = None) -> str:
    align = align or "l" + "r" * (len(headers) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(sep) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def cell_line(c: dict[str, Any]) -> str:
    parts = [
        f"{c['target']:<13} {MODE_LABEL[c['mode']]:<10} c={c['c']:<3}",
        f"{c['rps']:>9.1f} req/s",
        f"p50 {fmt(c['p50'])} ms",
        f"p99 {fmt(c['p99'])} ms",
    ]
    if c["ttft50"] is not None:
        parts.append(f"ttft {fmt(c['ttft50'])} ms")
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
