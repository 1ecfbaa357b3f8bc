"""Draw docs/benchmark.png from the raw results: `python bench/chart.py results.json out.png`.

Runs in whichever Python has matplotlib (the benchmark's own bench/.venvs/tools, so matplotlib never
becomes a project dependency); reads only the JSON, imports nothing of the project.
"""

from __future__ import annotations

import json
import statistics
import sys
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter

COLORS = {
    "direct": "#888888",
    "passthrough": "#2ca02c",
    "llm-scope": "#1f77b4",
    "llm-scope-w2": "#17becf",
    "litellm": "#d62728",
}
LABELS = {
    "direct": "direct to mock",
    "passthrough": "bare passthrough (floor)",
    "litellm": "LiteLLM Proxy",
    "llm-scope-w2": "llm-scope, 2 workers",
}


def medians(cells: list[dict[str, Any]], mode: str, key: str, *, added: bool) -> dict[str, dict[int, float]]:
    index = {(c["repeat"], c["target"], c["mode"], c["c"]): c for c in cells}
    acc: dict[str, dict[int, list[float]]] = {}
    for c in cells:
        if c["mode"] != mode or c[key] is None:
            continue
        value = c[key]
        if added:
            if c["target"] == "direct":
                continue
            base = index.get((c["repeat"], "direct", mode, c["c"]))
            if base is None or base[key] is None:
                continue
            value -= base[key]
        acc.setdefault(c["target"], {}).setdefault(c["c"], []).append(value)
    order = [t for t in COLORS if t in acc] + sorted(set(acc) - set(COLORS))
    return {t: {c: statistics.median(v) for c, v in sorted(acc[t].items())} for t in order}


def main() -> None:
    with open(sys.argv[1]) as f:
        data = json.load(f)
    out = sys.argv[2]
    cells = data["cells"]
    modes = [m for m in ("nonstream", "stream") if any(c["mode"] == m for c in cells)]
    fig, axes = plt.subplots(len(modes), 2, figsize=(11, 4.2 * len(modes)), squeeze=False)
    for row, mode in enumerate(modes):
        name = "non-stream" if mode == "nonstream" else f"stream ({data['args']['chunks']} chunks)"
        ax = axes[row][0]
        for target, series in medians(cells, mode, "rps", added=False).items():
            xs, ys = list(series), list(series.values())
            ax.plot(xs, ys, marker="o", color=COLORS.get(target), label=LABELS.get(target, target))
            if target.startswith("llm-scope-w"):
                continue  # its numbers sit on top of the one-worker line's; the table has them
            for x, y in zip(xs, ys, strict=True):
                ax.annotate(f"{y:,.0f}", (x, y), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
        ax.set_title(f"{name}: requests/s (higher is better)", fontsize=10)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("concurrency")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="lower right", bbox_to_anchor=(1.0, 0.08))
        ax = axes[row][1]
        key = "ttft50" if mode == "stream" else "p50"
        for target, series in medians(cells, mode, key, added=True).items():
            xs = list(series)
            ys = [max(v, 0.01) for v in series.values()]  # log axis: a floor for "no measurable cost"
            ax.plot(xs, ys, marker="o", color=COLORS.get(target), label=LABELS.get(target, target))
            if target.startswith("llm-scope-w"):
                continue
            for x, y in zip(xs, series.values(), strict=True):
                ax.annotate(
                    f"{y:.2f}", (x, max(y, 0.01)), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8
                )
        what = "first token" if mode == "stream" else "latency"
        ax.set_title(f"{name}: added p50 {what}, ms (lower is better)", fontsize=10)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("concurrency")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    plain = FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 10 else f"{v:g}")
    for ax in axes.flat:
        cs = sorted({c["c"] for c in cells})
        ax.set_xticks(cs, [str(c) for c in cs])
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    m = data["machine"]
    fig.suptitle(
        f"llm-scope {m['llm_scope']} vs LiteLLM Proxy {m.get('litellm_proxy') or '(not run)'}: one worker each, "
        f"same mock upstream, {m['cores']} cores, median of {data['args']['repeats']} repeat(s)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main()
