"""What `python -m bench.run` takes, and the defaults that `--quick` changes (the CI smoke test runs it so)."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.procs import cpu_list
from bench.targets import LITELLM_VERSIONS, ROOT

DESCRIPTION = "The benchmark, one command: `python -m bench.run` (or `make bench`)."


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=DESCRIPTION)
    p.add_argument("--quick", action="store_true", help="smoke mode: tiny cells, 1 repeat, c=1,16 (seconds)")
    p.add_argument("--duration", type=float, help="measured seconds per cell (default 5; quick 0.4)")
    p.add_argument("--warmup", type=float, help="unmeasured warm-up seconds per cell (default 1; quick 0.2)")
    p.add_argument("--repeats", type=int, help="repeats of every cell (default 3; quick 1)")
    p.add_argument("--concurrency", help="comma-separated (default 1,16,64; quick 1,16)")
    p.add_argument("--modes", default="nonstream,stream", help="comma-separated: nonstream,stream")
    p.add_argument("--workers", type=int, default=1, help="also run llm-scope with this many workers (>1)")
    p.add_argument("--no-litellm", action="store_true", help="skip LiteLLM Proxy")
    p.add_argument(
        "--gateway-cores",
        help="CPUs for the servers measured (llm-scope's workers, the passthrough, LiteLLM), e.g. 0; the mock, the "
        "sink and the load generator go on the other CPUs (all of them where none is left). Default: no pinning",
    )
    p.add_argument(
        "--helper-cores",
        help="CPUs for llm-scope's trace helpers, e.g. 1 (may be shared with the mock and the load); "
        "default: the gateway's cores, so each worker and its helper share them",
    )
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
    args.gateway_cores = sorted(cpu_list(args.gateway_cores)) if args.gateway_cores else None
    args.helper_cores = sorted(cpu_list(args.helper_cores)) if args.helper_cores else args.gateway_cores
    if args.helper_cores and not args.gateway_cores:
        p.error("--helper-cores needs --gateway-cores (the layout is: workers there, helpers here)")
    args.settle_max = 1.0 if q else 3.0
    args.drain_max = args.drain_max if args.drain_max is not None else (2.0 if q else 120.0)
    return args
