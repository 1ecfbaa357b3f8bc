"""Crash and shutdown: the real `llm-scope serve` process, killed with SIGKILL or stopped with SIGTERM."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from collections import Counter
from pathlib import Path

import httpx

from tests.conftest import upstream_models
from tests.fakes.otlp_receiver import OtlpReceiver
from tests.fakes.upstream import FakeUpstream
from tests.gateway_server import spawn_gateway
from tests.tracing.conftest import PK, SK


def start_gateway(
    tmp_path: Path, upstream: FakeUpstream, receiver: OtlpReceiver
) -> tuple[subprocess.Popen[bytes], str]:
    env = {"LANGFUSE_PUBLIC_KEY": PK, "LANGFUSE_SECRET_KEY": SK, "LANGFUSE_HOST": receiver.url}
    return spawn_gateway(tmp_path, upstream_models(upstream), env=env)


def calls(url: str, n: int) -> list[str]:
    ids = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for i in range(n):
            r = client.post(
                "/v1/chat/completions",
                json={"model": "gpt-fake", "stream": i % 2 == 0, "messages": [{"role": "user", "content": f"n{i}"}]},
            )
            assert r.status_code == 200
            ids.append(r.headers["x-trace-id"])
    return ids


def stored_ids(tmp_path: Path) -> set[str]:
    with sqlite3.connect(tmp_path / "data" / "llm-scope.db") as db:
        return {row[0] for row in db.execute("SELECT trace_id FROM traces")}


def wait_delivered(receiver: OtlpReceiver, ids: list[str], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        missing = [i for i in ids if not receiver.spans_for_trace(i)]
        if not missing:
            return
        assert time.monotonic() < deadline, f"{len(missing)} of {len(ids)} traces never reached Langfuse"
        time.sleep(0.05)


def test_kill_9_while_langfuse_is_down_loses_nothing_older_than_a_second(
    tmp_path: Path, upstream: FakeUpstream, receiver: OtlpReceiver
) -> None:
    receiver.stop()
    proc, url = start_gateway(tmp_path, upstream, receiver)
    ids = calls(url, 20)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert stored_ids(tmp_path) >= set(ids)  # on disk, waiting in the outbox
    receiver.start()
    proc, url = start_gateway(tmp_path, upstream, receiver)
    try:
        wait_delivered(receiver, ids)
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    counts = Counter(s["span_id"] for s in receiver.spans())
    assert len(counts) == 20 and set(counts.values()) == {1}  # one span per call


def test_sigterm_drains_and_flushes(tmp_path: Path, upstream: FakeUpstream, receiver: OtlpReceiver) -> None:
    proc, url = start_gateway(tmp_path, upstream, receiver)
    ids = calls(url, 10)
    proc.send_signal(signal.SIGTERM)  # at once: nothing has had time to be flushed by the periodic writer
    assert proc.wait(timeout=15) in (0, -signal.SIGTERM)  # uvicorn re-raises SIGTERM after a clean shutdown
    assert stored_ids(tmp_path) >= set(ids)
    wait_delivered(receiver, ids, timeout=1)  # delivered during shutdown, not after
