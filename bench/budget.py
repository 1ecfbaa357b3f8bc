# ruff: noqa: RUF001
"""The budget check: each line of the performance budget, measured, against its target, for one worker."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.cells import derive, median, table


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
        med = median(vals)
        shown = f"{med:.1f}× (repeats: {', '.join(f'{v:.1f}×' for v in vals)})" if vals else "not measured"
        lines.append((label, shown, verdict(None if med is None else med >= need)))

    def worst_line(label: str, mode: str, key: str, limit: float, unit: str, only: set[int] | None = None) -> None:
        cs = sorted(c for c in {d["c"] for d in mine if d["mode"] == mode} if only is None or c in only)
        meds = {c: median(per_repeat(mode, c, key)) for c in cs}
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
        med = median(vals)
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
        floor = median(floors.values())
        if floor is None:
            return ""
        ratios = [
            d["cpu_ms"] / floors[d["repeat"]]
            for d in mine
            if d["mode"] == "nonstream" and d["c"] == 1 and d["cpu_ms"] is not None and d["repeat"] in floors
        ]
        ratio = median(ratios)
        return f"; the bare passthrough alone: {floor:.3f} ms" + (
            f" (llm-scope {ratio:.2f}× it, median of the repeats' ratios)" if ratio is not None else ""
        )

    at_line("proxy CPU ≤ 0.3 ms per non-stream request at c1", "nonstream", 1, "cpu_ms", 0.3, "ms", floor_at_c1)
    ratio_line("streams/s ≥ 10× LiteLLM Proxy at c64", "stream", 64, 10)
    worst_line("proxy CPU ≤ 1.5 ms per 20-chunk stream (every concurrency)", "stream", "cpu_ms", 1.5, "ms")

    def ttft_others() -> str:
        others = []
        for c in sorted({d["c"] for d in mine if d["mode"] == "stream"} - {1}):
            v = median(per_repeat("stream", c, "ttft_add50"))
            if v is not None:
                others.append(f"c{c}: {v:.2f} ms")
        return f"; under load (queueing included) {', '.join(others)}" if others else ""

    at_line("first token added ≤ 1 ms p50 (c1)", "stream", 1, "ttft_add50", 1.0, "ms", ttft_others)
    at_line("added latency at c1 ≤ 0.5 ms p50 (non-stream)", "nonstream", 1, "add50", 0.5, "ms")
    starts = [s for s in data["starts"] if s["target"] == target]
    cold = median(s["cold_start_s"] for s in starts)
    each = ", ".join(f"{s['cold_start_s']:.2f}" for s in starts)
    lines.append(
        (
            "cold start to /ready ≤ 1 s",
            f"{cold:.2f} s (repeats: {each})" if cold else "not measured",
            verdict(None if cold is None else cold <= 1.0),
        )
    )
    idle = median(s["idle_rss_mb"] for s in starts)
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
    return table(
        ["budget (one worker, everything on)", "measured (median of repeats)", ""], [list(x) for x in lines], "lll"
    )
