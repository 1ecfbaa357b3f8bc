"""The benchmark runs end to end in its smoke mode and writes its table (no timing assertions)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(90)
def test_quick_benchmark_writes_its_table(tmp_path: Path) -> None:
    out, png, raw = tmp_path / "benchmarks.md", tmp_path / "benchmark.png", tmp_path / "results.json"
    cpus = sorted(os.sched_getaffinity(0))  # the worker on the first, its trace helper on the last
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--no-litellm", "--out", str(out), "--png", str(png),
         "--json", str(raw), "--gateway-cores", str(cpus[0]), "--helper-cores", str(cpus[-1])],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=80,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = out.read_text()
    assert "| mode | target | conc. | req/s |" in text
    assert "| non-stream | llm-scope | 1 |" in text
    assert "| stream | llm-scope | 16 |" in text
    assert "## Budget (issue 6)" in text
    assert "Budget (issue 6)" in proc.stdout
    data = json.loads(raw.read_text())
    targets = {c["target"] for c in data["cells"]}
    assert targets == {"direct", "passthrough", "llm-scope"}
    assert all(c["count"] > 0 for c in data["cells"])
    # Everything on: the local store holds a trace for every call llm-scope answered.
    (tracing,) = data["tracing"]
    assert tracing["stored"] == tracing["answered"] > 0
    # Pinned as asked, and the worker's and its helper's memory measured apart.
    starts = {s["target"]: s for s in data["starts"]}
    assert starts["llm-scope"]["pinned"] == {"worker": [cpus[0]], "helper": [cpus[-1]]}
    assert starts["passthrough"]["pinned"] == {"worker": [cpus[0]]}
    assert set(starts["llm-scope"]["idle_memory"]) == set(starts["llm-scope"]["after_memory"]) == {"worker", "helper"}
    assert any(note.startswith("Pinned: ") for note in data["notes"])
