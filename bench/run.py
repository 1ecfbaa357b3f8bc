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
import platform
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

from bench import report
from bench.cells import cell_line
from bench.probes import loadavg, outbox_rows, scrape_metrics, stored_traces
from bench.procs import (
    RssSampler,
    Service,
    cpu_seconds,
    hwm_bytes,
    machine_busy_seconds,
    rss_bytes,
    settle,
    tree,
)
from bench.targets import (
    LITELLM_VERSIONS,
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
    version_of,
)

MB = 1024 * 1024


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke mode: tiny cells, 1 repeat, c=1,16 (seconds)")
    p.add_argument("--duration", type=float, help="measured seconds per cell (default 5; quick 0.4)")
    p.add_argument("--warmup", type=float, help="unmeasured warm-up seconds per cell (default 1; quick 0.2)")
    p.add_argument("--repeats", type=int, help="repeats of every cell (default 3; quick 1)")
    p.add_argument("--concurrency", help="comma-separated (default 1,16,64; quick 1,16)")
    p.add_argument("--modes", default="nonstream,stream", help="comma-separated: nonstream,stream")
    p.add_argument("--workers", type=int, default=1, help="also run llm-scope with this many workers (>1)")
    p.add_argument("--no-litellm", action="store_true", help="skip LiteLLM Proxy")
    p.add_argument("--no-passthrough", action="store_true", help="skip the bare passthrough (the server stack's floor)")
    p.add_argument(
        "--litellm-version",
        default=",".join(LITELLM_VERSIONS),
        help=f"versions of litellm[proxy] to try in order (default {','.join(LITELLM_VERSIONS)})",
    )
    p.add_argument("--chunks", type=int, default=20, help="content chunks per stream from the mock (default 20)")
    p.add_argument("--delay-ms", type=float, default=0.0, help="mock delay between stream chunks (default 0)")
    p.add_argument("--include-usage", action="store_true", help="clients ask for stream_options.include_usage")
    p.add_argument("--soak", type=float, default=0.0, metavar="MINUTES", help="mixed traffic against llm-scope")
    p.add_argument("--soak-concurrency", type=int, default=16)
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md", help="markdown report path")
    p.add_argument("--png", type=Path, help="chart path (default: benchmark.png beside --out)")
    p.add_argument("--json", type=Path, help="raw results path (default: bench/.venvs/results.json)")
    p.add_argument("--no-chart", action="store_true", help="don't draw the PNG")
    p.add_argument("--keep", action="store_true", help="keep the temporary work dir (logs, stores)")
    p.add_argument("--report-only", type=Path, metavar="JSON", help="re-render the report from saved raw results")
    p.add_argument(
        "--drain-max",
        type=float,
        help="seconds to wait after a cell for llm-scope's export outbox to empty (default 120; quick 2)",
    )
    args = p.parse_args(argv)
    q = args.quick
    args.duration = args.duration if args.duration is not None else (0.4 if q else 5.0)
    args.warmup = args.warmup if args.warmup is not None else (0.2 if q else 1.0)
    args.repeats = args.repeats if args.repeats is not None else (1 if q else 3)
    args.concurrency = [int(c) for c in (args.concurrency or ("1,16" if q else "1,16,64")).split(",")]
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    args.png = args.png or args.out.with_name("benchmark.png")
    args.json = args.json or ROOT / "bench" / ".venvs" / "results.json"
    args.settle_max = 1.0 if q else 3.0
    args.drain_max = args.drain_max if args.drain_max is not None else (2.0 if q else 120.0)
    return args


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
        a = self.args
        seconds = a.soak * 60
        print(f"bench: soak, {a.soak:g} min of mixed traffic at c={a.soak_concurrency} against llm-scope", flush=True)
        svc, key, _ = llm_scope_service(self.workdir / "soak", self.mock_port, self.otlp_port, 1, "llm-scope")
        svc.start()
        self.services.append(svc)
        url = f"http://127.0.0.1:{svc.port}/v1/chat/completions"
        cmd = [
            project_python(), "-m", "bench.loadgen", "--url", url, "--mode", "mixed",
            "--concurrency", str(a.soak_concurrency), "--duration", str(seconds), "--warmup", "0",
            "--api-key", key,
        ]  # fmt: skip
        try:
            interval = 5.0 if seconds >= 120 else max(0.5, seconds / 40)
            with RssSampler(svc.pid, interval=interval) as sampler:
                t0 = time.monotonic()
                out = subprocess.run(
                    cmd, capture_output=True, text=True, cwd=ROOT, env=_clean_env(), timeout=seconds + 120
                )
            result = json.loads(out.stdout.strip().splitlines()[-1])
            cpu = cpu_seconds(tree(svc.pid))
            db = svc.cwd / "data" / "llm-scope.db"
            backlog = outbox_rows(db)
            stored, deadline = stored_traces(db), time.monotonic() + 60
            while time.monotonic() < deadline:  # let the writer catch up with whatever it still holds
                time.sleep(2)
                now = stored_traces(db)
                if now == stored:
                    break
                stored = now
            metrics = scrape_metrics(svc.port, key)
        finally:
            svc.stop()
        samples = [(ts - t0, rss / MB) for ts, rss in sampler.samples]
        self.soak_result = report.soak_summary(samples, result, seconds, cpu)
        self.soak_result.update(
            export_backlog=backlog, stored=stored, answered=result["total"], lost=metrics.get("lost")
        )

    # --- output ----------------------------------------------------------------------------------------

    def machine(self) -> dict[str, Any]:
        cpu = "?"
        with contextlib.suppress(OSError):
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        mem = "?"
        with contextlib.suppress(OSError):
            kb = int(Path("/proc/meminfo").read_text().split()[1])
            mem = f"{kb / 1024 / 1024:.0f} GiB"
        py = project_python()
        pyver = subprocess.run([py, "-c", "import sys; print(sys.version.split()[0])"], capture_output=True, text=True)
        return {
            "cpu": cpu,
            "cores": os.cpu_count(),
            "memory": mem,
            "kernel": platform.release(),
            "python": pyver.stdout.strip(),
            "llm_scope": version_of("llm-scope", py),
            "uvicorn": version_of("uvicorn", py),
            "litellm_proxy": self.litellm_version,
            "date": time.strftime("%Y-%m-%d %H:%M %Z"),
            "loadavg_start": self.loadavg_start,
            "loadavg_end": loadavg(),
        }


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
