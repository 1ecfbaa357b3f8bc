"""Scaling across workers: `python -m bench.scale --workers 1,2,4,8 --cores 0-7`.

llm-scope with everything on (local store, Langfuse export to a loopback sink, metrics, a master key) runs
with each worker count in turn, pinned to `--cores`; the mock upstream and the load generators are pinned to
the other cores (on a machine with none to spare they share the rest). For non-stream and streamed calls
it reports calls/s, scaling efficiency (calls/s against the fewest workers' calls/s per worker), CPU per
call of the gateway's whole process tree (workers and trace helpers, the drain of their deferred work
included), p50/p99 latency, peak RSS per worker and per trace helper, and traced/served: rows in the local
store against every call answered (warm-ups included) after a bounded drain, with the spill and loss
counters from /metrics.

    python -m bench.scale --workers 1,2,4,8 --cores 0-7       # 16 cores; --budget keeps it under 5 minutes
    python -m bench.scale --workers 1,2 --cores 0              # 2 cores: both workers saturate one core
    python -m bench.scale --workers 1,2 --cores 0 --duration 3 --no-export --json scale.json

Several load generator processes (one per load core) share the connections; p50 is their call-weighted
mean, p99 the worst of them. `other CPU` is the machine's busy time not spent by this benchmark's processes,
as a share of all cores: numbers from a shared machine are only as good as that column.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python bench/scale.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.probes import cpu_model, outbox_rows, stored_traces
from bench.procs import Service, cpu_seconds, free_port, http_get, hwm_bytes, machine_busy_seconds, settle, tree
from bench.targets import ROOT, _clean_env, llm_scope_service, project_python

MB = 1024 * 1024
# Pins itself, then becomes the real command: children (uvicorn workers, trace helpers) inherit the cores.
PIN = (
    "import os,sys; os.sched_setaffinity(0, {int(c) for c in sys.argv[1].split(',')}); "
    "os.execv(sys.argv[2], sys.argv[2:])"
)
METRICS = {
    "llm_scope_trace_records_lost_total": "lost",
    "llm_scope_trace_records_spilled_total": "spilled",
    "llm_scope_trace_spill_pending": "spill_pending",
}


def parse_cpus(text: str) -> list[int]:
    cpus: list[int] = []
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        cpus += range(int(low), int(high or low) + 1)
    return sorted(set(cpus))


def pinned(argv: list[str], cpus: list[int]) -> list[str]:
    return [project_python(), "-c", PIN, ",".join(map(str, cpus)), *argv]


@dataclass
class Cores:
    gateway: list[int]
    mock: list[int]
    load: list[int]

    @classmethod
    def allocate(cls, gateway: list[int]) -> Cores:
        allowed = sorted(os.sched_getaffinity(0))
        rest = [c for c in allowed if c not in gateway] or allowed
        mocks = math.ceil(len(rest) / 3) if len(rest) >= 3 else 1  # the mock does ~half a load generator's work
        return cls(gateway, rest[:mocks], rest[mocks:] or rest)


def start_upstreams(workdir: Path, cpus: list[int], mock_port: int, sink_port: int) -> list[Service]:
    """The mock upstream (one process per core, sharing the port) and the OTLP sink, pinned to `cpus`."""
    specs = [(f"mock{i}", "bench.mock_upstream", mock_port, ["--reuse-port"]) for i in range(len(cpus))]
    specs.append(("sink", "bench.otlp_sink", sink_port, []))
    started: list[Service] = []
    for name, module, port, extra in specs:
        argv = pinned([project_python(), "-m", module, "--port", str(port), *extra], cpus)
        svc = Service(
            name, argv, port=port, ready_path="/health", env=_clean_env(), cwd=ROOT, log=workdir / f"{name}.log"
        )
        try:
            svc.start(timeout=30)
        except BaseException:
            for other in started:
                other.stop()
            raise
        started.append(svc)
    return started


def roles(root: int) -> tuple[list[int], list[int]]:
    """(workers, trace helpers) in the gateway's process tree: a worker is the parent of a helper."""
    helpers: dict[int, int] = {}
    for pid in tree(root):
        with contextlib.suppress(OSError, IndexError):
            if b"llm_scope.tracing.helper" in Path(f"/proc/{pid}/cmdline").read_bytes():
                stat = Path(f"/proc/{pid}/stat").read_text()
                helpers[pid] = int(stat[stat.rindex(")") + 2 :].split()[1])
    return sorted(set(helpers.values())), sorted(helpers)


def scrape(port: int) -> dict[str, float]:
    out: dict[str, float] = {}
    with contextlib.suppress(OSError):
        status, body = http_get(port, "/metrics", timeout=5)
        for line in body.decode(errors="replace").splitlines() if status == 200 else ():
            name, _, value = line.partition(" ")
            if name in METRICS:
                out[METRICS[name]] = out.get(METRICS[name], 0.0) + float(value)
    return out


class Scale:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.cores = Cores.allocate(parse_cpus(args.cores))
        self.helpers: list[Service] = []
        self.served = 0

    def run(self) -> dict[str, Any]:
        a, c = self.args, self.cores
        mock_port, sink_port = free_port(), free_port()
        self.helpers = start_upstreams(self.workdir, c.mock, mock_port, sink_port)
        rows: list[dict[str, Any]] = []
        started = time.monotonic()
        try:
            for workers in parse_cpus(a.workers):
                if time.monotonic() - started > a.budget:
                    print(f"skipping {workers} workers: past the --budget of {a.budget:g} s", flush=True)
                    continue
                rows += self.gateway(workers, mock_port, sink_port)
        finally:
            for svc in self.helpers:
                svc.stop()
        for mode in a.modes.split(","):
            mine = [r for r in rows if r["mode"] == mode]
            if mine:
                base = mine[0]["rps"] / mine[0]["workers"]
                for r in mine:
                    r["efficiency"] = r["rps"] / (r["workers"] * base) if base else None
        return {"machine": machine(), "cores": vars(c), "args": vars(a), "rows": rows}

    def gateway(self, workers: int, mock_port: int, sink_port: int) -> list[dict[str, Any]]:
        a = self.args
        svc, key, _ = llm_scope_service(self.workdir, mock_port, sink_port, workers, f"w{workers}")
        svc.argv = pinned(svc.argv, self.cores.gateway)
        svc.env.update(LLM_SCOPE_TRACE_OVERFLOW=a.overflow, LOG_LEVEL="warning")
        if a.queue_size:
            svc.env["LLM_SCOPE_QUEUE_SIZE"] = str(a.queue_size)
        if a.no_export:
            svc.env["LANGFUSE_ENABLED"] = "false"
        self.served = 0
        svc.start(timeout=60)
        db = self.workdir / f"w{workers}" / "data" / "llm-scope.db"
        rows = []
        try:
            for mode in a.modes.split(","):
                row = self.cell(svc, key, mode, workers, db)
                rows.append(row)
                print(format_row(row), flush=True)
        finally:
            svc.stop(timeout=60)
        return rows

    def cell(self, svc: Service, key: str, mode: str, workers: int, db: Path) -> dict[str, Any]:
        a, load = self.args, self.cores.load
        connections = a.concurrency * workers
        gens = max(1, min(len(load), connections))
        gens_c = [connections // gens + (1 if i < connections % gens else 0) for i in range(gens)]
        url = f"http://127.0.0.1:{svc.port}/v1/chat/completions"
        procs = []
        for i, conc in enumerate(gens_c):
            cmd = [
                project_python(), "-m", "bench.loadgen", "--url", url, "--mode", mode, "--concurrency", str(conc),
                "--duration", str(a.duration), "--warmup", str(a.warmup), "--api-key", key, "--handshake",
            ]  # fmt: skip
            procs.append(
                subprocess.Popen(
                    pinned(cmd, [load[i % len(load)]]),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                    cwd=ROOT,
                    env=_clean_env(),
                )
            )
        for p in procs:
            assert p.stdout is not None
            if (line := p.stdout.readline().strip()) != "ready":
                for q in procs:
                    q.kill()
                raise RuntimeError(f"load generator did not start: {line!r}; see {svc.log_path}")
        self.drain(db, self.served)
        settle(svc.pid, max_wait=3)
        _, helper_pids = roles(svc.pid)
        helper0 = cpu_seconds(helper_pids)
        cpu0, busy0, ours0, t0 = cpu_seconds(tree(svc.pid)), machine_busy_seconds(), self.ours(), time.monotonic()
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        results = []
        for p in procs:
            assert p.stdout is not None
            results.append(json.loads(p.stdout.readline()))
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped: its CPU still counts
        busy1, ours1, t1 = machine_busy_seconds(), self.ours(), time.monotonic()
        for p in procs:
            p.wait(30)
        self.served += sum(r["total"] for r in results)
        left, drain_s = self.drain(db, self.served)
        settle(svc.pid, max_wait=3)
        cpu1, helper1 = cpu_seconds(tree(svc.pid)), cpu_seconds(helper_pids)  # a helper that died: unknown
        worker_pids, helpers_now = roles(svc.pid)
        time.sleep(1.1)  # workers publish their pipeline counters every second
        count = sum(r["count"] for r in results)
        return {
            "workers": workers,
            "mode": mode,
            "connections": connections,
            "count": count,
            "errors": sum(r["errors"] for r in results),
            "error_samples": [s for r in results for s in r["error_samples"]][:3],
            "rps": sum(r["rps"] for r in results),
            "p50": weighted([(r["latency_ms"]["p50"], r["count"]) for r in results]),
            "p99": max((r["latency_ms"]["p99"] or 0.0 for r in results), default=None),
            "cpu_ms": (cpu1 - cpu0) * 1000 / count if count else None,
            "helper_cpu_ms": (helper1 - helper0) * 1000 / count if count and helpers_now == helper_pids else None,
            "rss_worker_mb": max((hwm_bytes([p]) / MB for p in worker_pids), default=None),
            "rss_helper_mb": max((hwm_bytes([p]) / MB for p in helpers_now), default=None),
            "served": self.served,
            "traced": stored_traces(db),
            "drain_s": drain_s,
            "export_left": left,
            "other_cpu_pct": max(0.0, (busy1 - busy0) - (ours1 - ours0)) / ((t1 - t0) * (os.cpu_count() or 1)) * 100,
            **scrape(self.metrics_port(svc)),
        }

    def metrics_port(self, svc: Service) -> int:
        return int(svc.env["METRICS_PORT"])

    def ours(self) -> float:
        return cpu_seconds(tree(os.getpid()))

    def drain(self, db: Path, served: int) -> tuple[int | None, float]:
        """Wait (bounded) until the store holds every call answered so far and the export outbox is empty."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < self.args.drain_max:
            stored, outbox = stored_traces(db), outbox_rows(db) if not self.args.no_export else 0
            if stored is not None and stored >= served and not outbox:
                break
            time.sleep(0.1)
        return (outbox_rows(db) if not self.args.no_export else None), time.monotonic() - t0


def weighted(pairs: list[tuple[float | None, int]]) -> float | None:
    total = sum(n for v, n in pairs if v is not None)
    return sum(v * n for v, n in pairs if v is not None) / total if total else None


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


HEADER = (
    "| workers | mode | calls/s | efficiency | CPU/call ms | of it helpers | p50 ms | p99 ms | RSS/worker MB "
    "| RSS/helper MB | traced/served | spilled | lost | other CPU |\n" + "|---" * 14 + "|"
)


def _num(value: Any, fmt: str) -> str:
    return "unknown" if value is None else format(value, fmt)


def format_row(r: dict[str, Any]) -> str:
    mode = "non-stream" if r["mode"] == "nonstream" else r["mode"]
    errors = f" ({r['errors']} errors)" if r["errors"] else ""
    return (
        f"| {r['workers']} | {mode} | {r['rps']:,.0f}{errors} | {_num(r.get('efficiency'), '.2f')} "
        f"| {_num(r['cpu_ms'], '.3f')} | {_num(r['helper_cpu_ms'], '.3f')} | {_num(r['p50'], '.2f')} "
        f"| {_num(r['p99'], '.2f')} "
        f"| {_num(r['rss_worker_mb'], '.1f')} | {_num(r['rss_helper_mb'], '.1f')} "
        f"| {_num(r['traced'], ',')}/{r['served']:,} | {_num(r.get('spilled'), ',.0f')} "
        f"| {_num(r.get('lost'), ',.0f')} | {r['other_cpu_pct']:.0f}% |"
    )


def render(data: dict[str, Any]) -> str:
    a, m, c = data["args"], data["machine"], data["cores"]
    lines = [
        f"llm-scope scaling: {m['cpus']} CPUs ({m['cpu'] or 'unknown model'}), Python {m['python']}; "
        f"gateway on cores {c['gateway']}, mock upstream on {c['mock']}, load generators on {c['load']}; "
        f"{a['duration']:g} s per cell, {a['concurrency']} connections per worker; "
        f"Langfuse export {'off' if a['no_export'] else 'on (loopback sink)'}; overflow policy {a['overflow']}.",
        "",
        HEADER,
        *(format_row(r) for r in data["rows"]),
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    allowed = sorted(os.sched_getaffinity(0))
    default_cores = allowed[: len(allowed) // 2] if len(allowed) >= 4 else allowed[:1]
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", default="1,2,4,8", help="worker counts, e.g. 1,2,4,8 (default)")
    p.add_argument("--cores", default=",".join(map(str, default_cores)), help="gateway cores, e.g. 0-7")
    p.add_argument("--modes", default="nonstream,stream")
    p.add_argument("--duration", type=float, default=5.0, help="seconds measured per cell")
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--concurrency", type=int, default=16, help="connections per worker")
    p.add_argument("--drain-max", type=float, default=20.0, help="most seconds to wait for traces to be stored")
    p.add_argument("--budget", type=float, default=240.0, help="start no further worker count after this many s")
    p.add_argument("--no-export", action="store_true", help="no Langfuse export (store only)")
    p.add_argument("--queue-size", type=int, help="LLM_SCOPE_QUEUE_SIZE for the gateway")
    p.add_argument("--overflow", choices=("spill", "backpressure"), default="spill")
    p.add_argument("--out", type=Path, help="write the table (markdown) here")
    p.add_argument("--json", type=Path, help="write every number here")
    p.add_argument("--workdir", type=Path, help="keep logs and data here (default: a temporary directory)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        workdir = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="llm-scope-scale-")))
        workdir.mkdir(parents=True, exist_ok=True)
        scale = Scale(args, workdir)
        print(HEADER, flush=True)
        data = scale.run()
    data["wall_s"] = time.monotonic() - started
    text = render(data)
    print("\n" + text + f"\n{data['wall_s']:.0f} s in all", flush=True)
    if args.out:
        args.out.write_text(text)
    if args.json:
        args.json.write_text(json.dumps(data, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
