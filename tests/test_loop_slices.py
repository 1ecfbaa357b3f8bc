"""The tail at concurrency 1: the metrics fold runs in slices, and the trace helper can run below the workers.

Folding a quarter second of calls into the metrics at once stalled the loop for about a millisecond at c1
(docs/scaling.md). These check that the slices add up to exactly what folding at once gives, and that the
helper takes the priority it is given (LLM_SCOPE_HELPER_NICE).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

import pytest
from pydantic import ValidationError

from llm_scope.metrics import Metrics
from llm_scope.model_config import parse_config
from llm_scope.parts import build_pipeline
from llm_scope.settings import load_settings
from llm_scope.tracing.handoff import TraceHandoff
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


def test_a_scrape_between_slices_sees_every_call_folded_so_far_and_queued() -> None:
    """The slices' sums wait to be written until the queue is empty; a scrape in between must not miss them."""
    calls = [call(i) for i in range(23)]
    at_once, sliced = Metrics(), Metrics()
    for record in calls:
        at_once.observe_call(record)
        sliced.observe_call(record)
    at_once.fold()
    assert sliced.fold(5) and sliced.fold(5)  # 10 folded, not written yet; 13 queued
    assert samples(sliced) == samples(at_once)  # render folds the rest and writes it all
    assert sliced.fold(5) is False
    assert samples(sliced) == samples(at_once)  # and nothing twice


async def _helper_priority(db: Path, nice: int, idle: bool = False) -> tuple[int, int, int]:
    options = HelperOptions(
        store_path=db,
        langfuse=None,
        secrets=(),
        trace_content=True,
        max_outbox=1000,
        retention_days=30,
        nice=nice,
        idle=idle,
    )
    handoff = TraceHandoff(options)
    await handoff.start()
    handoff.submit(call(1))
    await handoff.flush()  # answered: the helper has read its options and set its priority
    pid = handoff.helper_pid
    assert pid is not None
    priority, policy = os.getpriority(os.PRIO_PROCESS, pid), os.sched_getscheduler(pid)
    await handoff.stop()
    return priority, os.getpriority(os.PRIO_PROCESS, 0), policy


def test_the_helper_runs_below_the_workers_priority_by_the_nice_it_is_given(tmp_path: Path) -> None:
    helper, worker, policy = asyncio.run(_helper_priority(tmp_path / "a.db", 7))
    assert helper == min(19, worker + 7)
    assert policy == os.SCHED_OTHER
    helper, worker, policy = asyncio.run(_helper_priority(tmp_path / "b.db", 0))
    assert helper == worker
    assert policy == os.SCHED_OTHER


def test_the_helper_runs_under_sched_idle_when_asked_and_still_stores_every_call(tmp_path: Path) -> None:
    """LLM_SCOPE_HELPER_SCHED=idle: any normal task's wake-up preempts the helper (the c1 tail)."""
    helper, worker, policy = asyncio.run(_helper_priority(tmp_path / "c.db", 0, idle=True))
    assert policy == os.SCHED_IDLE
    assert helper == worker
    stored = sqlite3.connect(tmp_path / "c.db").execute("SELECT count(*) FROM traces").fetchone()[0]
    assert stored == 1


def test_the_helper_sched_setting_takes_normal_or_idle_only_and_reaches_the_helper(tmp_path: Path) -> None:
    config = parse_config({"model_list": []}, {}, source="test")
    for value, idle in (("normal", False), ("idle", True)):
        settings = load_settings({"LLM_SCOPE_HELPER_SCHED": value, "LLM_SCOPE_DATA_DIR": str(tmp_path)}, env_file=None)
        assert build_pipeline(settings, config, Metrics()).options.idle is idle
    assert load_settings({}, env_file=None).helper_sched == "normal"
    with pytest.raises(ValidationError):
        load_settings({"LLM_SCOPE_HELPER_SCHED": "realtime"}, env_file=None)
