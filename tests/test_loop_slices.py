"""Work a worker's event loop does for many calls at once goes in slices, so a request never waits out all of it.

Folding a quarter second of calls into the metrics, or packing a fifth of a second of records for the trace
helper, stalled the loop for about a millisecond at concurrency 1 (docs/scaling.md). These check that the
slices add up to exactly what doing it all at once gives, and that records are handed over as soon as a
slice's worth waits, without the tick.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

from llm_scope.metrics import Metrics
from llm_scope.tracing.handoff import SEND_AT, TraceHandoff
from llm_scope.tracing.helper_protocol import HelperOptions
from llm_scope.types import CallRecord, Usage


def call(i: int) -> CallRecord:
    return CallRecord(
        trace_id=f"{i:032x}",
        route="chat_completion",
        start_time=100.0,
        end_time=100.0 + i / 7,
        requested_model="m" if i % 3 else "n",
        resolved_model="m" if i % 3 else "n",
        provider="openai",
        status_code=200 if i % 5 else 502,
        upstream_latency=i / 9,
        completion_start_time=100.0 + i / 11 if i % 2 else None,
        usage=Usage(input=3 + i, output=2, total=5 + i, cache_read=i % 4),
    )


def samples(metrics: Metrics) -> list[bytes]:
    """Every line but the series' creation times, which differ by when each was made."""
    return [
        line for line in metrics.render().splitlines() if not line.split(b" ")[0].split(b"{")[0].endswith(b"_created")
    ]


def test_folding_in_slices_gives_exactly_what_folding_at_once_does() -> None:
    calls = [call(i) for i in range(23)]
    at_once, sliced = Metrics(), Metrics()
    for record in calls:
        at_once.observe_call(record)
        sliced.observe_call(record)
    assert at_once.fold() is False
    slices = 1
    while sliced.fold(5):
        slices += 1
    assert slices == 5  # 23 calls, 5 at a time
    assert samples(sliced) == samples(at_once)
    assert b'llm_scope_requests_total{error_type="",model="m"' in sliced.render()


async def _hand_over(db: Path) -> tuple[list[int], int]:
    options = HelperOptions(
        store_path=db, langfuse=None, secrets=(), trace_content=True, max_outbox=1000, retention_days=30
    )
    handoff = TraceHandoff(options, flush_interval=3600.0)  # the tick never comes: only a full slice is sent
    await handoff.start()
    unsent = []
    for i in range(SEND_AT):
        handoff.submit(call(i))
        unsent.append(handoff.unsent)
    await handoff.flush()
    with sqlite3.connect(db) as conn:
        stored = int(conn.execute("SELECT COUNT(*) FROM traces").fetchone()[0])
    await handoff.stop()
    return unsent, stored


def test_records_go_to_the_helper_once_a_slice_waits_not_only_at_the_tick(tmp_path: Path) -> None:
    unsent, stored = asyncio.run(_hand_over(tmp_path / "llm-scope.db"))
    assert unsent == [*range(1, SEND_AT), 0]
    assert stored == SEND_AT


async def _helper_priority(db: Path, nice: int) -> tuple[int, int]:
    options = HelperOptions(
        store_path=db, langfuse=None, secrets=(), trace_content=True, max_outbox=1000, retention_days=30, nice=nice
    )
    handoff = TraceHandoff(options)
    await handoff.start()
    handoff.submit(call(1))
    await handoff.flush()  # answered: the helper has read its options and set its priority
    pid = handoff.helper_pid
    assert pid is not None
    priority = os.getpriority(os.PRIO_PROCESS, pid)
    await handoff.stop()
    return priority, os.getpriority(os.PRIO_PROCESS, 0)


def test_the_helper_runs_below_the_workers_priority_by_the_nice_it_is_given(tmp_path: Path) -> None:
    helper, worker = asyncio.run(_helper_priority(tmp_path / "a.db", 7))
    assert helper == min(19, worker + 7)
    helper, worker = asyncio.run(_helper_priority(tmp_path / "b.db", 0))
    assert helper == worker
