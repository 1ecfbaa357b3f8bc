"""The scaling benchmark runs end to end in a few seconds and accounts for every call (no timing assertions)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from bench.scale import Cores, parse_cpus

ROOT = Path(__file__).resolve().parents[2]


def test_core_lists_and_their_allocation() -> None:
    assert parse_cpus("0-3,6, 8-9") == [0, 1, 2, 3, 6, 8, 9]
    cores = Cores.allocate([min(os.sched_getaffinity(0))])
    assert cores.mock and cores.load  # on one core they share it; otherwise they keep off the gateway's
    if len(os.sched_getaffinity(0)) > 1:
        assert not set(cores.gateway) & set(cores.mock + cores.load)


@pytest.mark.timeout(120)
def test_one_worker_pinned_with_a_tiny_queue_spills_and_traces_every_call(tmp_path: Path) -> None:
    raw, table = tmp_path / "scale.json", tmp_path / "scale.md"
    gateway_core = str(min(os.sched_getaffinity(0)))
    proc = subprocess.run(
        [sys.executable, "-m", "bench.scale", "--workers", "1", "--cores", gateway_core, "--modes", "nonstream",
         "--duration", "1", "--warmup", "0.3", "--queue-size", "10", "--json", str(raw), "--out", str(table)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (row,) = json.loads(raw.read_text())["rows"]
    assert row["count"] > 0 and row["errors"] == 0
    assert row["traced"] == row["served"] >= row["count"]
    assert row["lost"] == 0 and row["spill_pending"] == 0
    assert row["spilled"] > 0  # a 10-record bound at hundreds of calls per second: the spill path ran
    assert "| 1 | non-stream |" in table.read_text()


@pytest.mark.timeout(120)
def test_the_session_cell_grows_conversations_and_traces_every_call(tmp_path: Path) -> None:
    raw = tmp_path / "session.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.session", "--kb", "40", "--sessions", "2", "--duration", "1",
         "--json", str(raw)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = json.loads(raw.read_text())
    assert out["calls"] > 0 and out["errors"] == 0
    assert 15 < out["mean_body_kb"] < 40  # from the ~15 KB first turn up to 40 KB
    assert out["traced"] == out["served"] and out["store_kb_per_call"] > 0
