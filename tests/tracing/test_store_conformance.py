"""One suite, two stores: the SQLite store and the PostgreSQL one answer every read the same way.

Each test runs against both (`any_store`), with values written in and the answers the read API, the dashboard
and budgets rely on checked exactly, including that a batch written twice changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llm_scope.tracing import insight, queries, stats
from llm_scope.tracing.pgstore import PostgresStore
from llm_scope.tracing.queries import TraceFilter
from llm_scope.tracing.records import summary_row
from llm_scope.tracing.storage import TraceStore
from llm_scope.tracing.store import Store
from llm_scope.types import CallRecord, Cost, Usage
from tests.postgres import PostgresCluster

DAY = 1_749_988_800.0  # 2025-06-15 12:00 UTC


@pytest.fixture(params=["sqlite", "postgres"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TraceStore]:
    store: TraceStore
    if request.param == "sqlite":
        store = Store(tmp_path / "store.db")
    else:
        cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
        store = PostgresStore(cluster.new_database())
    yield store
    store.close()


def record(n: int, *, at: float = DAY, **fields: Any) -> CallRecord:
    values: dict[str, Any] = {
        "trace_id": f"{n:032x}",
        "route": "chat_completion",
        "start_time": at + n,
        "end_time": at + n + 0.25 + n / 100,
        "requested_model": "gpt-4o-mini",
        "resolved_model": "gpt-4o-mini",
        "provider": "openai",
        "input": [{"role": "user", "content": f"hello {n} é ☕"}],
        "output": {"role": "assistant", "content": "hi"},
        "usage": Usage(input=10, output=5, total=15),
        "cost": Cost(input=0.001, output=0.002, total=0.003),
    }
    values.update(fields)
    return CallRecord(**values)


def batch() -> list[CallRecord]:
    return [
        record(1, user_id="ann", session_id="s1", key_id="k1"),
        record(2, user_id="ann", session_id="s1", key_id="k1", stream=True, completion_start_time=DAY + 2.1),
        record(3, user_id="bob", session_id="s2", resolved_model="claude", requested_model="claude"),
        record(4, user_id="bob", status_code=502, error_type="upstream_error", output=None, cost=None),
        record(5, at=DAY + 86400, user_id="cy", key_id="k2", metadata={"tags": ["x"]}),
    ]


def ids(page: dict[str, Any]) -> list[str]:
    return [row["trace_id"][-1] for row in page["data"]]


def test_writes_read_back_as_written(any_store: TraceStore) -> None:
    records = batch()
    any_store.write(records, outbox=False, max_outbox=100)
    page = queries.list_traces(any_store, TraceFilter(limit=10))
    assert page["total"] == 5 and ids(page) == ["5", "4", "3", "2", "1"]
    expected = {r.trace_id: summary_row(r) for r in records}
    for row in page["data"]:
        assert row == pytest.approx(expected[row["trace_id"]])
    found = queries.get_trace(any_store, records[1].trace_id)
    assert found is not None
    assert found["input"] == [{"role": "user", "content": "hello 2 é ☕"}]
    assert found["usage"]["total"] == 15 and found["cost"]["total"] == pytest.approx(0.003)
    assert found["stream"] == 1 and found["ttft_ms"] == pytest.approx(100.0)
    assert queries.get_trace(any_store, "f" * 32) is None


def test_a_batch_written_again_changes_nothing(any_store: TraceStore) -> None:
    any_store.write(batch(), outbox=False, max_outbox=100)
    before = (queries.usage(any_store, TraceFilter()), any_store.spend_by_key(DAY - 12 * 3600))
    any_store.write(batch(), outbox=False, max_outbox=100)
    any_store.write(batch()[:2], outbox=False, max_outbox=100)
    assert queries.list_traces(any_store, TraceFilter())["total"] == 5
    assert (queries.usage(any_store, TraceFilter()), any_store.spend_by_key(DAY - 12 * 3600)) == before


def test_filters_and_paging(any_store: TraceStore) -> None:
    any_store.write(batch(), outbox=False, max_outbox=100)
    cases = {
        TraceFilter(user="ann"): ["2", "1"],
        TraceFilter(session="s1"): ["2", "1"],
        TraceFilter(model="claude"): ["3"],
        TraceFilter(status="error"): ["4"],
        TraceFilter(status="ok"): ["5", "3", "2", "1"],
        TraceFilter(status="502"): ["4"],
        TraceFilter(since=DAY + 2, until=DAY + 4): ["3", "2"],
        TraceFilter(limit=2, offset=1): ["4", "3"],
    }
    for f, expected in cases.items():
        assert ids(queries.list_traces(any_store, f)) == expected, f


def test_sessions_and_usage(any_store: TraceStore) -> None:
    any_store.write(batch(), outbox=False, max_outbox=100)
    sessions = queries.list_sessions(any_store, TraceFilter())["data"]
    by_id = {s["session_id"]: s for s in sessions}
    assert set(by_id) == {"s1", "s2"}
    assert by_id["s1"]["calls"] == 2 and by_id["s1"]["users"] == "ann" and by_id["s1"]["errors"] == 0
    assert by_id["s1"]["total_tokens"] == 30 and by_id["s1"]["cost_total"] == pytest.approx(0.006)
    usage = queries.usage(any_store, TraceFilter())
    assert usage["total"]["calls"] == 5 and usage["total"]["total_tokens"] == 75
    assert usage["total"]["cost_total"] == pytest.approx(0.012)
    assert {row["day"]: row["calls"] for row in usage["by_day"]} == {"2025-06-15": 4, "2025-06-16": 1}
    assert {row["user"]: row["calls"] for row in usage["by_user"]} == {"ann": 2, "bob": 2, "cy": 1}
    assert {row["model"]: row["calls"] for row in usage["by_model"]} == {"gpt-4o-mini": 4, "claude": 1}
    assert [(r["day"], r["model"], r["calls"]) for r in usage["by_day_model"]] == [
        ("2025-06-15", "claude", 1),
        ("2025-06-15", "gpt-4o-mini", 3),
        ("2025-06-16", "gpt-4o-mini", 1),
    ]


def test_dashboard_stats(any_store: TraceStore) -> None:
    any_store.write(batch(), outbox=False, max_outbox=100)
    days = stats.dashboard_stats(any_store, TraceFilter(), "day")
    first = days["latency"][0]
    assert first["bucket"] == "2025-06-15" and first["calls"] == 3  # the failed call is left out
    assert first["duration_p50_ms"] == pytest.approx(270.0) and first["duration_p95_ms"] == pytest.approx(280.0)
    assert first["ttft_p50_ms"] == pytest.approx(100.0)
    hours = stats.dashboard_stats(any_store, TraceFilter(), "hour")
    assert [b["bucket"] for b in hours["latency"]] == ["2025-06-15T12:00", "2025-06-16T12:00"]
    per_user = {(r["day"], r["user"]): r["calls"] for r in days["by_day_user"]}
    assert per_user == {("2025-06-15", "ann"): 2, ("2025-06-15", "bob"): 2, ("2025-06-16", "cy"): 1}


def test_spend_by_key_since_a_day(any_store: TraceStore) -> None:
    any_store.write(batch(), outbox=False, max_outbox=100)
    midnight = DAY - 12 * 3600
    assert any_store.spend_by_key(midnight) == pytest.approx({"k1": 0.006, "k2": 0.003})
    assert any_store.spend_by_key(midnight + 86400) == pytest.approx({"k2": 0.003})


def test_scores(any_store: TraceStore) -> None:
    any_store.write(batch(), outbox=False, max_outbox=100)
    trace_id = batch()[0].trace_id
    score = {"id": "sc1", "traceId": trace_id, "name": "good", "value": 1, "dataType": "BOOLEAN", "comment": None}
    any_store.add_score(score, outbox_payload=None)
    any_store.add_score({**score, "value": 0}, outbox_payload=None)  # the same id: replaced, not added
    any_store.add_score(
        {**score, "id": "sc2", "name": "topic", "value": "math", "dataType": "CATEGORICAL"}, outbox_payload=None
    )
    found = queries.get_trace(any_store, trace_id)
    assert found is not None
    assert sorted((s["name"], s["value"]) for s in found["scores"]) == [("good", 0.0), ("topic", "math")]


def test_prune_removes_old_calls(any_store: TraceStore) -> None:
    now = time.time()
    any_store.write(
        [record(1, at=now - 40 * 86400), record(2, at=now - 35 * 86400), record(3, at=now - 60)],
        outbox=False,
        max_outbox=100,
    )
    assert any_store.prune(30) == 2
    assert ids(queries.list_traces(any_store, TraceFilter())) == ["3"]


def test_session_facts(any_store: TraceStore) -> None:
    facts = [
        record(1, session_id="s", tool_calls={"Bash": 2, "Task": 1}, repo="shop", branch="main", request_digest="d1"),
        record(
            2, session_id="s", tool_calls={"Bash": 2, "Task": 1}, subagent="agent", metadata={"gateway_attempts": 3}
        ),
        record(3, session_id="s", resent=True, repo="shop", branch="fix/x"),
        record(4, session_id="auto-" + f"{4:032x}", session_derived=True, tool_calls={"read_file": 1}),
    ]
    any_store.write(facts, outbox=False, max_outbox=100)
    by_id = {s["session_id"]: s for s in insight.list_sessions(any_store, TraceFilter())["data"]}
    s = by_id["s"]
    assert s["tool_calls"] == {"Bash": 4, "Task": 2} and s["tool_call_count"] == 6 and s["subagent_calls"] == 1
    assert (s["gateway_retries"], s["client_resends"], s["retries"], s["derived"]) == (2, 1, 3, False)
    assert s["repos"] == ["shop"] and sorted(s["branches"]) == ["fix/x", "main"]
    assert by_id["auto-" + f"{4:032x}"]["derived"] is True
    turns = insight.get_session(any_store, "s")["turns"]
    assert [t["tool_calls"] for t in turns] == [{"Bash": 2, "Task": 1}, {"Bash": 2, "Task": 1}, {}]
    assert [(t["retries"], t["resent"], t["subagent"]) for t in turns] == [
        (0, False, None),
        (2, False, "agent"),
        (0, True, None),
    ]
