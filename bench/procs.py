"""Processes the benchmark starts, and what it reads about them from /proc (CPU time, RSS).

CPU is utime+stime of a process and all its live descendants (uvicorn workers, LiteLLM's children), in
clock ticks (usually 10 ms); a cell runs long enough for thousands of ticks. RSS is summed over the
same tree.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()  # fields from 3 (state) on; comm may hold spaces


def cpu_list(spec: str) -> set[int]:
    """ "0", "1-3", "0,2": the CPUs a `--...-cores` option names."""
    cpus: set[int] = set()
    for part in spec.split(","):
        first, _, last = part.partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    return cpus


def is_trace_helper(pid: int) -> bool:
    try:
        return b"llm_scope.tracing.helper" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def pin_server(pid: int, cores: Sequence[int], helper_cores: Sequence[int] | None = None) -> dict[int, list[int]]:
    """Pin a server's process tree to `cores`, and llm-scope's trace helpers in it to `helper_cores`. Returns
    where each process went. A helper started later (a restart) inherits its worker's cores, not these."""
    placed: dict[int, list[int]] = {}
    for each in tree(pid):
        cpus = helper_cores if helper_cores and is_trace_helper(each) else cores
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(each, set(cpus))
            placed[each] = sorted(cpus)
    return placed


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields:
            children.setdefault(int(fields[1]), []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), ()):
            out.append(child)
            todo.append(child)
    return out


def tree(pid: int) -> list[int]:
    return [pid, *descendants(pid)]


def cpu_seconds(pids: Sequence[int]) -> float:
    ticks = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields:
            ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return ticks / CLK_TCK


def machine_busy_seconds() -> float:
    """CPU time the whole machine spent busy (all cores, every process), from /proc/stat."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def rss_bytes(pids: Sequence[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    return total


def hwm_bytes(pids: Sequence[int]) -> int:
    """Peak RSS (VmHWM) summed over the processes: each one's own high-water mark since it started."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) * 1024
    return total


def role_memory(root: int) -> dict[str, dict[str, float]]:
    """RSS now and its high-water mark, in MB, of the largest worker and the largest trace helper in a
    gateway's tree (with several workers, the per-process figure is what a limit applies to)."""
    out: dict[str, dict[str, float]] = {}
    for pid in tree(root):
        role = "helper" if is_trace_helper(pid) else "worker"
        rss, hwm = rss_bytes([pid]) / 2**20, hwm_bytes([pid]) / 2**20
        if not rss:
            continue  # gone (a uvicorn supervisor's short-lived child)
        now = out.setdefault(role, {"rss": 0.0, "hwm": 0.0})
        now["rss"], now["hwm"] = max(now["rss"], rss), max(now["hwm"], hwm)
    return out


def memory_line(memory: dict[str, dict[str, float]]) -> str:
    return ", ".join(
        f"{role} {m['rss']:.1f} MB (peak {m['hwm']:.1f})" for role, m in sorted(memory.items(), reverse=True)
    )


class RssSampler:
    """Samples the tree's RSS every `interval` seconds in a thread; `peak` is the highest sum seen."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid, self.interval = pid, interval
        self.peak = 0
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        pids = tree(self.pid)
        last_scan = time.monotonic()
        while not self._stop.is_set():
            if time.monotonic() - last_scan > 2:
                pids, last_scan = tree(self.pid), time.monotonic()
            rss = rss_bytes(pids)
            self.samples.append((time.monotonic(), rss))
            self.peak = max(self.peak, rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def http_get(port: int, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


class Service:
    """A server process: started in its own process group, logged to a file, stopped by its pid."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        port: int,
        ready_path: str,
        env: Mapping[str, str],
        cwd: Path,
        log: Path,
    ) -> None:
        self.name, self.argv, self.port, self.ready_path = name, list(argv), port, ready_path
        self.env, self.cwd, self.log_path = dict(env), cwd, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.cold_start_s: float | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 120.0) -> float:
        """Spawn and poll the ready path every 5 ms; returns seconds from spawn to the first 200."""
        log = self.log_path.open("ab")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            self.argv, env=self.env, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        while time.perf_counter() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode}; see {self.log_path}:\n{self.tail()}"
                )
            with contextlib.suppress(OSError, http.client.HTTPException):
                status, _ = http_get(self.port, self.ready_path, timeout=1.0)
                if status == 200:
                    self.cold_start_s = time.perf_counter() - t0
                    return self.cold_start_s
            time.sleep(0.005)
        self.stop()
        raise RuntimeError(f"{self.name} not ready on :{self.port}{self.ready_path} after {timeout:g}s:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # the group this service was started in, only
            self.proc.wait(5)
        # uvicorn workers and other children go with their parent; sweep the group if any stayed behind
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)


def settle(pid: int, *, window: float = 0.3, quiet_s: float = 0.01, max_wait: float = 3.0) -> None:
    """Wait until the tree has (nearly) stopped using CPU: deferred work (trace writes, export) done."""
    pids = tree(pid)
    deadline = time.monotonic() + max_wait
    last = cpu_seconds(pids)
    while time.monotonic() < deadline:
        time.sleep(window)
        now = cpu_seconds(pids)
        if now - last <= quiet_s:
            return
        last = now
