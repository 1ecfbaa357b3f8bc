"""What stalls a worker's event loop at concurrency 1: `python -m bench.loop_stalls --duration 8 --pin 0`.

At c1 a request that arrives while the loop runs something else waits for it to finish, so the tail of the
added latency is made of the longest things the loop runs besides requests. This serves one llm-scope worker
in this process (everything on: local store, Langfuse export to a loopback sink, metrics), drives it with
one closed-loop connection from `bench.loadgen`, and times the loop's periodic work (`WATCHED`: the metrics
fold, the hand-over of records to the trace helper, the pickling of records as calls finish, the helper's
acknowledgements, the metrics' sync, the look for spill files) and the garbage collector's passes, by
generation. For each it prints how many times it ran, the median, p99 and longest run, and the share of the
time the loop spent in it (the share of requests that arrive during one). `--callbacks` also times every
callback the loop runs, by name, to find what else shows up.

`--pin 0` puts everything (the worker, its helper, the mock, the sink, the load) on CPU 0; `--pin 0 --others
1` leaves CPU 0 to the worker, as with the helper on its own core. Wall times: on a machine shared with other
work, a run can be preempted; the CPU columns (this thread's CPU time over the same span) leave preemption
out. Compare medians, alternating the code compared (`PYTHONPATH=/tmp/old/src python -m bench.loop_stalls`
measures other code; a source that code lacks is left out).
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
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .procs import cpu_list, free_port

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


Spans = dict[str, list[tuple[float, float]]]  # by source: (wall seconds, this thread's CPU seconds) per run


def _timed(spans: list[tuple[float, float]], fn: Callable[..., Any]) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        start, cpu = time.perf_counter(), time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            spans.append((time.perf_counter() - start, time.thread_time() - cpu))

    return timed


def _watch(spans: Spans) -> None:
    """Wrap the periodic work by name (the same names in the code before the change), and time GC passes."""
    for name, (module, cls, method) in WATCHED.items():
        try:
            owner = getattr(importlib.import_module(module), cls)
            setattr(owner, method, _timed(spans[name], getattr(owner, method)))
        except (ImportError, AttributeError):
            continue
    began = [0.0, 0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            began[:] = time.perf_counter(), time.thread_time()
        else:
            spans[f"gc{info['generation']}"].append((time.perf_counter() - began[0], time.thread_time() - began[1]))

    gc.callbacks.append(on_gc)


def _watch_callbacks(spans: Spans) -> None:
    """Every callback the loop runs, timed and named (a task's step by its coroutine), under "cb:<name>": what
    else shows up besides the sources above. Requests show up too, as the tasks and protocols serving them."""
    run = asyncio.events.Handle._run

    def timed(handle: asyncio.events.Handle) -> None:
        callback = handle._callback  # type: ignore[attr-defined]
        owner = getattr(callback, "__self__", None)
        if isinstance(owner, asyncio.Task):
            name = getattr(owner.get_coro(), "__qualname__", "?")
        else:
            name = getattr(callback, "__qualname__", type(callback).__name__)
        start, cpu = time.perf_counter(), time.thread_time()
        try:
            run(handle)
        finally:
            spans.setdefault(f"cb:{name}", []).append((time.perf_counter() - start, time.thread_time() - cpu))

    asyncio.events.Handle._run = timed  # type: ignore[method-assign]


def _children() -> list[int]:
    tasks = Path(f"/proc/{os.getpid()}/task")
    return [int(pid) for task in tasks.iterdir() for pid in (task / "children").read_text().split()]


def _pin_children(others: set[int] | None) -> None:
    """The trace helper, the mock, the sink and the load generator on `others`: the gateway's core is its own."""
    for pid in _children() if others else ():
        os.sched_setaffinity(pid, others)


async def _measure(app: Any, port: int, duration: float, spans: Spans, others: set[int] | None) -> dict[str, Any]:
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


def run(duration: float, pin: int | None, others: set[int] | None = None, callbacks: bool = False) -> None:
    if pin is not None:
        os.sched_setaffinity(0, {pin})  # the trace helper, started from here, inherits it
    spans: Spans = {name: [] for name in SOURCES}
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
            if callbacks:
                _watch_callbacks(spans)
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
    print("source    | runs  | median ms | p99 ms | longest ms | CPU: median | p99   | longest | share of the time")
    _table(spans, SOURCES, result["wall"])
    if callbacks:
        named = [name for name in spans if name.startswith("cb:") and spans[name]]
        print("\nthe loop's callbacks, by their longest CPU time (requests included):")
        _table(spans, sorted(named, key=lambda n: -max(cpu for _, cpu in spans[n]))[:15], result["wall"])


def _table(spans: Spans, names: Iterable[str], wall: float) -> None:
    for name in names:
        if not spans[name]:
            continue
        line = f"{name:<9} | {len(spans[name]):>5}"
        walls, cpus = (sorted(s[at] * 1e3 for s in spans[name]) for at in (0, 1))
        for each, widths in ((walls, (9, 6, 10)), (cpus, (11, 5, 7))):
            for value, width in zip((each[len(each) // 2], each[int(len(each) * 0.99)], each[-1]), widths, strict=True):
                line += f" | {value:>{width}.3f}"
        print(f"{line} | {sum(walls) / 1e3 / wall:.2%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=8.0, help="measured seconds")
    parser.add_argument("--pin", type=int, help="run the gateway (and, without --others, everything else) on this CPU")
    parser.add_argument(
        "--others", help="CPUs for the trace helper, the mock, the sink and the load generator, e.g. 1 or 1-3"
    )
    parser.add_argument("--callbacks", action="store_true", help="also time every callback the loop runs, by name")
    args = parser.parse_args()
    run(args.duration, args.pin, cpu_list(args.others) if args.others else None, args.callbacks)


if __name__ == "__main__":
    main()
