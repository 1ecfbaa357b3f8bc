"""One suite, two stores: the SQLite store and the PostgreSQL one answer every read the same way.

Each test runs against both (`any_store`), with values written in and the answers the read API, the dashboard
and budgets rely on checked exactly, including that a batch written twice changes nothing.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llm_scope.tracing import blocks, insight, queries, stats
from llm_scope.tracing.pgstore import PostgresStore
from llm_scope.tracing.queries import TraceFilter
from llm_scope.tracing.records import enrich, record_to_json, summary_row
from llm_scope.tracing.screen import CleanBlocks
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


# --- inputs kept as blocks: each distinct one stored once, every read puts the input back exactly ---------

SYSTEM = {"role": "system", "content": "You are a coding agent. " * 200}
TOOLS = [{"name": f"tool_{i}", "description": "Reads a file. " * 20} for i in range(3)]


def turns(session: str, count: int, *, at: float = DAY, start: int = 100) -> list[CallRecord]:
    """A coding agent's calls: each sends the system prompt, the tools and the whole conversation again."""
    history: list[dict[str, Any]] = [{"role": "user", "content": f"{session}: fix the test"}]
    calls = []
    for n in range(count):
        body = {"system": SYSTEM["content"], "messages": list(history), "tools": TOOLS, "max_tokens": 64}
        messages = [SYSTEM, *history] if n % 2 else body  # the Chat and the Messages shapes
        calls.append(record(start + n, at=at, session_id=session, input=messages))
        history += [{"role": "assistant", "content": f"turn {n} ☕"}, {"role": "user", "content": f"result {n} " * 9}]
    return calls


def blob_bodies(store: TraceStore) -> dict[str, str]:
    return {row["digest"]: row["body"] for row in store.query("SELECT digest, body FROM blobs")}


def as_served(store: TraceStore, trace_id: str) -> str:
    """What /api/traces/{id} serves for the call, as bytes (the read API dumps get_trace's dict)."""
    return json.dumps(queries.get_trace(store, trace_id), ensure_ascii=False)


def test_the_same_blocks_in_many_calls_are_stored_once(any_store: TraceStore) -> None:
    calls = turns("s1", 8)
    any_store.write(calls, outbox=False, max_outbox=100)
    any_store.write(calls[-2:], outbox=False, max_outbox=100)  # written again: nothing more
    distinct = {json.dumps(block, sort_keys=True) for call in calls for block in blocks.blocks(call.input)}
    assert len(blob_bodies(any_store)) == len(distinct) < sum(len(list(blocks.blocks(c.input))) for c in calls) / 3
    for call in calls:
        found = queries.get_trace(any_store, call.trace_id)
        assert found is not None and found["input"] == call.input


def test_reads_serve_the_same_bytes_as_a_row_stored_whole(any_store: TraceStore) -> None:
    """A row written before blocks (its input inline, input_refs NULL) and one written now read the same."""
    calls = [*turns("s1", 4), record(9, input="a plain prompt ☕"), record(10, input=None)]
    any_store.write(calls, outbox=False, max_outbox=100)
    served = [as_served(any_store, call.trace_id) for call in calls]
    for call in calls:  # the same calls as an older version stored them: whole, in the record column
        sql = "UPDATE traces SET record = ?, input_refs = NULL WHERE trace_id = ?"
        any_store.db.execute(sql, [record_to_json(call), call.trace_id])  # type: ignore[attr-defined]
    assert [as_served(any_store, call.trace_id) for call in calls] == served
    assert json.loads(served[0])["input"] == calls[0].input


def test_blocks_are_shared_across_sessions(any_store: TraceStore) -> None:
    any_store.write([*turns("s1", 3), *turns("s2", 3, start=200)], outbox=False, max_outbox=100)
    system = [body for body in blob_bodies(any_store).values() if "You are a coding agent" in body]
    # Both sessions' system prompt, once as Messages' "system" string and once as a Chat system message.
    assert sorted(body[:2] for body in system) == ['"Y', '{"']


def test_a_scrubbed_block_is_stored_scrubbed_under_its_own_key(any_store: TraceStore) -> None:
    secret = "sk-proj-" + "A1b2C3d4" * 5
    leaky = {"role": "user", "content": f"my key is {secret}"}
    calls = [record(1, input=[SYSTEM, leaky]), record(2, input=[SYSTEM, dict(leaky)])]
    for call in calls:
        enrich(call, prices_for=lambda _: None, secrets=(secret,), trace_content=True, clean=CleanBlocks())
    any_store.write(calls, outbox=False, max_outbox=100)
    stored = blob_bodies(any_store)
    assert len(stored) == 2 and not any(secret in body for body in stored.values())
    assert blocks.key_of(blocks.block_digest(leaky)) not in stored  # no key of the unscrubbed block
    found = queries.get_trace(any_store, calls[0].trace_id)
    assert found is not None and found["input"][1]["content"] != leaky["content"]
    assert found["input"] == calls[0].input


def test_retention_deletes_the_blocks_only_old_calls_used(any_store: TraceStore) -> None:
    now = time.time()
    old = turns("old", 3, at=now - 40 * 86400)
    any_store.write(old, outbox=False, max_outbox=100)
    # Forty days pass: the blocks were written then, and the writer's memory of them is long gone.
    any_store.db.execute("UPDATE blobs SET seen = seen - ?", [40 * 86400])  # type: ignore[attr-defined]
    later = Store(any_store.path) if isinstance(any_store, Store) else any_store
    recent = record(50, at=now - 60, input=[SYSTEM, {"role": "user", "content": "a new session"}])
    later.write([recent], outbox=False, max_outbox=100)  # shares the system prompt with the old calls
    before = len(blob_bodies(any_store))
    assert later.prune(30) == 3
    assert len(blob_bodies(any_store)) < before
    kept = [r["trace_id"] for r in queries.list_traces(any_store, TraceFilter())["data"]]
    for trace_id in kept:  # every call kept reads whole
        call = next(c for c in [*old, recent] if c.trace_id == trace_id)
        assert (found := queries.get_trace(any_store, trace_id)) is not None and found["input"] == call.input
    if later is not any_store:
        later.close()


def test_cost_by_bucket_and_rejected_calls_grouped(any_store: TraceStore) -> None:
    """Disjoint cost buckets add up to what was billed; an unpriced call is in none (NULL, never $0); calls
    refused before a deployment was chosen are one "(rejected)" model, found again with status=rejected."""
    parts = Cost(input=0.01, output=0.02, total=0.03, cache_read=0.002, cache_write=0.003, reasoning=0.005)
    refused = {"resolved_model": "", "provider": "", "status_code": 404, "error_type": "not_found_error"}
    any_store.write(
        [
            record(1, cost=parts, usage=Usage(input=100, output=50, total=150, cache_read=40, cache_write=20)),
            record(2, requested_model="gtp-4o", cost=None, usage=Usage(), output=None, **refused),
            record(3, requested_model="gpt4-typo", cost=None, usage=Usage(), output=None, **refused),
            record(4, resolved_model="local", requested_model="local", cost=None),  # unpriced
        ],
        outbox=False,
        max_outbox=10,
    )
    row = queries.list_traces(any_store, TraceFilter(limit=10))["data"][-1]
    stored = (row["cost_cache_read"], row["cost_cache_write"], row["cost_reasoning"])
    assert stored == pytest.approx((0.002, 0.003, 0.005))
    usage = queries.usage(any_store, TraceFilter())
    by_model = {r["model"]: r for r in usage["by_model"]}
    assert set(by_model) == {"gpt-4o-mini", "local", "(rejected)"} and by_model["(rejected)"]["calls"] == 2
    priced = by_model["gpt-4o-mini"]
    buckets = [priced[name] for name in queries.COST_BUCKET_NAMES]
    assert buckets == pytest.approx([0.005, 0.002, 0.003, 0.015, 0.005]) and sum(buckets) == pytest.approx(0.03)
    assert all(by_model["local"][name] is None for name in queries.COST_BUCKET_NAMES)
    assert usage["total"]["cost_fresh_input"] == pytest.approx(0.005) and usage["total"]["unpriced_calls"] == 1
    assert {r["model"] for r in usage["by_day_model"]} == {"gpt-4o-mini", "local", "(rejected)"}
    rejected = queries.list_traces(any_store, TraceFilter(status="rejected"))
    assert sorted(r["requested_model"] for r in rejected["data"]) == ["gpt4-typo", "gtp-4o"]
    assert queries.list_traces(any_store, TraceFilter(model="(rejected)"))["data"] == rejected["data"]


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


def test_a_short_input_is_kept_inline_and_reads_as_one_kept_as_blocks(any_store: TraceStore) -> None:
    """records.INLINE_MAX: a short input is stored whole in its record (no refs, no block); served, it is
    byte for byte what the same call stored as blocks gives, and a long input still goes to blocks."""
    brief = {"role": "system", "content": "Be brief."}
    short = record(1, input=[brief, {"role": "user", "content": "hi ☕"}])
    as_blocks = record(1, trace_id="b" * 32, input=blocks.with_refs(copy.deepcopy(short.input)))
    long = record(2, input=[brief, {"role": "user", "content": "hi ☕ " * 300}])
    any_store.write([short, as_blocks, long], outbox=False, max_outbox=100)
    refs = {r["trace_id"]: r["input_refs"] for r in any_store.query("SELECT trace_id, input_refs FROM traces")}
    assert refs[short.trace_id] is None and refs[as_blocks.trace_id] is not None and refs[long.trace_id] is not None
    served = [json.loads(as_served(any_store, call.trace_id)) for call in (short, as_blocks)]
    assert served[0].pop("trace_id") != served[1].pop("trace_id") and served[0] == served[1]
    assert served[0]["input"] == short.input and json.dumps(served[0]) == json.dumps(served[1])
    assert len(blob_bodies(any_store)) == 3  # "Be brief.", "hi" (of `as_blocks`) and the long message
