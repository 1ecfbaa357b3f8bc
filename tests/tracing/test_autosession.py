"""Fallback sessions and client re-sends, assigned as calls are stored: in runs of one key and client with no
idle gap over IDLE_GAP, the same with two helpers writing one SQLite file, and what the stored rows, the read
API and the export carry afterwards."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from llm_scope.accounting.cost import prices_resolver
from llm_scope.tracing import insight, queries
from llm_scope.tracing.autosession import DERIVED_PREFIX, IDLE_GAP, SessionRuns
from llm_scope.tracing.pipeline import TracePipeline
from llm_scope.tracing.queries import TraceFilter
from llm_scope.tracing.store import MIGRATIONS, Store
from llm_scope.types import CallRecord, Usage

T0 = 1_760_000_000.0


def call(n: int, at: float, **fields: Any) -> CallRecord:
    values: dict[str, Any] = {
        "trace_id": f"{n:032x}",
        "route": "chat_completion",
        "start_time": at,
        "end_time": at + 1,
        "client": "cline",
        "key_id": "k1",
        "input": [{"role": "user", "content": f"turn {n}"}],
        "output": {"role": "assistant", "content": "ok"},
        "usage": Usage(input=10, output=2, total=12),
    }
    values.update(fields)
    return CallRecord(**values)


def stored(store: Store, column: str = "session_id") -> dict[str, Any]:
    rows = store.query(f"SELECT trace_id, {column} AS v FROM traces ORDER BY start_time")
    return {row["trace_id"]: row["v"] for row in rows}


def opened(path: Path) -> Store:
    store = Store(path)
    store.prepare = SessionRuns().assign
    return store


def test_runs_of_one_key_and_tool_split_at_the_idle_gap(tmp_path: Path) -> None:
    store = opened(tmp_path / "s.db")
    first = [call(1, T0), call(2, T0 + 60), call(3, T0 + 60 + IDLE_GAP + 1)]
    others = [call(4, T0 + 30, client="aider"), call(5, T0 + 40, key_id=None, user_id="u9"), call(6, T0, client=None)]
    named = call(7, T0 + 50, session_id="tool-sent")
    store.write([first[1], *others, named, first[0]], outbox=False, max_outbox=10)  # out of order in a batch
    store.write([first[2]], outbox=False, max_outbox=10)
    ids = stored(store)
    auto = DERIVED_PREFIX + first[0].trace_id
    assert [ids[r.trace_id] for r in first] == [auto, auto, DERIVED_PREFIX + first[2].trace_id]
    assert ids[others[0].trace_id] == DERIVED_PREFIX + others[0].trace_id  # another tool: its own session
    assert ids[others[1].trace_id] == DERIVED_PREFIX + others[1].trace_id  # no key: grouped by user
    assert ids[others[2].trace_id] is None  # no client known: nothing to group by
    assert ids[named.trace_id] == "tool-sent"
    derived = stored(store, "session_derived")
    assert derived[first[0].trace_id] == 1 and derived[named.trace_id] == 0
    store.close()


def test_two_helpers_writing_one_store_continue_the_same_run(tmp_path: Path) -> None:
    a, b = opened(tmp_path / "shared.db"), opened(tmp_path / "shared.db")
    a.write([call(1, T0)], outbox=False, max_outbox=10)
    b.write([call(2, T0 + 100)], outbox=False, max_outbox=10)  # b never saw the run: found in the store
    a.write([call(3, T0 + 100 + IDLE_GAP - 1)], outbox=False, max_outbox=10)  # a's memory says ended; b continued
    assert set(stored(a).values()) == {DERIVED_PREFIX + call(1, T0).trace_id}
    a.close()
    b.close()


def test_a_client_resend_of_a_failed_request_is_marked(tmp_path: Path) -> None:
    store = opened(tmp_path / "s.db")
    same = [{"role": "user", "content": "fix it"}]
    failed = call(1, T0, session_id="s", input=same, status_code=529, error_type="overloaded_error")
    again = call(2, T0 + 5, session_id="s", input=same)
    next_turn = call(3, T0 + 9, session_id="s", input=[*same, {"role": "assistant", "content": "done"}])
    repeat_of_ok = call(4, T0 + 12, session_id="s", input=next_turn.input)
    for record in (failed, again, next_turn, repeat_of_ok):
        record.request_digest = f"d{len(record.input)}"
    store.write([failed], outbox=False, max_outbox=10)
    store.write([again, next_turn, repeat_of_ok], outbox=False, max_outbox=10)
    assert list(stored(store, "resent").values()) == [0, 1, 0, 0]  # only after a failure
    store.close()


@pytest.mark.parametrize("trace_content", [True, False])
def test_the_helper_counts_tools_and_assigns_sessions_with_content_off(tmp_path: Path, trace_content: bool) -> None:
    asyncio.run(_helper_counts(tmp_path, trace_content))


async def _helper_counts(tmp_path: Path, trace_content: bool) -> None:
    pipeline = TracePipeline(
        tmp_path / "p.db", None, prices_for=prices_resolver({}), secrets=[], trace_content=trace_content
    )
    await pipeline.start()
    answer = {
        "role": "assistant",
        "content": [{"type": "tool_use", "name": "Task"}, {"type": "tool_use", "name": "Read"}],
    }
    retried = call(2, T0 + 1, output=answer, metadata={"gateway_attempts": 3}, subagent="agent")
    for record in (call(1, T0, output=answer), retried):
        pipeline.submit(record)
    await pipeline.flush()
    found = insight.list_sessions(pipeline.store, TraceFilter())
    (session,) = found["data"]
    assert session["session_id"] == DERIVED_PREFIX + call(1, T0).trace_id and session["derived"] is True
    assert session["tool_calls"] == {"Read": 2, "Task": 2} and session["tool_call_count"] == 4
    assert (session["subagent_calls"], session["gateway_retries"], session["retries"]) == (1, 2, 2)
    detail = insight.get_session(pipeline.store, session["session_id"])
    assert detail is not None and [t["tool_calls"] for t in detail["turns"]] == [{"Task": 1, "Read": 1}] * 2
    assert [t["retries"] for t in detail["turns"]] == [0, 2] and detail["turns"][1]["subagent"] == "agent"
    stored = queries.get_trace(pipeline.store, retried.trace_id)
    assert stored is not None and (stored["input"] is None) is not trace_content  # content dropped, facts kept
    await pipeline.stop()


def test_a_store_from_before_the_facts_migrates_and_reads_as_unknown(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as old:  # the schema as the previous version left it
        for number, script in enumerate(MIGRATIONS[:5], start=1):
            old.executescript(script)
            old.execute(f"PRAGMA user_version={number}")
        old.execute(
            "INSERT INTO traces (trace_id, start_time, end_time, client, session_id, record) VALUES (?, ?, ?, ?, ?, ?)",
            ("a" * 32, T0, T0 + 1, "codex", "s-old", "{}"),
        )
    store = opened(path)
    store.write([call(1, T0 + 5, session_id="s-old", tool_calls={"shell": 1})], outbox=False, max_outbox=10)
    (session,) = insight.list_sessions(store, TraceFilter())["data"]
    assert (session["calls"], session["tool_calls"], session["retries"], session["derived"]) == (
        2,
        {"shell": 1},
        0,
        False,
    )
    store.close()
