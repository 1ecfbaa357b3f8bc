"""Server stacks side by side: `python -m bench.servers --concurrency 1,16 --duration 3 --repeats 3`.

Is uvicorn + Starlette the floor that keeps llm-scope from ~9,000 calls/s per core? This runs the same
minimal passthrough (bench/stacks.py) on four stacks: uvicorn + httptools (ASGI, today's), granian's ASGI,
granian's RSGI, and a bare asyncio.Protocol + httptools server; then llm-scope's whole app (everything on:
local store, Langfuse export to a loopback sink, metrics, a master key) under uvicorn and under granian's
ASGI (`llm_scope.cli:app_factory`, the factory uvicorn's workers run). It reports CPU per call of each
server's whole process tree (llm-scope's trace helper and the drain of its deferred work included),
calls/s and p50/p99 latency, at each concurrency.

Pinned as bench/scale.py does: the servers on `--server-core` (0), the load generator and the mock upstream
on `--load-core` (1). Every server is started once; in each repeat the cells run in a rotated order, so
drift on a shared machine hits every stack alike, and the table shows each cell's median and range.

granian is not a dependency of the project: it is installed (pinned) into bench/.venvs/granian with
`pip install --target` and put on the servers' PYTHONPATH only, beside the project's own venv.

    python -m bench.servers                               # c1 and c16, 3 s per cell, 3 repeats
    python -m bench.servers --only uvicorn,protocol --repeats 1 --duration 1
    python -m bench.servers --out /tmp/servers.md --json /tmp/servers.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python bench/servers.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.probes import outbox_rows, stored_traces
from bench.procs import CLK_TCK, Service, free_port, settle, tree
from bench.scale import machine, pinned, roles
from bench.targets import ROOT, VENVS, _clean_env, llm_scope_service, project_python, version_of

GRANIAN_VERSION = "2.8.7"
GRANIAN_DIR = VENVS / "granian"
STACKS = ("uvicorn", "granian-asgi", "granian-rsgi", "protocol", "llm-scope/uvicorn", "llm-scope/granian")
GRANIAN_EXTRA: list[str] = []  # --granian-flags, e.g. "--task-impl rust --runtime-mode st"
GRANIAN_FLAGS = ["--host", "127.0.0.1", "--workers", "1", "--loop", "uvloop", "--no-ws", "--log-level", "warning"]


def ensure_granian() -> str:
    """granian==GRANIAN_VERSION in bench/.venvs/granian (a --target directory); returns its version."""
    marker = GRANIAN_DIR / f"granian-{GRANIAN_VERSION}.dist-info"
    if not marker.exists():
        print(f"bench: installing granian=={GRANIAN_VERSION} into {GRANIAN_DIR} ...", flush=True)
        cmd = [project_python(), "-m", "pip", "install", "-q", "--upgrade", "--target", str(GRANIAN_DIR)]
        subprocess.run([*cmd, f"granian=={GRANIAN_VERSION}"], check=True)
    return GRANIAN_VERSION


def granian_env(env: dict[str, str]) -> dict[str, str]:
    env = dict(env)
    env["PYTHONPATH"] = f"{ROOT}:{GRANIAN_DIR}"  # the project's venv first, granian's directory after it
    return env


@dataclass
class Stack:
    name: str
    service: Service
    api_key: str = "sk-bench"
    db: Path | None = None  # llm-scope's local store: a cell ends once every call answered is stored
    served: int = 0


def passthrough_stack(name: str, workdir: Path, mock_url: str) -> Stack:
    port = free_port()
    env = _clean_env()
    if name == "uvicorn":
        argv = [project_python(), "-m", "bench.passthrough", "--port", str(port), "--upstream", mock_url]
    elif name == "protocol":
        argv = [project_python(), "-m", "bench.stacks", "--port", str(port), "--upstream", mock_url]
    else:
        interface, factory = ("asgi", "asgi_factory") if name == "granian-asgi" else ("rsgi", "rsgi_factory")
        env = granian_env(env) | {"BENCH_UPSTREAM": mock_url}
        argv = [project_python(), "-m", "granian", "--interface", interface, "--factory", "--port", str(port)]
        argv += [*GRANIAN_FLAGS, *GRANIAN_EXTRA, f"bench.stacks:{factory}"]
    log = workdir / f"{name}.log"
    return Stack(name, Service(name, argv, port=port, ready_path="/ready", env=env, cwd=ROOT, log=log))


def llm_scope_stack(name: str, workdir: Path, mock_port: int, sink_port: int) -> Stack:
    tag = name.replace("/", "-")
    svc, key, _ = llm_scope_service(workdir, mock_port, sink_port, 1, tag)
    svc.env["LOG_LEVEL"] = "warning"
    if name == "llm-scope/granian":
        # What `llm-scope serve` hands its uvicorn workers through the environment, for granian's worker.
        config, data = svc.argv[svc.argv.index("--config") + 1], svc.argv[svc.argv.index("--data-dir") + 1]
        svc.env = granian_env(svc.env) | {
            "PROXY_HOST": "127.0.0.1",
            "PROXY_PORT": str(svc.port),
            "LLM_SCOPE_CONFIG": config,
            "LLM_SCOPE_DATA_DIR": data,
        }
        svc.argv = [project_python(), "-m", "granian", "--interface", "asgi", "--factory", "--port", str(svc.port)]
        svc.argv += [*GRANIAN_FLAGS, *GRANIAN_EXTRA, "llm_scope.cli:app_factory"]
    return Stack(name, svc, api_key=key, db=workdir / tag / "data" / "llm-scope.db")


def user_system(pids: list[int]) -> tuple[float, float]:
    """(user, system) CPU seconds of the processes: how much of a stack's cost is the kernel's socket work."""
    user = system = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError):
            raw = Path(f"/proc/{pid}/stat").read_text()
            fields = raw[raw.rindex(")") + 2 :].split()
            user, system = user + int(fields[11]), system + int(fields[12])
    return user / CLK_TCK, system / CLK_TCK


def drain(stack: Stack, max_wait: float) -> None:
    """Bounded wait until llm-scope's store holds every call answered so far and its outbox is empty."""
    if stack.db is None:
        return
    deadline = time.monotonic() + max_wait
    while time.monotonic() < deadline:
        stored = stored_traces(stack.db)
        if stored is not None and stored >= stack.served and not outbox_rows(stack.db):
            return
        time.sleep(0.05)
    print(f"  {stack.name}: {stored_traces(stack.db)} of {stack.served} calls stored after {max_wait:g} s", flush=True)


def cell(stack: Stack, concurrency: int, args: argparse.Namespace) -> dict[str, Any]:
    url = f"http://127.0.0.1:{stack.service.port}/v1/chat/completions"
    cmd = [
        project_python(), "-m", "bench.loadgen", "--url", url, "--mode", args.mode, "--concurrency",
        str(concurrency), "--duration", str(args.duration), "--warmup", str(args.warmup), "--api-key",
        stack.api_key, "--handshake",
    ]  # fmt: skip
    load = subprocess.Popen(
        pinned(cmd, [args.load_core]), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
        env=_clean_env(),
    )  # fmt: skip
    assert load.stdin is not None and load.stdout is not None
    if (line := load.stdout.readline().strip()) != "ready":
        load.kill()
        raise RuntimeError(f"load generator did not start: {line!r}; see {stack.service.log_path}")
    drain(stack, args.drain_max)
    settle(stack.service.pid, max_wait=3)
    pids = tree(stack.service.pid)
    helpers = roles(stack.service.pid)[1]
    user0, system0 = user_system(pids)
    helper0 = sum(user_system(helpers))
    load.stdin.write("go\n")
    load.stdin.flush()
    result = json.loads(load.stdout.readline())
    load.wait(30)
    stack.served += result["total"]
    drain(stack, args.drain_max)
    settle(stack.service.pid, max_wait=3)
    user1, system1 = user_system(pids)
    helper1 = sum(user_system(helpers))
    count = result["count"]
    return {
        "stack": stack.name,
        "concurrency": concurrency,
        "count": count,
        "errors": result["errors"],
        "error_samples": result["error_samples"][:2],
        "rps": result["rps"],
        "p50": result["latency_ms"]["p50"],
        "p99": result["latency_ms"]["p99"],
        "cpu_ms": (user1 - user0 + system1 - system0) * 1000 / count if count else None,
        "system_ms": (system1 - system0) * 1000 / count if count else None,
        "helper_ms": (helper1 - helper0) * 1000 / count if count and helpers else None,
    }


def start_mock(workdir: Path, core: int) -> tuple[list[Service], int, int]:
    mock_port, sink_port = free_port(), free_port()
    started = []
    for name, module, port in (("mock", "bench.mock_upstream", mock_port), ("sink", "bench.otlp_sink", sink_port)):
        argv = pinned([project_python(), "-m", module, "--port", str(port)], [core])
        svc = Service(name, argv, port=port, ready_path="/health", env=_clean_env(), cwd=ROOT, log=workdir / name)
        svc.start(timeout=30)
        started.append(svc)
    return started, mock_port, sink_port


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    names = [s for s in STACKS if s in args.only.split(",")] if args.only else list(STACKS)
    versions = {"uvicorn": version_of("uvicorn", project_python())}
    if any("granian" in n for n in names):
        versions["granian"] = ensure_granian()
    helpers, mock_port, sink_port = start_mock(workdir, args.load_core)
    mock_url = f"http://127.0.0.1:{mock_port}/v1/chat/completions"
    stacks: list[Stack] = []
    rows: list[dict[str, Any]] = []
    try:
        for name in names:
            stack = (
                llm_scope_stack(name, workdir, mock_port, sink_port)
                if name.startswith("llm-scope")
                else passthrough_stack(name, workdir, mock_url)
            )
            stack.service.argv = pinned(stack.service.argv, [args.server_core])
            stack.service.start(timeout=60)
            stacks.append(stack)
        for repeat in range(args.repeats):
            for concurrency in (int(c) for c in args.concurrency.split(",")):
                shift = repeat % len(stacks)
                for stack in stacks[shift:] + stacks[:shift]:
                    row = cell(stack, concurrency, args) | {"repeat": repeat}
                    rows.append(row)
                    print(f"  r{repeat} {format_row(summarize([row])[0])}", flush=True)
    finally:
        for svc in [s.service for s in stacks] + helpers:
            svc.stop()
    return {"machine": machine(), "versions": versions, "args": vars(args), "rows": rows}


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One line per (stack, concurrency): medians over the repeats, and the range of CPU per call."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["stack"], r["concurrency"]), []).append(r)
    out = []
    for (name, conc), rs in groups.items():
        cpus = [r["cpu_ms"] for r in rs if r["cpu_ms"] is not None]
        out.append(
            {
                "stack": name,
                "concurrency": conc,
                "runs": len(rs),
                "errors": sum(r["errors"] for r in rs),
                "rps": _median([r["rps"] for r in rs]),
                "p50": _median([r["p50"] for r in rs]),
                "p99": _median([r["p99"] for r in rs]),
                "cpu_ms": _median(cpus),
                "cpu_min": min(cpus, default=None),
                "cpu_max": max(cpus, default=None),
                "system_ms": _median([r["system_ms"] for r in rs]),
                "helper_ms": _median([r["helper_ms"] for r in rs]),
            }
        )
    return sorted(out, key=lambda r: (r["concurrency"], STACKS.index(r["stack"])))


HEADER = (
    "| stack | conc. | CPU/call ms (median; range) | of it kernel | of it trace helper | calls/s | p50 ms | p99 ms "
    "| errors |\n" + "|---" * 9 + "|"
)


def _num(value: float | None, fmt: str) -> str:
    return "unknown" if value is None else format(value, fmt)


def format_row(r: dict[str, Any]) -> str:
    spread = f" ({_num(r['cpu_min'], '.3f')}-{_num(r['cpu_max'], '.3f')})" if r["runs"] > 1 else ""
    return (
        f"| {r['stack']} | {r['concurrency']} | {_num(r['cpu_ms'], '.3f')}{spread} | {_num(r['system_ms'], '.3f')} "
        f"| {_num(r['helper_ms'], '.3f') if r['helper_ms'] is not None else '—'} "
        f"| {_num(r['rps'], ',.0f')} "
        f"| {_num(r['p50'], '.2f')} | {_num(r['p99'], '.2f')} | {r['errors']} |"
    )


def render(data: dict[str, Any]) -> str:
    a, m, v = data["args"], data["machine"], data["versions"]
    versions = ", ".join(f"{k} {val}" for k, val in v.items())
    lines = [
        f"Server stacks: {m['cpus']} CPUs ({m['cpu'] or 'unknown model'}), Python {m['python']}, {versions}; "
        f"servers on core {a['server_core']}, load generator and mock upstream on core {a['load_core']}; "
        f"{a['mode']} calls, {a['duration']:g} s per cell, {a['repeats']} repeats in rotated order.",
        "",
        HEADER,
        *(format_row(r) for r in summarize(data["rows"])),
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.servers", description=__doc__.splitlines()[0])
    p.add_argument("--only", help=f"comma-separated subset of {','.join(STACKS)}")
    p.add_argument("--concurrency", default="1,16")
    p.add_argument("--mode", choices=("nonstream", "stream"), default="nonstream")
    p.add_argument("--duration", type=float, default=3.0, help="measured seconds per cell")
    p.add_argument("--warmup", type=float, default=0.5)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--server-core", type=int, default=0)
    p.add_argument("--load-core", type=int, default=1)
    p.add_argument("--drain-max", type=float, default=20.0, help="most seconds to wait for llm-scope's traces")
    p.add_argument("--granian-flags", default="", help="more flags for granian, e.g. '--task-impl rust'")
    p.add_argument("--out", type=Path, help="write the table (markdown) here")
    p.add_argument("--json", type=Path, help="write every number here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    GRANIAN_EXTRA[:] = args.granian_flags.split()
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="llm-scope-servers-")))
        data = run(args, workdir)
    text = render(data)
    print("\n" + text, flush=True)
    if args.out:
        args.out.write_text(text)
    if args.json:
        args.json.write_text(json.dumps(data, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
