"""Session-shaped traffic, as a coding agent sends it: `python -m bench.session --cores 0`.

Claude Code and Codex send 50-200 KB per call, most of it the conversation so far again: the same system
prompt and tool definitions every turn, every earlier turn, and one new tool result. Here each of
`--sessions` concurrent conversations grows turn by turn to `--kb` (150 KB by default) and then starts over
as a new conversation; every conversation is unique (its first message carries its own id), so nothing
repeats across sessions that would not repeat in real use.

llm-scope runs with one worker and everything on (store, Langfuse export to a loopback sink), pinned to
`--cores`, the mock upstream and this client on the other cores. Reported: calls/s, CPU per call of the
gateway's process tree (worker + trace helper, the drain of deferred work included), the helper's share,
store growth per call (the SQLite file with its WAL), and traced/served. The issue's targets for this cell
are <= 0.5 ms CPU and <= 10 KB of store growth per call. With `--kb 0` each conversation is its first turn
alone (the system prompt and tools, ~15 KB): the same cost without the growing history.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import json
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python bench/session.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.loadgen import Conn, summary_ms
from bench.probes import stored_traces
from bench.procs import cpu_seconds, free_port, http_get, memory_line, role_memory, settle, tree
from bench.scale import Cores, parse_cpus, pinned, roles, start_upstreams
from bench.targets import MODEL, llm_scope_service

KB = 1024
SYSTEM = "You are a coding agent working in a large repository. Follow the house rules below.\n" * 100  # ~8 KB
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": f"tool_{i}",
            "description": "Reads, edits or runs something in the workspace; see the parameters. " * 6,
            "parameters": {"type": "object", "properties": {"path": {"type": "string"}, "text": {"type": "string"}}},
        },
    }
    for i in range(12)
]  # ~6 KB
TURN_BYTES = 3_500  # a tool result per turn: about 40 turns to 150 KB


def conversation(session: str, kb: float) -> list[bytes]:
    """The JSON bodies of one conversation's turns, from the first to the one that reaches `kb`."""
    head: list[dict[str, Any]] = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"Session {session}: fix the failing test in tests/test_app.py."},
    ]
    bodies: list[bytes] = []
    history: list[dict[str, Any]] = []
    turn = 0
    while True:
        body = json.dumps({"model": MODEL, "messages": head + history, "tools": TOOLS, "max_tokens": 256}).encode()
        bodies.append(body)
        if len(body) >= kb * KB or kb * KB < len(SYSTEM):
            return bodies
        turn += 1
        call = f"call_{session}_{turn}"
        history.append(
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": call, "type": "function", "function": {"name": "tool_1", "arguments": '{"path": "a.py"}'}}
            ]}
        )  # fmt: skip
        history.append(
            {"role": "tool", "tool_call_id": call, "content": f"line {turn}: " + "x = 1\n" * (TURN_BYTES // 6)}
        )


def request(port: int, key: str, body: bytes) -> bytes:
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {key}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def drive(port: int, key: str, sessions: int, kb: float, seconds: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    stop_at = time.perf_counter() + seconds
    latencies: list[float] = []
    counts = {"count": 0, "errors": 0, "bytes": 0}

    async def one(n: int) -> None:
        _, conn = await loop.create_connection(Conn, "127.0.0.1", port)
        serial = 0
        while time.perf_counter() < stop_at:
            serial += 1
            for body in conversation(f"{os.getpid()}-{n}-{serial}", kb):
                if time.perf_counter() >= stop_at:
                    break
                t0 = time.perf_counter()
                status, *_ = await conn.send(request(port, key, body))
                latencies.append(time.perf_counter() - t0)
                counts["count" if status == 200 else "errors"] += 1
                counts["bytes"] += len(body)
        assert conn.transport is not None
        conn.transport.close()

    await asyncio.gather(*(one(n) for n in range(sessions)))
    return {**counts, "latency_ms": summary_ms(array.array("d", latencies))}


def store_bytes(data: Path) -> int:
    """What the store holds, in bytes: its pages in use, as a reader sees them (the WAL's included). The files'
    sizes are not it: the WAL is reused after a checkpoint and the database keeps freed pages, so between two
    moments the files can stay the same size while rows were written, or shrink."""
    db = sqlite3.connect(f"file:{data / 'llm-scope.db'}?mode=ro", uri=True)
    try:
        size, pages, free = (
            db.execute(f"PRAGMA {name}").fetchone()[0] for name in ("page_size", "page_count", "freelist_count")
        )
        return int(size * (pages - free))
    finally:
        db.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cores", default=str(min(os.sched_getaffinity(0))), help="gateway cores (default: the first)")
    p.add_argument("--kb", type=float, default=150.0, help="size a conversation grows to before starting over")
    p.add_argument("--sessions", type=int, default=4, help="conversations at once")
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--no-export", action="store_true")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    cores = Cores.allocate(parse_cpus(args.cores))
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="llm-scope-session-")))
        mock_port, sink_port = free_port(), free_port()
        for svc in start_upstreams(workdir, cores.mock, mock_port, sink_port):
            stack.callback(svc.stop)
        svc, key, _ = llm_scope_service(workdir, mock_port, sink_port, 1, "gw")
        svc.argv = pinned(svc.argv, cores.gateway)
        if args.no_export:
            svc.env["LANGFUSE_ENABLED"] = "false"
        if probe := os.environ.get("LLM_SCOPE_MEMPROBE"):  # the helper's caches in bytes at its stop (memprobe)
            svc.env["LLM_SCOPE_MEMPROBE"] = probe
        svc.start(timeout=60)
        stack.callback(svc.stop)
        os.sched_setaffinity(0, set(cores.load))
        time.sleep(1.0)  # start-up work (the helper's start, background tasks) done: idle memory
        idle = role_memory(svc.pid)
        data = workdir / "gw" / "data"
        warm = asyncio.run(drive(svc.port, key, args.sessions, args.kb, 1.0))
        served = warm["count"] + warm["errors"]
        deadline = time.monotonic() + 60
        while (stored_traces(data / "llm-scope.db") or 0) < served and time.monotonic() < deadline:
            time.sleep(0.1)  # the warm-up's traces are not the cell's
        settle(svc.pid, max_wait=5)
        _, helpers = roles(svc.pid)
        cpu0, helper0, size0 = cpu_seconds(tree(svc.pid)), cpu_seconds(helpers), store_bytes(data)
        sink0 = json.loads(http_get(sink_port, "/stats")[1])
        t0 = time.monotonic()
        result = asyncio.run(drive(svc.port, key, args.sessions, args.kb, args.duration))
        wall = time.monotonic() - t0
        served += result["count"] + result["errors"]
        deadline = time.monotonic() + 60
        while (stored_traces(data / "llm-scope.db") or 0) < served and time.monotonic() < deadline:
            time.sleep(0.2)
        settle(svc.pid, max_wait=10)
        cpu1, helper1, size1 = cpu_seconds(tree(svc.pid)), cpu_seconds(helpers), store_bytes(data)
        sink1 = json.loads(http_get(sink_port, "/stats")[1])
        after = role_memory(svc.pid)
        n = result["count"] or 1
        out = {
            "kb": args.kb,
            "calls": result["count"],
            "errors": result["errors"],
            "calls_per_s": result["count"] / wall,
            "mean_body_kb": result["bytes"] / n / KB,
            "cpu_ms_per_call": (cpu1 - cpu0) * 1000 / n,
            "helper_cpu_ms_per_call": (helper1 - helper0) * 1000 / n,
            "store_kb_per_call": (size1 - size0) / n / KB,
            "traced": stored_traces(data / "llm-scope.db"),
            "served": served,
            "p50_ms": result["latency_ms"]["p50"],
            "p99_ms": result["latency_ms"]["p99"],
            "export_posts": sink1["otlp_posts"] - sink0["otlp_posts"],
            "export_kb_per_call": (sink1["bytes"] - sink0["bytes"]) / n / KB,  # gzipped, as sent
            "idle_memory": idle,
            "after_memory": after,
        }
    print(
        f"session cell: conversations to {args.kb:g} KB (mean body {out['mean_body_kb']:.0f} KB), "
        f"{args.sessions} at once, gateway on cores {cores.gateway}\n"
        f"  {out['calls_per_s']:,.0f} calls/s, CPU {out['cpu_ms_per_call']:.3f} ms per call "
        f"(trace helper {out['helper_cpu_ms_per_call']:.3f}), store +{out['store_kb_per_call']:.1f} KB per call, "
        f"p50 {out['p50_ms']:.2f} ms, p99 {out['p99_ms']:.2f} ms, traced {out['traced']}/{out['served']}\n"
        f"  export {out['export_posts']} POSTs, {out['export_kb_per_call']:.1f} KB per call (gzipped)\n"
        f"  RSS idle: {memory_line(idle)}; after: {memory_line(after)}"
    )
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
