"""Several instances on one PostgreSQL, measured: `python -m bench.several [--url URL]` (`make bench-several`).

1. CPU per call in the gateway process (its trace helper excluded), one instance at c16 non-stream, with the
   SQLite default and then with DATABASE_URL, alternated `--repeats` times (the hot path must not notice).
2. Two instances on the same database under load at once: total calls/s, and, once shipping has drained,
   that PostgreSQL holds exactly as many traces as calls were answered.
Each instance has the whole set-up of the main benchmark (master key, Langfuse export to a sink, metrics).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.procs import Service, cpu_seconds, free_port
from bench.targets import MODEL, llm_scope_service, project_python, start_helper
from llm_scope.tracing.pgstore import PostgresStore


def load(url: str, key: str, concurrency: int, duration: float) -> subprocess.Popen[str]:
    argv = [project_python(), "-m", "bench.loadgen", "--url", url, "--model", MODEL, "--api-key", key]
    argv += ["--concurrency", str(concurrency), "--duration", str(duration), "--warmup", "1", "--handshake"]
    return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def measure(services: list[tuple[Service, str]], concurrency: int, duration: float) -> list[dict[str, Any]]:
    """Load every service at once; per service: the loadgen's result plus the gateway's CPU per call."""
    gens = [
        load(f"http://127.0.0.1:{svc.port}/v1/chat/completions", key, concurrency, duration) for svc, key in services
    ]
    for gen in gens:
        assert gen.stdout is not None and gen.stdout.readline().strip() == "ready"
    cpu0 = [cpu_seconds([svc.pid]) for svc, _ in services]
    for gen in gens:
        assert gen.stdin is not None
        gen.stdin.write("go\n")
        gen.stdin.flush()
    results = [json.loads(gen.communicate()[0].splitlines()[-1]) for gen in gens]
    for result, (svc, _), before in zip(results, services, cpu0, strict=True):
        result["cpu_us_per_call"] = (cpu_seconds([svc.pid]) - before) / max(result["count"], 1) * 1e6
    return results


def instance(workdir: Path, mock_port: int, otlp_port: int, tag: str, database_url: str | None) -> tuple[Service, str]:
    svc, key, _ = llm_scope_service(workdir, mock_port, otlp_port, 1, tag)
    if database_url:
        svc.env["DATABASE_URL"] = database_url
    svc.start()
    return svc, key


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", help="an empty throw-away PostgreSQL database (default: start a throw-away cluster)")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cluster = None
    if args.url is None:
        from tests.postgres import PostgresCluster, postgres_bin_dir

        bin_dir = postgres_bin_dir()
        if bin_dir is None:
            raise SystemExit("PostgreSQL binaries not found: install Debian's postgresql, or pass --url")
        cluster = PostgresCluster(bin_dir, durable=True)
        args.url = cluster.new_database()
    try:
        run(args)
    finally:
        if cluster is not None:
            cluster.destroy()


def run(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="llm-scope-several-"))
    mock_port, otlp_port = free_port(), free_port()
    helpers = [
        start_helper("bench.mock_upstream", mock_port, workdir),
        start_helper("bench.otlp_sink", otlp_port, workdir),
    ]
    started: list[Service] = []
    try:
        cpu: dict[str, list[float]] = {"sqlite": [], "postgres": []}
        for repeat in range(args.repeats):
            for mode in ("sqlite", "postgres"):
                svc, key = instance(
                    workdir, mock_port, otlp_port, f"{mode}-{repeat}", args.url if mode == "postgres" else None
                )
                started.append(svc)
                result = measure([(svc, key)], args.concurrency, args.duration)[0]
                svc.stop()
                cpu[mode].append(result["cpu_us_per_call"])
                print(
                    f"{mode:8} repeat {repeat}: {result['rps']:7.0f} calls/s, "
                    f"{result['cpu_us_per_call']:.0f} µs CPU/call"
                )
        for mode, values in cpu.items():
            print(f"{mode:8} gateway CPU per call, median of {len(values)}: {sorted(values)[len(values) // 2]:.0f} µs")
        store = PostgresStore(args.url)
        before = store.query("SELECT COUNT(*) AS n FROM traces")[0]["n"]
        pair = [instance(workdir, mock_port, otlp_port, tag, args.url) for tag in ("a", "b")]
        started += [svc for svc, _ in pair]
        results = measure(pair, args.concurrency, args.duration)
        answered = sum(r["total"] for r in results)
        rps = sum(r["rps"] for r in results)
        deadline = time.monotonic() + 120
        while (stored := store.query("SELECT COUNT(*) AS n FROM traces")[0]["n"] - before) < answered:
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        distinct = store.query("SELECT COUNT(DISTINCT trace_id) AS n FROM traces")[0]["n"] - before
        each = ", ".join(f"{r['rps']:.0f}" for r in results)
        print(
            f"two instances: {rps:.0f} calls/s together ({each}); "
            f"{answered} answered, {stored} traces in PostgreSQL ({distinct} distinct), errors "
            f"{sum(r['errors'] for r in results)}"
        )
    finally:
        for svc in started + helpers:
            svc.stop()


if __name__ == "__main__":
    main()
