"""The server-stack comparison runs end to end in seconds: every stack answers every call, whole answers and
streams, and llm-scope's row accounts for its trace helper (no timing assertions). granian is left out: it is
installed from the package registry on first use, and tests touch nothing beyond loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from bench.servers import summarize

ROOT = Path(__file__).resolve().parents[2]


def run_servers(tmp_path: Path, *args: str) -> dict[str, object]:
    raw = tmp_path / "servers.json"
    cores = sorted(os.sched_getaffinity(0))
    proc = subprocess.run(
        [sys.executable, "-m", "bench.servers", "--repeats", "1", "--duration", "0.5", "--warmup", "0.2",
         "--concurrency", "1,4", "--server-core", str(cores[0]), "--load-core", str(cores[-1]),
         "--json", str(raw), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data: dict[str, object] = json.loads(raw.read_text())
    return data


@pytest.mark.timeout(120)
def test_each_stack_answers_every_call_and_llm_scope_counts_its_helper(tmp_path: Path) -> None:
    data = run_servers(tmp_path, "--only", "uvicorn,protocol,llm-scope/uvicorn")
    rows = data["rows"]
    assert isinstance(rows, list)
    assert {(r["stack"], r["concurrency"]) for r in rows} == {
        (stack, c) for stack in ("uvicorn", "protocol", "llm-scope/uvicorn") for c in (1, 4)
    }
    for row in rows:
        assert row["count"] > 0 and row["errors"] == 0, row
        assert row["cpu_ms"] is not None and row["cpu_ms"] >= 0  # CPU comes in 10 ms ticks: a short cell may read 0
        assert (row["helper_ms"] is not None) == (row["stack"] == "llm-scope/uvicorn")
    assert [(r["stack"], r["runs"]) for r in summarize(rows)][:3] == [
        ("uvicorn", 1),
        ("protocol", 1),
        ("llm-scope/uvicorn", 1),
    ]


@pytest.mark.timeout(120)
def test_the_protocol_server_relays_streams_whole(tmp_path: Path) -> None:
    """The load generator counts a stream that ends without [DONE] as an error."""
    data = run_servers(tmp_path, "--only", "protocol", "--mode", "stream")
    rows = data["rows"]
    assert isinstance(rows, list) and len(rows) == 2
    assert all(r["count"] > 0 and r["errors"] == 0 for r in rows)
