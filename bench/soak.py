"""The soak: minutes of mixed traffic against one llm-scope, RSS sampled (`python -m bench.run --soak 10`).

Kept apart from the cell loop in `bench.run` because it asks a different question: not how fast a call is,
but whether memory stays flat and every call is still traced after millions of them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path
from typing import Any

from bench import report
from bench.probes import outbox_rows, scrape_metrics, stored_traces
from bench.procs import RssSampler, Service, cpu_seconds, tree
from bench.targets import ROOT, _clean_env, llm_scope_service, project_python

MB = 1024 * 1024


def run(
    args: argparse.Namespace, workdir: Path, mock_port: int, otlp_port: int, services: list[Service]
) -> dict[str, Any]:
    """Run the soak; the started service joins `services` so the caller stops it whatever happens."""
    seconds = args.soak * 60
    print(f"bench: soak, {args.soak:g} min of mixed traffic at c={args.soak_concurrency} against llm-scope", flush=True)
    svc, key, _ = llm_scope_service(workdir / "soak", mock_port, otlp_port, 1, "llm-scope")
    svc.start()
    services.append(svc)
    url = f"http://127.0.0.1:{svc.port}/v1/chat/completions"
    cmd = [
        project_python(), "-m", "bench.loadgen", "--url", url, "--mode", "mixed",
        "--concurrency", str(args.soak_concurrency), "--duration", str(seconds), "--warmup", "0",
        "--api-key", key,
    ]  # fmt: skip
    try:
        interval = 5.0 if seconds >= 120 else max(0.5, seconds / 40)
        with RssSampler(svc.pid, interval=interval) as sampler:
            t0 = time.monotonic()
            out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=_clean_env(), timeout=seconds + 120)
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
    summary = report.soak_summary(samples, result, seconds, cpu)
    summary.update(export_backlog=backlog, stored=stored, answered=result["total"], lost=metrics.get("lost"))
    return summary
