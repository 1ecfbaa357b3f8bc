"""The trace helper process, with real processes and signals: it dies, it hangs, its gateway dies.

Whatever happens to the helper, every call is stored and reaches Langfuse exactly once; and a helper never
outlives its gateway.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from collections import Counter
from pathlib import Path

import httpx

from llm_scope.tracing.blobs import record_of
from llm_scope.tracing.store import Store
from tests.conftest import upstream_models
from tests.fakes.otlp_receiver import OtlpReceiver
from tests.fakes.upstream import FakeUpstream
from tests.gateway_server import GatewayServer, spawn_gateway
from tests.polling import wait_until
from tests.tracing.test_pipeline import chat, spans_of, traced_gateway

LONG = "owed, and long: " + "x = 1\n" * 2000


def helper_pid(gw: GatewayServer) -> int:
    pid = gw.app.state.pipeline.helper_pid
    assert pid is not None, "no trace helper running"
    return int(pid)


def stored_ids(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {row[0] for row in conn.execute("SELECT trace_id FROM traces")}


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as f:  # a zombie counts as gone: it has exited
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (ProcessLookupError, FileNotFoundError):  # reaped between the two looks: /proc answers ESRCH or ENOENT
        return True


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_killed_helper_is_replaced_and_gets_what_it_had_not_stored(
    tmp_path: Path, upstream: FakeUpstream, receiver: OtlpReceiver
) -> None:
    with traced_gateway(tmp_path, upstream, receiver) as gw:
        first = helper_pid(gw)
        before = [chat(gw, f"before {i}").headers["x-trace-id"] for i in range(3)]
        for trace_id in before:
            spans_of(receiver, trace_id)
        # Frozen, the helper takes nothing off its pipe: these calls are sent to it and never committed...
        os.kill(first, signal.SIGSTOP)
        during = [chat(gw, f"during {i}", stream=i % 2 == 0).headers["x-trace-id"] for i in range(4)]
        wait_until(lambda: gw.app.state.pipeline.unsent == 0, "calls handed to the frozen helper's pipe")
        assert gw.app.state.pipeline.queue_depth == len(during)  # held in memory until stored
        # ... and then it dies.
        os.kill(first, signal.SIGKILL)
        after = [chat(gw, f"after {i}").headers["x-trace-id"] for i in range(2)]
        for trace_id in during + after:
            spans_of(receiver, trace_id, timeout=20)
        assert helper_pid(gw) != first
        with gw.client() as client:
            listed = client.get("/api/traces", params={"limit": 100}).json()
            metrics = client.get("/metrics").text
        assert gw.app.state.pipeline.queue_depth == 0
        assert gw.app.state.pipeline.stats.lost == 0
    assert "llm_scope_trace_helper_restarts_total 1.0" in metrics
    rows = listed["data"] if isinstance(listed, dict) else listed
    assert {row["trace_id"] for row in rows} == set(before + during + after)
    counts = Counter(s["span_id"] for s in receiver.spans())
    assert all(c == 1 for c in counts.values()), "a span was delivered twice"
    assert len(counts) == len(before + during + after)  # one span per call


def test_records_a_dead_helper_owed_are_stored_at_shutdown(
    tmp_path: Path, upstream: FakeUpstream, receiver: OtlpReceiver
) -> None:
    gw = traced_gateway(tmp_path, upstream, receiver).start()
    try:
        pid = helper_pid(gw)
        os.kill(pid, signal.SIGSTOP)
        ids = [chat(gw, f"owed {i}").headers["x-trace-id"] for i in range(3)]
        big = chat(gw, LONG).headers["x-trace-id"]  # a body large enough to be handed over as its bytes
        wait_until(lambda: gw.app.state.pipeline.unsent == 0, "calls sent to the frozen helper, not stored")
        os.kill(pid, signal.SIGKILL)
        assert wait_gone(pid, 5)
    finally:
        gw.stop()  # at once: before a new helper starts, so the gateway must store them itself
    assert {*ids, big} <= stored_ids(tmp_path / "data" / "llm-scope.db")
    store = Store(tmp_path / "data" / "llm-scope.db")
    try:
        [row] = store.query("SELECT record, input_refs FROM traces WHERE trace_id = ?", [big])
        assert record_of(store, row)["input"] == [{"role": "user", "content": LONG}]  # read from the bytes
    finally:
        store.close()


def test_the_helper_leaves_with_its_gateway_after_storing_what_it_was_given(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    proc, url = spawn_gateway(tmp_path, upstream_models(upstream))
    try:
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        assert len(children) == 1, children
        helper = int(children[0])
        ids = []
        for i in range(5):
            r = httpx.post(
                url + "/v1/chat/completions",
                json={"model": "gpt-fake", "messages": [{"role": "user", "content": f"kill {i}"}]},
            )
            ids.append(r.headers["x-trace-id"])
        # Handed over and stored: what is asked of the helper here is that it then leaves with its gateway.
        wait_until(lambda: set(ids) <= stored_ids(tmp_path / "data" / "llm-scope.db"), "calls stored")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert wait_gone(helper, 10), "the trace helper outlived its gateway"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
    assert set(ids) <= stored_ids(tmp_path / "data" / "llm-scope.db")


def test_a_stuck_helper_neither_fails_calls_nor_loses_them(
    tmp_path: Path, upstream: FakeUpstream, receiver: OtlpReceiver
) -> None:
    with traced_gateway(tmp_path, upstream, receiver) as gw:
        pid = helper_pid(gw)
        os.kill(pid, signal.SIGSTOP)  # alive, taking nothing off its pipe
        try:
            responses = [chat(gw, f"stuck {i}", stream=i % 3 == 0) for i in range(30)]
            assert [r.status_code for r in responses] == [200] * 30
            wait_until(lambda: gw.app.state.pipeline.unsent == 0, "calls handed to the stuck helper's pipe")
            assert gw.app.state.pipeline.queue_depth == 30  # in memory, bounded by LLM_SCOPE_QUEUE_SIZE
        finally:
            os.kill(pid, signal.SIGCONT)
        ids = [r.headers["x-trace-id"] for r in responses]
        for trace_id in ids:
            spans_of(receiver, trace_id, timeout=20)
        with gw.client() as client:
            client.get("/api/traces")  # waits until the helper has committed everything
        assert gw.app.state.pipeline.queue_depth == 0 and gw.app.state.pipeline.stats.lost == 0
        assert helper_pid(gw) == pid  # the same helper: slow is not dead
    assert set(ids) <= stored_ids(tmp_path / "data" / "llm-scope.db")


def test_past_the_queue_bound_records_wait_on_disk_and_are_all_stored(
    tmp_path: Path, upstream: FakeUpstream, receiver: OtlpReceiver
) -> None:
    spill_dir = tmp_path / "data" / "trace-spill"
    with traced_gateway(tmp_path, upstream, receiver, queue_size=5) as gw:
        pipeline = gw.app.state.pipeline
        pid = helper_pid(gw)
        os.kill(pid, signal.SIGSTOP)
        try:
            responses = [chat(gw, f"over {i}", stream=i % 4 == 0) for i in range(30)]
            assert [r.status_code for r in responses] == [200] * 30
            time.sleep(0.5)  # past the send interval: what the helper has no room for is on disk by now
            held, spilled = pipeline.queue_depth, pipeline.spill.pending
            assert held + spilled == 30 and spilled >= 20 and pipeline.stats.lost == 0
            assert sum(f.stat().st_size for f in spill_dir.glob("*.spill")) > 0
        finally:
            os.kill(pid, signal.SIGCONT)
        ids = [r.headers["x-trace-id"] for r in responses]
        for trace_id in ids:
            spans_of(receiver, trace_id, timeout=20)
        with gw.client() as client:
            client.get("/api/traces")  # waits until the helper has committed everything
            gw.app.state.sync_metrics()
            metrics = client.get("/metrics").text
        assert pipeline.queue_depth == 0 and pipeline.spill.pending == 0 and helper_pid(gw) == pid
    assert set(ids) <= stored_ids(tmp_path / "data" / "llm-scope.db")
    assert f"llm_scope_trace_records_spilled_total {float(spilled)}" in metrics
    assert "llm_scope_trace_records_lost_total 0.0" in metrics and "llm_scope_trace_spill_pending 0.0" in metrics
    assert not list(spill_dir.glob("*.spill")), "a drained spill file outlived its gateway"


def test_backpressure_refuses_calls_while_the_helper_is_behind_and_loses_none(
    tmp_path: Path, upstream: FakeUpstream, receiver: OtlpReceiver
) -> None:
    with traced_gateway(tmp_path, upstream, receiver, queue_size=5, trace_overflow="backpressure") as gw:
        pid = helper_pid(gw)
        os.kill(pid, signal.SIGSTOP)
        try:
            served = [chat(gw, f"bp {i}") for i in range(5)]
            refused = chat(gw, "one too many")
            with gw.client() as client:
                refused_messages = client.post(
                    "/v1/messages",
                    json={"model": "gpt-fake", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]},
                )
        finally:
            os.kill(pid, signal.SIGCONT)
        assert [r.status_code for r in served] == [200] * 5
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert refused.json()["error"]["code"] == "overloaded"
        assert refused_messages.status_code == 503 and refused_messages.headers["retry-after"] == "1"
        assert refused_messages.json()["type"] == "error"  # Anthropic's shape on /v1/messages
        assert refused_messages.json()["error"]["type"] == "overloaded_error"
        with gw.client() as client:
            client.get("/api/traces")  # waits until the helper has committed everything
        assert chat(gw, "caught up").status_code == 200
        pipeline = gw.app.state.pipeline
        assert pipeline.stats.lost == 0 and pipeline.spill.spilled == 0
    ids = [r.headers["x-trace-id"] for r in served]
    assert set(ids) <= stored_ids(tmp_path / "data" / "llm-scope.db")


def test_past_the_bound_in_bytes_big_calls_wait_on_disk_and_are_all_stored(
    tmp_path: Path, upstream: FakeUpstream, receiver: OtlpReceiver
) -> None:
    """Coding agents' calls are big: a worker holds at most LLM_SCOPE_QUEUE_MB of them, however few they are."""
    with traced_gateway(tmp_path, upstream, receiver, queue_mb=1) as gw:
        pipeline = gw.app.state.pipeline
        pid = helper_pid(gw)
        os.kill(pid, signal.SIGSTOP)
        try:
            responses = [chat(gw, f"big {i} " + "y" * 300_000) for i in range(8)]  # ~2.4 MB, 8 of 10,000 records
            assert [r.status_code for r in responses] == [200] * 8
            wait_until(
                lambda: pipeline.unsent == 0 and pipeline.queue_depth + pipeline.spill.pending == 8,
                "the big calls' records handed over or spilled",
            )
            held, spilled = pipeline.queue_depth, pipeline.spill.pending
            assert held + spilled == 8 and 0 < held < 8 and spilled > 0 and pipeline.stats.lost == 0
        finally:
            os.kill(pid, signal.SIGCONT)
        for response in responses:
            spans_of(receiver, response.headers["x-trace-id"], timeout=20)
        with gw.client() as client:
            client.get("/api/traces")  # waits until the helper has committed everything
        assert pipeline.queue_depth == 0 and pipeline.spill.pending == 0 and pipeline.stats.lost == 0
    assert {r.headers["x-trace-id"] for r in responses} <= stored_ids(tmp_path / "data" / "llm-scope.db")
