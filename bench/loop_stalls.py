"""What stalls a worker's event loop at concurrency 1: `python -m bench.loop_stalls --duration 8 --pin 0`.

At c1 a request that arrives while the loop runs something else waits for it to finish, so the tail of the
added latency is made of the longest things the loop runs besides requests. This serves one llm-scope worker
in this process (everything on: local store, Langfuse export to a loopback sink, metrics), drives it with
one closed-loop connection from `bench.loadgen`, and times the loop's periodic work: the metrics fold
(`Metrics.fold`), the hand-over of records to the trace helper (`TraceHandoff._send_queued`) and the garbage
collector's passes, by generation. For each it prints how many times it ran, the median, p99 and longest
run, and the share of the time the loop spent in it (the share of requests that arrive during one).

Wall times: on a machine shared with other work, a run can be preempted; compare medians, alternating the
code compared (`PYTHONPATH=/tmp/old/src python -m bench.loop_stalls` measures other code).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .procs import free_port

# What each source times (a name missing from the code measured, e.g. an older tree, is left out).
WATCHED = {
    "fold": ("llm_scope.metrics", "Metrics", "fold"),
    "hand-over": ("llm_scope.tracing.handoff", "TraceHandoff", "_send_queued"),
    "pickling": ("llm_scope.tracing.handoff_queue", "PendingRecords", "_seal"),  # 16 records, as calls end
    "acks": ("llm_scope.tracing.handoff", "TraceHandoff", "_settle"),
    "cost": ("llm_scope.metrics", "Metrics", "add_cost"),
    "sync": ("llm_scope.metrics", "Metrics", "sync_pipeline"),
    "adopt": ("llm_scope.tracing.spill", "Spill", "adopt"),
}
SOURCES = (*WATCHED, "gc0", "gc1", "gc2")


def _timed(spans: list[float], fn: Callable[..., Any]) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spans.append(time.perf_counter() - start)

    return timed


def _watch(spans: dict[str, list[float]]) -> None:
    """Wrap the periodic work by name (the same names in the code before the change), and time GC passes."""
    for name, (module, cls, method) in WATCHED.items():
        try:
            owner = getattr(importlib.import_module(module), cls)
            setattr(owner, method, _timed(spans[name], getattr(owner, method)))
        except (ImportError, AttributeError):
            continue
    began = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            began[0] = time.perf_counter()
        else:
            spans[f"gc{info['generation']}"].append(time.perf_counter() - began[0])

    gc.callbacks.append(on_gc)


def _children() -> list[int]:
    tasks = Path(f"/proc/{os.getpid()}/task")
    return [int(pid) for task in tasks.iterdir() for pid in (task / "children").read_text().split()]


def _pin_children(others: set[int] | None) -> None:
    """The trace helper, the mock, the sink and the load generator on `others`: the gateway's core is its own."""
    for pid in _children() if others else ():
        os.sched_setaffinity(pid, others)


async def _measure(
    app: Any, port: int, duration: float, spans: dict[str, list[float]], others: set[int] | None
) -> dict[str, Any]:
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    serving = asyncio.create_task(server.serve())
    for _ in range(600):  # up to a minute on a busy machine
        if server.started:
            break
        await asyncio.sleep(0.1)
    load = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.loadgen", "--url", f"http://127.0.0.1:{port}/v1/chat/completions",
        "--model", "bench-model", "--duration", str(duration), "--warmup", "1", "--api-key", "sk-bench-stalls",
        "--handshake", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert load.stdout is not None and load.stdin is not None
    assert (await load.stdout.readline()).strip() == b"ready"
    _pin_children(others)
    for each in spans.values():
        each.clear()  # start-up and warm-up excepted
    began = time.perf_counter()
    load.stdin.write(b"go\n")
    out, _ = await load.communicate()
    wall = time.perf_counter() - began
    server.should_exit = True
    await serving
    return {"load": json.loads(out.decode().strip().splitlines()[-1]), "wall": wall}


def run(duration: float, pin: int | None, others: set[int] | None = None) -> None:
    if pin is not None:
        os.sched_setaffinity(0, {pin})  # the trace helper, started from here, inherits it
    spans: dict[str, list[float]] = {name: [] for name in SOURCES}
    mock_port, sink_port, port = free_port(), free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.yaml"
        config.write_text(
            "model_list:\n  - model_name: bench-model\n    litellm_params:\n      model: openai/bench-model\n"
            f"      api_base: http://127.0.0.1:{mock_port}/v1\n      api_key: sk-upstream-bench\n"
        )
        os.environ.update(
            LLM_SCOPE_CONFIG=str(config), LLM_SCOPE_DATA_DIR=str(Path(tmp) / "data"),
            LLM_SCOPE_MASTER_KEY="sk-bench-stalls", LANGFUSE_PUBLIC_KEY="pk-lf-bench",
            LANGFUSE_SECRET_KEY="sk-lf-bench-stalls", LANGFUSE_HOST=f"http://127.0.0.1:{sink_port}",
            LOG_LEVEL="warning",
        )  # fmt: skip
        services = [
            subprocess.Popen([sys.executable, "-m", "bench.mock_upstream", "--port", str(mock_port)]),
            subprocess.Popen([sys.executable, "-m", "bench.otlp_sink", "--port", str(sink_port)]),
        ]
        try:
            from llm_scope.cli import app_factory

            _watch(spans)
            result = asyncio.run(_measure(app_factory(), port, duration, spans, others))
        finally:
            for proc in services:
                proc.terminate()
                proc.wait()
    latency = result["load"]["latency_ms"]
    print(
        f"c1: {result['load']['count']:,} calls, p50 {latency['p50']:.3f} ms, p99 {latency['p99']:.3f} ms, "
        f"max {latency['max']:.1f} ms"
    )
    print("source    | runs  | median ms | p99 ms | longest ms | share of the time")
    for name in SOURCES:
        each = sorted(spans[name])
        if each:
            median, p99 = each[len(each) // 2] * 1e3, each[int(len(each) * 0.99)] * 1e3
            print(
                f"{name:<9} | {len(each):>5} | {median:>9.3f} | {p99:>6.3f} | {each[-1] * 1e3:>10.3f}"
                f" | {sum(each) / result['wall']:.2%}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=8.0, help="measured seconds")
    parser.add_argument("--pin", type=int, help="run the gateway (and, without --others, everything else) on this CPU")
    parser.add_argument(
        "--others", help="CPUs for the trace helper, the mock, the sink and the load generator, e.g. 1 or 1-3"
    )
    args = parser.parse_args()
    run(args.duration, args.pin, _cpus(args.others) if args.others else None)


def _cpus(spec: str) -> set[int]:
    cpus: set[int] = set()
    for part in spec.split(","):
        first, _, last = part.partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    return cpus


if __name__ == "__main__":
    main()
