"""Where llm-scope's CPU goes under load: `python -m bench.profile --mode nonstream --concurrency 16`.

Starts the mock, the OTLP sink and llm-scope exactly as `bench.run` does (everything on), drives load,
and samples the gateway with py-spy (installed into bench/.venvs/tools). Writes the collapsed stacks
(feed them to any flame graph tool, e.g. speedscope) and prints the top functions by self and by
inclusive time, as a share of all samples.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.procs import cpu_seconds, free_port, tree
from bench.scale import roles
from bench.targets import ROOT, TOOLS_VENV, _clean_env, llm_scope_service, project_python, start_helper, tools_python


def top(stacks: Path, n: int, thread: str | None = None) -> str:
    """Top functions; `thread` keeps only stacks of threads whose py-spy label contains it."""
    by_thread: collections.Counter[str] = collections.Counter()
    self_t: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in stacks.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        k = int(count)
        total += k
        frames = stack.split(";")
        label = ""
        while frames and frames[0].startswith(("thread", "process")):
            label += frames.pop(0) + " "
        kind = _thread_kind(label)
        by_thread[kind] += k
        if thread is not None and thread != kind:
            total -= k
            continue
        names = [
            f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0].rsplit("/", 1)[-1] + ")" if " (" in f else f
            for f in frames
        ]
        if names:
            self_t[names[-1]] += k
        for name in set(names):
            incl[name] += k
    grand = sum(by_thread.values())
    out = [
        f"{grand} samples; by thread: " + ", ".join(f"{t} {c / grand * 100:.0f}%" for t, c in by_thread.most_common())
    ]
    out += [f"{'all threads' if thread is None else thread + ' thread'}: {total} samples", "", "self time:"]
    out += [f"  {c / total * 100:5.1f}%  {name}" for name, c in self_t.most_common(n)]
    out += ["", "inclusive time:"]
    out += [f"  {c / total * 100:5.1f}%  {name}" for name, c in incl.most_common(n)]
    return "\n".join(out)


def _thread_kind(label: str) -> str:
    """py-spy labels a stack `thread (id): Name`; the event loop runs on MainThread."""
    name = label.rpartition(": ")[2].strip()
    if name == "MainThread":
        return "event loop"
    return name.rstrip("0123456789").rstrip("_-") or "other"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=("nonstream", "stream", "mixed"), default="nonstream")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--rate", type=int, default=499, help="py-spy samples per second")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / ".venvs" / "profiles")
    p.add_argument("--top", type=int, default=40)
    p.add_argument("--native", action="store_true", help="include native (C) frames")
    p.add_argument("--gil", action="store_true", help="only sample the thread holding the GIL")
    p.add_argument("--helper", action="store_true", help="sample the trace helper process instead of the gateway")
    args = p.parse_args()
    if tools_python(install=True) is None or not (TOOLS_VENV / "bin" / "py-spy").exists():
        sys.exit("py-spy is not available in bench/.venvs/tools")
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="llm-scope-profile-"))
    mock_port, otlp_port = free_port(), free_port()
    helpers = [start_helper("bench.mock_upstream", mock_port, work), start_helper("bench.otlp_sink", otlp_port, work)]
    svc, key, _ = llm_scope_service(work, mock_port, otlp_port, 1, "llm-scope")
    try:
        svc.start()
        url = f"http://127.0.0.1:{svc.port}/v1/chat/completions"
        gen = subprocess.Popen(
            [project_python(), "-m", "bench.loadgen", "--url", url, "--mode", args.mode, "--concurrency",
             str(args.concurrency), "--duration", str(args.duration + 2), "--warmup", "1", "--api-key", key],
            stdout=subprocess.PIPE, text=True, cwd=ROOT, env=_clean_env(),
        )  # fmt: skip
        time.sleep(1.5)
        who = "helper" if args.helper else "gateway"
        stacks = args.out / f"{args.mode}-c{args.concurrency}-{who}.collapsed"
        pid = roles(svc.pid)[1][0] if args.helper else svc.pid
        cpu0 = cpu_seconds(tree(svc.pid))
        spy = [str(TOOLS_VENV / "bin" / "py-spy"), "record", "-p", str(pid), "-d", str(int(args.duration)),
               "-r", str(args.rate), "-f", "raw", "-o", str(stacks), "--nonblocking", "--threads"]  # fmt: skip
        if args.native:
            spy.append("--native")
        if args.gil:
            spy.append("--gil")
        subprocess.run(spy, check=True, capture_output=True)
        cpu1 = cpu_seconds(tree(svc.pid))
        out, _ = gen.communicate(timeout=60)
        print(out.strip().splitlines()[-1][:300])
        print(f"gateway and helper CPU while sampled: {cpu1 - cpu0:.2f} s over {args.duration:g} s")
        print(f"collapsed stacks: {stacks}\n")
        print(top(stacks, args.top))
        print()
        print(top(stacks, args.top, "event loop"))
    finally:
        svc.stop()
        for h in helpers:
            h.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
