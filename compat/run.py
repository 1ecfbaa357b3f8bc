"""`make compat`: real CLIs, installed from the package registries, run against the gateway in front of the
scripted upstream; each is checked for a correct answer, a tool round trip and complete traces.

    python -m compat.run [--only claude-code,codex,aider,llm] [--timeout 180] [--no-netns] [--strict-egress]
                         [--require-all] [--install-only] [-v]

1. Installs the pinned CLIs into `.compat/` once (compat/install.py) — the only step that uses the network.
2. Re-runs itself inside a fresh network namespace that has only loopback (`unshare -n`), when the
   machine allows it: a CLI that passes there provably needs no internet. Otherwise runs as is, and
   says so.
3. Starts the scripted upstream (+ egress recorder) and `llm-scope serve` with a config that routes every
   model to it, runs each CLI's checks, and verifies through GET /api/traces that every call the
   upstream saw was traced with route, model, status, tokens, cost and time to first token.
4. Prints a PASS/FAIL/SKIPPED table and `compat: N passed, N failed, N skipped`; exits 1 on any failure.

Everything a run leaves (CLI homes, stdout/stderr, upstream request dump, gateway log and store) is in
`.compat/run/` for inspection.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .clients import CLIENTS, Check, Client, Context
from .install import CACHE, ROOT, Installed, install_all

GATEWAY_KEY = "compat-gateway-key"
UPSTREAM_KEY = "compat-upstream-key"
PRICES = "{input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}"
GATEWAY_CONFIG = """\
# Written by compat/run.py: every model the CLIs ask for goes to the scripted upstream.
model_list:
  # Claude Code asks for its own default model names (claude-opus-…, claude-haiku-…): Anthropic format.
  - model_name: "claude-*"
    litellm_params: {{model: "anthropic/claude-*", api_base: "{upstream}", api_key: "{key}"}}
    model_info: {prices}
  # Everything else (compat-codex, compat-aider, compat-llm, …): OpenAI format, chat and Responses.
  - model_name: "*"
    litellm_params: {{model: "openai/*", api_base: "{upstream}/v1", api_key: "{key}"}}
    model_info: {prices}
"""
INSIDE_ENV = "COMPAT_INSIDE_NETNS"
INSTALL_ENV = "COMPAT_INSTALL_RESULTS"


@dataclass
class Row:
    cli: str
    check: str
    result: str  # PASS | FAIL | SKIPPED
    seconds: float = 0.0
    version: str = ""
    problems: list[str] = field(default_factory=list)  # the CLI's answer, round trip, exit code
    trace_problems: list[str] = field(default_factory=list)  # what GET /api/traces shows of its calls
    notes: list[str] = field(default_factory=list)

    def part(self, problems: list[str]) -> str:
        return "-" if self.result == "SKIPPED" else "FAIL" if problems else "PASS"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def http_json(url: str, key: str | None = None, timeout: float = 10) -> Any:
    request = urllib.request.Request(url, headers={"authorization": f"Bearer {key}"} if key else {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def wait_healthy(url: str, proc: subprocess.Popen[bytes], what: str, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before it was ready")
        try:
            http_json(url, timeout=2)
            return
        except (OSError, ValueError):
            time.sleep(0.2)
    raise RuntimeError(f"{what} was not ready after {timeout:.0f}s ({url})")


def start(argv: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    out = log.open("wb")
    return subprocess.Popen(argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)  # the group this runner started, by its id
            proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)


def run_cli(argv: list[str], env: dict[str, str], cwd: Path, timeout: float) -> tuple[int | None, str, str]:
    """Run one CLI with no stdin; on timeout kill its whole process group. Returns (code, stdout, stderr)."""
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        code = None
    return code, out.decode(errors="replace"), err.decode(errors="replace")


class Runner:
    def __init__(self, args: argparse.Namespace, installs: dict[str, Installed], netns_note: str) -> None:
        self.args = args
        self.installs = installs
        self.netns_note = netns_note
        self.run_dir = CACHE / "run"
        self.rows: list[Row] = []
        self.procs: list[subprocess.Popen[bytes]] = []

    # ------------------------------------------------------------------ services
    def start_services(self) -> Context:
        if self.run_dir.exists():
            shutil.rmtree(self.run_dir)
        self.run_dir.mkdir(parents=True)
        up_port, egress_port, gw_port = free_port(), free_port(), free_port()
        self.upstream = f"http://127.0.0.1:{up_port}"
        self.gateway = f"http://127.0.0.1:{gw_port}"
        config = self.run_dir / "gateway.yaml"
        config.write_text(GATEWAY_CONFIG.format(upstream=self.upstream, key=UPSTREAM_KEY, prices=PRICES))
        upstream = start(
            [
                sys.executable,
                "-m",
                "compat.scripted_upstream",
                "--port",
                str(up_port),
                "--key",
                UPSTREAM_KEY,
                "--dump",
                str(self.run_dir / "upstream.jsonl"),
                "--egress-port",
                str(egress_port),
            ],
            self.run_dir / "upstream.log",
        )
        self.procs.append(upstream)
        env = {**os.environ, "LLM_SCOPE_MASTER_KEY": GATEWAY_KEY}
        for name in [k for k in env if k.endswith("_API_KEY") or k.endswith("_API_BASE")]:
            env.pop(name)  # the gateway config names every credential it needs
        gateway = start(
            [
                sys.executable,
                "-m",
                "llm_scope",
                "serve",
                "--port",
                str(gw_port),
                "--config",
                str(config),
                "--data-dir",
                str(self.run_dir / "gateway-data"),
            ],
            self.run_dir / "gateway.log",
            env,
        )
        self.procs.append(gateway)
        wait_healthy(f"{self.upstream}/health", upstream, "scripted upstream")
        wait_healthy(f"{self.gateway}/health", gateway, "gateway")
        return Context(self.run_dir, self.gateway, GATEWAY_KEY, f"http://127.0.0.1:{egress_port}")

    def stop_services(self) -> None:
        for proc in reversed(self.procs):
            stop(proc)

    # ------------------------------------------------------------------ checks
    def run_client(self, ctx: Context, name: str) -> None:
        factory = CLIENTS[name]
        client = factory(ctx)
        installed = self.installs.get(client.needs, Installed(False, "not installed"))
        if not installed.ok:
            for check in client.checks:
                self.rows.append(Row(name, check.name, "SKIPPED", problems=[installed.reason]))
            return
        code, out, err = run_cli(client.version_argv, client.env, client.cwd, 60)
        version = (out.strip() or err.strip()).splitlines()[-1] if code == 0 and (out or err) else "?"
        for check in client.checks:
            row = self.run_check(client, check)
            row.version = version
            self.rows.append(row)

    def run_check(self, client: Client, check: Check) -> Row:
        row = Row(client.name, check.name, "PASS")
        logs = self.run_dir / client.name
        t0 = time.time()
        code, out, err = run_cli(check.argv, client.env, client.cwd, self.args.timeout)
        t1 = time.time() + 0.05
        row.seconds = t1 - t0
        (logs / f"{check.name}.stdout").write_text(out)
        (logs / f"{check.name}.stderr").write_text(err)
        where = f"(see .compat/run/{client.name}/{check.name}.stdout/.stderr)"
        if code is None:
            row.problems.append(f"timed out after {self.args.timeout:.0f}s {where}")
        elif code != 0:
            row.problems.append(f"exit code {code} {where}")
        if check.expect not in out:
            tail = " | ".join(out.strip().splitlines()[-3:])[-240:]
            row.problems.append(f"stdout lacks {check.expect!r}; last lines: {tail!r} {where}")
        if check.extra is not None:
            extra = check.extra()
            if extra:
                row.problems.append(extra)
        seen = [e for e in http_json(f"{self.upstream}/_compat/log") if t0 <= e["time"] <= t1]
        self.check_upstream(row, check, seen)
        self.check_traces(row, client, check, t0, t1, len(seen))
        attempts = [a for a in http_json(f"{self.upstream}/_compat/egress") if t0 <= a["time"] <= t1]
        if attempts:
            hosts = sorted({a["host"] for a in attempts})
            message = f"tried to reach the internet (refused): {', '.join(hosts)}"
            (row.problems if self.args.strict_egress else row.notes).append(message)
        row.result = "FAIL" if row.problems or row.trace_problems else "PASS"
        return row

    def check_upstream(self, row: Row, check: Check, seen: list[dict[str, Any]]) -> None:
        if not seen:
            row.problems.append("the upstream received no request")
            return
        if not all(e.get("auth_ok") for e in seen):
            row.problems.append("the gateway sent the upstream a wrong key")
        rules = [e.get("rule") for e in seen]
        row.notes.append(f"upstream calls: {len(seen)} ({', '.join(str(r) for r in rules)})")
        if check.roundtrip:
            first = next((i for i, r in enumerate(rules) if r in ("tool_call", "edit")), None)
            back = next((i for i, r in enumerate(rules) if r == "roundtrip"), None)
            if first is None:
                offered = sorted({t for e in seen for t in e.get("tools") or []})
                row.problems.append(f"no tool call was asked for (tools offered: {offered or 'none'})")
            elif back is None or back < first:
                row.problems.append("the tool result never came back to the upstream")
            else:
                call = seen[first].get("tool_call")
                row.notes.append(f"tool: {call['name']}({json.dumps(call['arguments'])})" if call else "tool: edit")

    def check_traces(self, row: Row, client: Client, check: Check, t0: float, t1: float, upstream_calls: int) -> None:
        listing = http_json(f"{self.gateway}/api/traces?since={t0}&until={t1}&limit=500", GATEWAY_KEY)
        traces = listing["data"]
        if len(traces) != upstream_calls:
            row.trace_problems.append(f"{len(traces)} traces for {upstream_calls} upstream calls")
        bad: list[str] = []
        for t in traces:
            what = f"trace {t['trace_id'][:8]} ({t['route']}, {t['requested_model']})"
            if t["route"] not in client.routes:
                bad.append(f"{what}: route {t['route']} not in {sorted(client.routes)}")
            if t["status_code"] != 200 or t["error_type"]:
                bad.append(f"{what}: status {t['status_code']} {t['error_type'] or ''}".rstrip())
            if not t["requested_model"] or not t["resolved_model"]:
                bad.append(f"{what}: model missing")
            if client.attributed and t["client"] != client.attributed:
                bad.append(f"{what}: attributed to client {t['client']!r}, not {client.attributed!r}")
            if t["route"] != "count_tokens":
                if not t["input_tokens"] or not t["output_tokens"]:
                    bad.append(f"{what}: tokens in={t['input_tokens']} out={t['output_tokens']}")
                if t["cost_total"] is None:
                    bad.append(f"{what}: no cost")
                if t["stream"] and t["ttft_ms"] is None:
                    bad.append(f"{what}: stream without time to first token")
        row.trace_problems += bad[:6] + ([f"… and {len(bad) - 6} more trace problems"] if len(bad) > 6 else [])
        if traces:
            newest = traces[0]
            detail = http_json(f"{self.gateway}/api/traces/{newest['trace_id']}", GATEWAY_KEY)
            if check.expect not in json.dumps(detail.get("output"), ensure_ascii=False):
                row.trace_problems.append(f"the last trace's output lacks {check.expect!r}")
            summary = sorted({f"{t['route']}:{t['requested_model']}" for t in traces})
            tokens = sum(t["total_tokens"] or 0 for t in traces)
            clients = sorted({str(t["client"]) for t in traces})
            sessions = len({t["session_id"] for t in traces if t["session_id"]})
            row.notes.append(f"traces: {len(traces)} {summary} tokens={tokens} client={clients} sessions={sessions}")

    # ------------------------------------------------------------------ report
    def report(self, started: float) -> int:
        widths = (12, 7, 8, 5, 7, 6, 22)
        head = ("CLI", "check", "result", "cli", "traces", "secs", "version")
        line = "  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))
        print("\n" + line + "\n" + "-" * len(line))
        for r in self.rows:
            cells = (r.cli, r.check, r.result, r.part(r.problems), r.part(r.trace_problems), f"{r.seconds:.1f}",
                     r.version[:22])  # fmt: skip
            print("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)))
            for p in r.problems + r.trace_problems:
                print(f"    ! {p}")
            if self.args.verbose or r.result != "PASS":
                for n in r.notes:
                    print(f"    · {n}")
        print(f"\nnetwork: {self.netns_note}")
        print(f"runtime: {time.time() - started:.1f}s; logs in .compat/run/")
        (self.run_dir / "results.json").write_text(json.dumps([asdict(r) for r in self.rows], indent=2))
        passed = sum(r.result == "PASS" for r in self.rows)
        failed = sum(r.result == "FAIL" for r in self.rows)
        skipped = sum(r.result == "SKIPPED" for r in self.rows)
        print(f"compat: {passed} passed, {failed} failed, {skipped} skipped")
        return 1 if failed or not passed or (skipped and self.args.require_all) else 0


def selected(args: argparse.Namespace) -> list[str]:
    names = [n.strip() for n in args.only.split(",")] if args.only else list(CLIENTS)
    unknown = [n for n in names if n not in CLIENTS]
    if unknown:
        raise SystemExit(f"unknown CLI(s): {', '.join(unknown)}; known: {', '.join(CLIENTS)}")
    return names


def run_inside(args: argparse.Namespace, installs: dict[str, Installed], netns_note: str) -> int:
    started = time.time()
    runner = Runner(args, installs, netns_note)
    try:
        ctx = runner.start_services()
        for name in selected(args):
            try:
                runner.run_client(ctx, name)
            except (OSError, urllib.error.URLError, ValueError, KeyError) as exc:
                runner.rows.append(Row(name, "setup", "FAIL", problems=[f"{type(exc).__name__}: {exc}"]))
    except RuntimeError as exc:
        print(f"compat: could not start the services: {exc} (logs in .compat/run/)", file=sys.stderr)
        runner.stop_services()
        return 1
    runner.stop_services()
    return runner.report(started)


def netns_works() -> bool:
    if not shutil.which("unshare") or not shutil.which("ip"):
        return False
    probe = subprocess.run(["unshare", "-n", "--", "ip", "link", "set", "lo", "up"], capture_output=True)
    return probe.returncode == 0


def main() -> int:
    parser = argparse.ArgumentParser(description="Run real CLIs against the gateway (make compat).")
    parser.add_argument("--only", default="", help="comma-separated subset of: " + ", ".join(CLIENTS))
    parser.add_argument("--timeout", type=float, default=180, help="seconds per CLI invocation")
    parser.add_argument("--no-netns", action="store_true", help="do not isolate the run in a loopback-only netns")
    parser.add_argument("--strict-egress", action="store_true", help="fail a CLI that tries to reach the internet")
    parser.add_argument("--require-all", action="store_true", help="treat a SKIPPED CLI (install failed) as a failure")
    parser.add_argument("--install-only", action="store_true")
    parser.add_argument("-v", "--verbose", action="store_true", help="print notes for passing checks too")
    args, _ = parser.parse_known_args()
    selected(args)
    if os.environ.get(INSIDE_ENV):
        raw = json.loads(os.environ.get(INSTALL_ENV) or "{}")
        installs = {k: Installed(**v) for k, v in raw.items()}
        return run_inside(args, installs, "isolated: loopback-only network namespace (unshare -n)")
    installs = install_all()
    if args.install_only:
        for tool, result in installs.items():
            print(f"{tool}: {'ok' if result.ok else 'FAILED: ' + result.reason}")
        return 0 if all(r.ok for r in installs.values()) else 1
    if not args.no_netns and netns_works():
        env = {**os.environ, INSIDE_ENV: "1", INSTALL_ENV: json.dumps({k: asdict(v) for k, v in installs.items()})}
        argv = [sys.executable, "-m", "compat.run", *sys.argv[1:]]
        script = 'ip link set lo up && exec "$@"'
        return subprocess.run(["unshare", "-n", "--", "sh", "-c", script, "sh", *argv], cwd=ROOT, env=env).returncode
    note = "NOT isolated (--no-netns)" if args.no_netns else "NOT isolated (unshare -n unavailable here)"
    return run_inside(args, installs, note + "; internet attempts are still caught by the egress recorder")


if __name__ == "__main__":
    sys.exit(main())
