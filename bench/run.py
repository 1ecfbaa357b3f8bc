"""The benchmark, one command: `python -m bench.run` (or `make bench`).

Starts a fast mock upstream and a loopback OTLP sink, then llm-scope (one worker, everything on) and
LiteLLM Proxy (pinned, in its own virtualenv, one worker), and measures them side by side against
direct-to-mock: for non-stream and streamed calls at each concurrency, in every repeat the targets run
one after another on the same cell, so drift on the machine hits them alike. Writes docs/benchmarks.md
and docs/benchmark.png and prints the summary and the budget check.

    python -m bench.run                       # full run (3 repeats, 5 s per cell)
    python -m bench.run --duration 3 --repeats 2
    python -m bench.run --quick --no-litellm  # a few seconds: does it run at all (CI smoke test)
    python -m bench.run --workers 2           # also llm-scope with 2 workers
    python -m bench.run --soak 10             # plus 10 minutes of mixed traffic, RSS sampled
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python bench/run.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import probes, report, soak
from bench.cells import cell_line
from bench.options import parse_args
from bench.probes import loadavg, outbox_rows, scrape_metrics
from bench.procs import (
    RssSampler,
    Service,
    cpu_seconds,
    hwm_bytes,
    is_trace_helper,
    machine_busy_seconds,
    memory_line,
    pin_server,
    role_memory,
    rss_bytes,
    settle,
    tree,
)
from bench.targets import (
    ROOT,
    Target,
    _clean_env,
    ensure_litellm,
    litellm_service,
    llm_scope_service,
    passthrough_service,
    project_python,
    start_helper,
    tools_python,
    tuning,
)

MB = 1024 * 1024


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.cells: list[dict[str, Any]] = []
        self.starts: list[dict[str, Any]] = []
        self.tracing: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.helpers: list[Service] = []
        self.services: list[Service] = []
        self.mock_port = self.otlp_port = 0
        self.litellm_version: str | None = None
        self.sent: dict[str, int] = {}
        self.loadavg_start = loadavg()

    # --- set-up ----------------------------------------------------------------------------------------

    def start_helpers(self) -> None:
        from bench.procs import free_port

        self.mock_port, self.otlp_port = free_port(), free_port()
        extra = ["--chunks", str(self.args.chunks), "--delay-ms", str(self.args.delay_ms)]
        self.helpers.append(start_helper("bench.mock_upstream", self.mock_port, self.workdir, *extra))
        self.helpers.append(start_helper("bench.otlp_sink", self.otlp_port, self.workdir))

    def make_targets(self, repeat: int) -> list[Target]:
        targets = [Target("direct", f"http://127.0.0.1:{self.mock_port}/v1/chat/completions")]
        if not self.args.no_passthrough:
            floor = passthrough_service(self.workdir / f"r{repeat}", self.mock_port)
            targets.append(Target("passthrough", f"http://127.0.0.1:{floor.port}/v1/chat/completions", service=floor))
        variants = [("llm-scope", 1)] + (
            [(f"llm-scope-w{self.args.workers}", self.args.workers)] if self.args.workers > 1 else []
        )
        for tag, workers in variants:
            svc, key, metrics_port = llm_scope_service(
                self.workdir / f"r{repeat}", self.mock_port, self.otlp_port, workers, tag
            )
            t = Target(tag, f"http://127.0.0.1:{svc.port}/v1/chat/completions", key, svc)
            t.info.update(metrics_port=metrics_port, data_dir=str(svc.cwd / "data"), workers=workers)
            targets.append(t)
        if self.litellm_version:
            svc, key = litellm_service(self.workdir / f"r{repeat}", self.mock_port)
            targets.append(Target("litellm", f"http://127.0.0.1:{svc.port}/v1/chat/completions", key, svc))
        return targets

    def start_targets(self, targets: list[Target], repeat: int) -> None:
        for t in targets:
            if t.service is None:
                continue
            print(f"bench: starting {t.name} ...", end=" ", flush=True)
            took = t.service.start()
            self.services.append(t.service)
            if self.args.gateway_cores:
                placed = pin_server(t.service.pid, self.args.gateway_cores, self.args.helper_cores)
                t.info["pinned"] = {("helper" if is_trace_helper(p) else "worker"): c for p, c in placed.items()}
            print(f"ready in {took:.2f} s", flush=True)
        time.sleep(1.0)  # let start-up work (background tasks, lazy imports) finish before idle RSS
        for t in targets:
            if t.service is None:
                continue
            pids = tree(t.service.pid)
            self.starts.append(
                {
                    "repeat": repeat,
                    "target": t.name,
                    "cold_start_s": t.service.cold_start_s,
                    "idle_rss_mb": rss_bytes(pids) / MB,
                    "processes": len(pids),
                    "idle_memory": role_memory(t.service.pid),
                    "pinned": t.info.get("pinned"),
                }
            )

    # --- one cell --------------------------------------------------------------------------------------

    def run_cell(self, t: Target, mode: str, concurrency: int, repeat: int) -> dict[str, Any]:
        a = self.args
        cmd = [
            project_python(), "-m", "bench.loadgen", "--url", t.url, "--mode", mode,
            "--concurrency", str(concurrency), "--duration", str(a.duration), "--warmup", str(a.warmup),
            "--api-key", t.api_key, "--handshake",
        ]  # fmt: skip
        if a.include_usage:
            cmd.append("--include-usage")
        gen = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=_clean_env()
        )
        assert gen.stdin is not None and gen.stdout is not None
        line = gen.stdout.readline().strip()
        if line != "ready":
            gen.kill()
            raise RuntimeError(f"load generator did not start against {t.name}: {line!r}")
        pid = t.service.pid if t.service else None
        sampler = None
        cpu0 = 0.0
        db = Path(str(t.info["data_dir"])) / "llm-scope.db" if "data_dir" in t.info else None
        if pid is not None:
            self.drain(db, a.drain_max)  # the warm-up's deferred work (trace export) is not this cell's
            settle(pid, max_wait=a.settle_max)
            cpu0 = cpu_seconds(tree(pid))
            sampler = RssSampler(pid).__enter__()
        # Other work on the machine during the window: all busy CPU minus this benchmark's own processes.
        busy0, ours0, t0 = machine_busy_seconds(), cpu_seconds(tree(os.getpid())), time.monotonic()
        gen.stdin.write("go\n")
        gen.stdin.flush()
        out = gen.stdout.readline()
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitid(os.P_PID, gen.pid, os.WEXITED | os.WNOWAIT)  # exited but not reaped: its CPU still readable
        busy1, ours1, t1 = machine_busy_seconds(), cpu_seconds(tree(os.getpid())), time.monotonic()
        gen.wait(30)
        foreign = max(0.0, (busy1 - busy0) - (ours1 - ours0))
        foreign_pct = foreign / ((t1 - t0) * (os.cpu_count() or 1)) * 100 if t1 > t0 else 0.0
        result: dict[str, Any] = json.loads(out)
        cell: dict[str, Any] = {
            "repeat": repeat,
            "target": t.name,
            "mode": mode,
            "c": concurrency,
            "count": result["count"],
            "errors": result["errors"],
            "error_samples": result["error_samples"],
            "rps": result["rps"],
            "p50": result["latency_ms"]["p50"],
            "p90": result["latency_ms"]["p90"],
            "p99": result["latency_ms"]["p99"],
            "ttft50": result["ttft_ms"]["p50"],
            "ttft99": result["ttft_ms"]["p99"],
            "cpu_ms": None,
            "peak_rss_mb": None,
            "export_backlog": None,
            "drain_s": None,
            "other_cpu_pct": foreign_pct,
        }
        self.sent[t.name] = self.sent.get(t.name, 0) + result["total"]
        if pid is not None and sampler is not None:
            # Charge the deferred work (trace writes, Langfuse export) to the cell: wait for the process to go
            # quiet and for the export outbox to empty. If it does not empty within --drain-max, add the rows
            # left at the CPU per row measured while it drained.
            cell["export_backlog"] = outbox_rows(db) if db else None
            settle(pid, max_wait=a.settle_max)
            cpu_settled, rows_settled = cpu_seconds(tree(pid)), outbox_rows(db) if db else None
            left, cell["drain_s"] = self.drain(db, a.drain_max)
            if left is not None and rows_settled:
                settle(pid, max_wait=a.settle_max)
            cpu1 = cpu_seconds(tree(pid))
            sampler.__exit__()
            extra = 0.0
            if left and rows_settled and rows_settled > left:
                extra = left * (cpu1 - cpu_settled) / (rows_settled - left)
                cell["export_left"] = left
            if result["count"]:
                cell["cpu_ms"] = (cpu1 - cpu0 + extra) * 1000 / result["count"]
            cell["peak_rss_mb"] = sampler.peak / MB
        return cell

    def drain(self, db: Path | None, max_wait: float) -> tuple[int | None, float]:
        """Wait for llm-scope's export outbox to empty; returns the rows left and the seconds waited."""
        if db is None:
            return None, 0.0
        t0 = time.monotonic()
        rows = outbox_rows(db)
        while rows and time.monotonic() - t0 < max_wait:
            time.sleep(0.25)
            rows = outbox_rows(db)
        return rows, time.monotonic() - t0

    # --- the run ---------------------------------------------------------------------------------------

    def run(self) -> None:
        a = self.args
        if not a.no_litellm:
            versions = tuple(v.strip() for v in a.litellm_version.split(",") if v.strip())
            self.litellm_version, failures = ensure_litellm(versions)
            self.notes += failures
        if a.gateway_cores:  # this process, and what it starts unpinned (mock, sink, load), on the other cores
            os.sched_setaffinity(0, (os.sched_getaffinity(0) - set(a.gateway_cores)) or os.sched_getaffinity(0))
            self.notes.append(layout(a.gateway_cores, a.helper_cores, sorted(os.sched_getaffinity(0))))
        if tuned := tuning():
            self.notes.append("llm-scope tuned by " + " ".join(f"{k}={v}" for k, v in tuned.items()))
        self.start_helpers()
        for repeat in range(1, a.repeats + 1):
            print(f"bench: repeat {repeat}/{a.repeats}", flush=True)
            self.sent = {}
            targets = self.make_targets(repeat)
            try:
                self.start_targets(targets, repeat)
                cells = [(m, c) for m in a.modes for c in a.concurrency]
                for i, (mode, c) in enumerate(cells):
                    shift = (repeat - 1 + i) % len(targets)
                    order = targets[shift:] + targets[:shift]  # rotate who goes first, cell by cell
                    for t in order:
                        cell = self.run_cell(t, mode, c, repeat)
                        self.cells.append(cell)
                        print("  " + cell_line(cell), flush=True)
                for t in targets:
                    if t.service is not None:
                        self.record_after(t, repeat)
            finally:
                for t in targets:
                    if t.service is not None:
                        t.service.stop()
        if a.soak > 0:
            self.soak()

    def record_after(self, t: Target, repeat: int) -> None:
        assert t.service is not None
        pids = tree(t.service.pid)
        for s in self.starts:
            if s["repeat"] == repeat and s["target"] == t.name:
                s["hwm_mb"] = hwm_bytes(pids) / MB
                s["after_memory"] = role_memory(t.service.pid)
                if t.name.startswith("llm-scope"):
                    print(f"bench: {t.name} RSS idle: {memory_line(s['idle_memory'])}", flush=True)
                    print(f"bench: {t.name} RSS after the cells: {memory_line(s['after_memory'])}", flush=True)
        if not t.name.startswith("llm-scope"):
            return
        entry: dict[str, Any] = {"repeat": repeat, "target": t.name, "answered": self.sent.get(t.name, 0)}
        settle(t.service.pid, max_wait=3.0)
        entry["metrics"] = self.scrape_metrics(t)
        db = Path(str(t.info["data_dir"])) / "llm-scope.db"
        try:
            with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
                entry["stored"] = conn.execute("SELECT COUNT(*) FROM traces").fetchone()[0]
                entry["outbox"] = conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        except sqlite3.Error as exc:
            entry["store_error"] = str(exc)
        entry["sink"] = self.sink_stats()
        self.tracing.append(entry)

    def scrape_metrics(self, t: Target) -> dict[str, Any]:
        return scrape_metrics(t.service.port if t.service else 0, int(t.info.get("metrics_port", 0)), t.api_key)

    def sink_stats(self) -> dict[str, Any]:
        from bench.procs import http_get

        with contextlib.suppress(OSError):
            status, body = http_get(self.otlp_port, "/stats")
            if status == 200:
                return dict(json.loads(body))
        return {}

    def soak(self) -> None:
        self.soak_result = soak.run(self.args, self.workdir, self.mock_port, self.otlp_port, self.services)

    # --- output ----------------------------------------------------------------------------------------

    def machine(self) -> dict[str, Any]:
        return probes.machine(self.litellm_version, self.loadavg_start)


def layout(gateway: list[int], helper: list[int], others: list[int]) -> str:
    return (
        f"Pinned: the servers measured on CPU {gateway}, llm-scope's trace helper on CPU {helper}, the mock, "
        f"the sink and the load generator on CPU {others}."
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report_only:
        return render(args, json.loads(args.report_only.read_text()))
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="llm-scope-bench-"))
    bench = Bench(args, workdir)
    try:
        bench.run()
    finally:
        for svc in bench.services + bench.helpers:
            svc.stop()
    data = {
        "command": "python -m bench.run "
        + " ".join(shlex.quote(x) for x in (argv if argv is not None else sys.argv[1:])),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": bench.machine(),
        "cells": bench.cells,
        "starts": bench.starts,
        "tracing": bench.tracing,
        "soak": getattr(bench, "soak_result", None),
        "notes": bench.notes,
        "elapsed_s": time.monotonic() - started,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(data, indent=1))
    render(args, data)
    if args.keep:
        print(f"bench: logs and stores kept in {workdir}")
    else:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def render(args: argparse.Namespace, data: dict[str, Any]) -> int:
    chart = None
    if not args.no_chart:
        if args.report_only:
            args.json = args.report_only
        chart = draw_chart(args, data)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report.markdown(data, chart_path=chart, md_path=args.out))
    print()
    print(report.stdout_summary(data))
    print(f"\nbench: wrote {args.out}" + (f" and {chart}" if chart else "") + f" ({data['elapsed_s']:.0f} s run)")
    return 0


def draw_chart(args: argparse.Namespace, data: dict[str, Any]) -> Path | None:
    python = tools_python(install=not args.quick)
    if python is None:
        print("bench: no matplotlib (bench/.venvs/tools is created by a full run); chart skipped", flush=True)
        return None
    args.png.parent.mkdir(parents=True, exist_ok=True)
    rc = subprocess.run([python, str(ROOT / "bench" / "chart.py"), str(args.json), str(args.png)], cwd=ROOT).returncode
    return args.png if rc == 0 and args.png.exists() else None


if __name__ == "__main__":
    raise SystemExit(main())
