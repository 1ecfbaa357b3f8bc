"""What the benchmarks read off a running llm-scope: its trace-health metrics, and what its local store holds."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


WATCHED_METRICS = {
    "llm_scope_trace_records_lost_total": "lost",
    "llm_scope_trace_queue_depth": "queue",
    "llm_scope_trace_outbox_backlog": "backlog",
}


def scrape_metrics(*ports_and_key: Any) -> dict[str, Any]:
    """GET /metrics (main port, then the metrics port); counts series and picks out the trace-health ones."""
    import http.client

    *ports, key = ports_and_key
    for port in ports:
        if not port:
            continue
        with contextlib.suppress(OSError, http.client.HTTPException):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
            conn.request("GET", "/metrics", headers={"Authorization": f"Bearer {key}"})
            resp = conn.getresponse()
            body = resp.read()
            conn.close()
            if resp.status == 200 and body:
                lines = [ln for ln in body.decode(errors="replace").splitlines() if ln and ln[0] != "#"]
                out: dict[str, Any] = {"port": port, "status": 200, "series": len(lines)}
                for line in lines:
                    name, _, value = line.partition(" ")
                    key_name = WATCHED_METRICS.get(name.split("{")[0])
                    with contextlib.suppress(ValueError):
                        if key_name:
                            out[key_name] = out.get(key_name, 0) + float(value.split()[0])
                return out
    return {"status": None}


def stored_traces(db: Path) -> int | None:
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM traces").fetchone()[0])
    except sqlite3.Error:
        return None


def outbox_rows(db: Path) -> int | None:
    """Rows in llm-scope's export outbox: traces stored but not yet acknowledged by Langfuse."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=2)) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
    except sqlite3.Error:
        return None


def machine(litellm_version: str | None, loadavg_start: str) -> dict[str, Any]:
    """What a report needs to say about where it ran: numbers from another CPU or Python do not compare."""
    import os
    import platform
    import subprocess
    import time

    from bench.targets import project_python, version_of

    cpu = cpu_model() or "?"
    mem = "?"
    with contextlib.suppress(OSError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.0f} GiB"
    py = project_python()
    pyver = subprocess.run([py, "-c", "import sys; print(sys.version.split()[0])"], capture_output=True, text=True)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory": mem,
        "kernel": platform.release(),
        "python": pyver.stdout.strip(),
        "llm_scope": version_of("llm-scope", py),
        "uvicorn": version_of("uvicorn", py),
        "litellm_proxy": litellm_version,
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "loadavg_start": loadavg_start,
        "loadavg_end": loadavg(),
    }


def cpu_model() -> str:
    """The CPU's model name ("" where /proc/cpuinfo does not say)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return ""
