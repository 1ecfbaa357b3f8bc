"""Sessions, grouped usage and unpriced models over a real SQLite store, and the pure pieces (cache breaks,
token buckets, the price snippet) as tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from llm_scope.tracing import insight
from llm_scope.tracing.queries import TraceFilter
from llm_scope.tracing.store import Store
from llm_scope.types import CallRecord, Cost, Usage

T0 = 1_790_000_000.0


def call(n: int, **changes: Any) -> CallRecord:
    values: dict[str, Any] = {
        "trace_id": f"{n:032x}",
        "route": "messages",
        "start_time": T0 + n,
        "end_time": T0 + n + 0.5,
        "requested_model": "sonnet",
        "resolved_model": "claude-sonnet-4-5",
        "provider": "anthropic",
        "usage": Usage(input=1000, output=100, total=1100),
        "cost": Cost(input=0.003, output=0.0015, total=0.0045),
    }
    values.update(changes)
    return CallRecord(**values)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "traces.db")
    alice = {"user_id": "alice", "client": "claude-code", "session_id": "s-alice", "key_id": "k1"}
    bob = {"user_id": "bob", "client": "codex", "session_id": "s-bob", "key_id": "k2"}
    records = [
        call(1, **alice, usage=Usage(input=5000, output=200, total=5200, cache_write=4000)),
        call(2, **alice, usage=Usage(input=5200, output=300, total=5500, cache_read=4000, cache_write=200)),
        call(3, **alice, usage=Usage(input=5600, output=100, total=5700, cache_read=200, reasoning=50)),
        call(4, **alice, requested_model="haiku", resolved_model="claude-haiku-4-5", status_code=529),
        # Opus without a price: used tokens, cost unknown (never $0).
        call(5, **bob, requested_model="opus", resolved_model="claude-opus-4-1", cost=None),
        call(6, **bob, requested_model="opus", resolved_model="claude-opus-4-1", cost=None),
        call(7, **bob, requested_model="gpt", resolved_model="gpt-4o-mini", provider="openai"),
        # Refused before answering: no tokens and no cost, which is not "unpriced".
        call(8, **bob, usage=Usage(), cost=None, status_code=401, error_type="auth"),
        call(9, user_id="carol", client="cursor", usage=Usage(input=10, output=5, total=15)),  # no session
    ]
    s.write(records, outbox=False, max_outbox=0)
    return s


def test_sessions_carry_tool_user_models_buckets_cost_and_unpriced(store: Store) -> None:
    found = insight.list_sessions(store, TraceFilter())
    assert found["total"] == 2 and [s["session_id"] for s in found["data"]] == ["s-bob", "s-alice"]
    alice = {s["session_id"]: s for s in found["data"]}["s-alice"]
    assert (alice["client"], alice["user"], alice["calls"], alice["errors"]) == ("claude-code", "alice", 4, 1)
    assert alice["models"] == ["claude-sonnet-4-5", "claude-haiku-4-5"]
    assert alice["input_tokens"] == 5000 + 5200 + 5600 + 1000
    assert alice["cache_read_tokens"] == 4200 and alice["cache_write_tokens"] == 4200
    assert alice["fresh_input_tokens"] == alice["input_tokens"] - 4200 - 4200
    assert alice["reasoning_tokens"] == 50
    assert alice["cache_hit_ratio"] == round(4200 / alice["input_tokens"], 4)
    assert alice["cost_total"] == pytest.approx(4 * 0.0045) and alice["unpriced_calls"] == 0
    bob = {s["session_id"]: s for s in found["data"]}["s-bob"]
    assert bob["unpriced_calls"] == 2 and bob["cost_total"] == pytest.approx(0.0045)  # the priced call only
    assert bob["models"] == ["claude-opus-4-1", "claude-sonnet-4-5", "gpt-4o-mini"]


@pytest.mark.parametrize(
    ("f", "sort", "descending", "expected"),
    [
        (TraceFilter(client="codex"), "last_call", True, ["s-bob"]),
        (TraceFilter(user="alice"), "last_call", True, ["s-alice"]),
        (TraceFilter(model="claude-opus-4-1"), "last_call", True, ["s-bob"]),
        (TraceFilter(until=T0 + 3.5), "last_call", True, ["s-alice"]),
        (TraceFilter(), "cost", True, ["s-alice", "s-bob"]),
        (TraceFilter(), "first_call", False, ["s-alice", "s-bob"]),
        (TraceFilter(), "unpriced", True, ["s-bob", "s-alice"]),
        (TraceFilter(limit=1, offset=1), "last_call", True, ["s-alice"]),
    ],
)
def test_session_filters_sort_and_paging(
    store: Store, f: TraceFilter, sort: str, descending: bool, expected: list[str]
) -> None:
    assert [s["session_id"] for s in insight.list_sessions(store, f, sort, descending)["data"]] == expected


def test_a_session_lists_its_calls_in_order_with_cache_and_cost(store: Store) -> None:
    found = insight.get_session(store, "s-bob")
    assert found is not None and found["calls"] == 4
    calls = found["turns"]
    assert [c["turn"] for c in calls] == [1, 2, 3, 4] and [c["trace_id"] for c in calls] == [
        f"{n:032x}" for n in (5, 6, 7, 8)
    ]
    assert [c["unpriced"] for c in calls] == [True, True, False, False]
    assert [c["cost_total"] for c in calls][:2] == [None, None]
    alice = insight.get_session(store, "s-alice")
    assert alice is not None
    assert [c["cache_break"] for c in alice["turns"]] == [False, False, True, False]
    assert [c["fresh_input_tokens"] for c in alice["turns"]] == [1000, 1000, 5400, 1000]
    assert insight.get_session(store, "nope") is None


def test_usage_grouped_by_each_dimension(store: Store) -> None:
    by_client = {r["client"]: r for r in insight.usage_by(store, TraceFilter(), "client")["data"]}
    assert set(by_client) == {"claude-code", "codex", "cursor"}
    assert by_client["codex"]["unpriced_calls"] == 2 and by_client["codex"]["calls"] == 4
    assert by_client["cursor"]["cost_total"] == pytest.approx(0.0045)
    by_model = {r["model"]: r for r in insight.usage_by(store, TraceFilter(), "model")["data"]}
    assert by_model["claude-opus-4-1"]["cost_total"] is None  # unknown, not $0
    assert by_model["claude-opus-4-1"]["unpriced_calls"] == 2
    assert {r["key"] for r in insight.usage_by(store, TraceFilter(), "key")["data"]} == {"k1", "k2", None}
    assert {r["user"] for r in insight.usage_by(store, TraceFilter(), "user")["data"]} == {"alice", "bob", "carol"}
    sessions = insight.usage_by(store, TraceFilter(), "session")
    assert {r["session"] for r in sessions["data"]} == {"s-alice", "s-bob", None}
    assert sessions["total"]["calls"] == 9 and sessions["total"]["unpriced_calls"] == 2
    with pytest.raises(ValueError):
        insight.usage_by(store, TraceFilter(), "day; DROP TABLE traces")


def test_unpriced_models_come_with_a_snippet_that_parses(store: Store) -> None:
    found = insight.unpriced_models(store, TraceFilter())
    assert found["unpriced_calls"] == 2
    (row,) = found["data"]
    assert (row["requested_model"], row["resolved_model"], row["calls"]) == ("opus", "claude-opus-4-1", 2)
    entry = yaml.safe_load(row["snippet"])[0]
    assert entry["model_name"] == "opus"
    assert entry["litellm_params"]["model"] == "anthropic/claude-opus-4-1"
    assert entry["model_info"] == {"input_cost_per_token": None, "output_cost_per_token": None}


@pytest.mark.parametrize(
    ("row", "fresh", "ratio"),
    [
        ({"input_tokens": 1000, "cache_read_tokens": 600, "cache_write_tokens": 100}, 300, 0.6),
        ({"input_tokens": 0, "cache_read_tokens": 0, "cache_write_tokens": 0}, 0, None),  # unknown, not 0%
        ({"input_tokens": None, "cache_read_tokens": None, "cache_write_tokens": None}, 0, None),
        ({"input_tokens": 10, "cache_read_tokens": 20, "cache_write_tokens": 0}, 0, 2.0),  # odd reports clamp
    ],
)
def test_buckets(row: dict[str, Any], fresh: int, ratio: float | None) -> None:
    out = insight.buckets(dict(row))
    assert out["fresh_input_tokens"] == fresh and out["cache_hit_ratio"] == ratio


def test_snippet_lists_cache_prices_only_when_the_calls_used_the_cache() -> None:
    snippet = insight.price_snippet(
        {"requested_model": "big", "resolved_model": "big-1", "provider": "openai", "cache_read_tokens": 5}
    )
    info = yaml.safe_load(snippet)[0]["model_info"]
    assert set(info) == {"input_cost_per_token", "output_cost_per_token", "cache_read_input_token_cost"}


def test_calls_without_a_session_id_are_grouped_on_request(tmp_path: Path) -> None:
    """Same key (else user) and tool, no gap over 30 minutes: one derived session, named after its first call."""
    s = Store(tmp_path / "derived.db")
    cursor = {"client": "cursor", "user_id": "carol", "session_id": None}
    records = [
        call(0, **cursor),
        call(600, **cursor),
        call(1200, **cursor),
        call(1200 + 1801, **cursor),  # over the idle gap: a new session
        call(100, **{**cursor, "user_id": "dave"}),  # another user: his own
        call(200, **{**cursor, "client": "cline"}),  # another tool: its own
        call(300, client=None, user_id="carol"),  # no tool known: in no session
        call(400, client="codex", user_id="carol", session_id="given"),  # a session id of its own stays as sent
        call(10_000, client="aider", key_id="k1", user_id="erin"),
        call(10_060, client="aider", key_id="k1", user_id="frank"),  # the same key: the same session
    ]
    s.write(records, outbox=False, max_outbox=0)
    plain = insight.list_sessions(s, TraceFilter())
    assert [x["session_id"] for x in plain["data"]] == ["given"]
    derived = insight.list_sessions(s, TraceFilter(), derive=True)
    calls = {x["session_id"]: x["calls"] for x in derived["data"]}
    auto = insight.DERIVED_PREFIX
    assert calls == {
        auto + f"{0:032x}": 3,
        auto + f"{3001:032x}": 1,
        auto + f"{100:032x}": 1,
        auto + f"{200:032x}": 1,
        "given": 1,
        auto + f"{10_000:032x}": 2,
    }
    assert derived["total"] == 6
    # The id does not depend on the range asked about, and the session opens by it.
    later = insight.list_sessions(s, TraceFilter(since=T0 + 500), derive=True)
    assert {x["session_id"]: x["calls"] for x in later["data"]}[auto + f"{0:032x}"] == 2
    found = insight.get_session(s, auto + f"{0:032x}")
    assert found is not None and [t["trace_id"] for t in found["turns"]] == [f"{n:032x}" for n in (0, 600, 1200)]
    assert found["client"] == "cursor" and found["user"] == "carol"
    assert insight.list_sessions(s, TraceFilter(client="aider"), derive=True)["data"][0]["users"] == ["erin", "frank"]


def sonnet_only(record: CallRecord) -> dict[str, float] | None:
    if record.resolved_model != "claude-sonnet-4-5":
        return None
    return {
        "input_cost_per_token": 3e-6,
        "cache_read_input_token_cost": 3e-7,
        "cache_creation_input_token_cost": 3.75e-6,
    }


def test_what_the_cache_saved_per_session_turn_and_group(store: Store) -> None:
    saved = 4200 * (3e-6 - 3e-7)  # alice's sonnet reads, at the list price less the read price
    premium = 4200 * (3.75e-6 - 3e-6)
    by_id = {s["session_id"]: s for s in insight.list_sessions(store, TraceFilter(), prices_for=sonnet_only)["data"]}
    assert by_id["s-alice"]["cache_saved_usd"] == pytest.approx(saved)
    assert by_id["s-alice"]["cache_write_premium_usd"] == pytest.approx(premium)
    assert by_id["s-bob"]["cache_saved_usd"] is None  # no cache tokens on a priced model: unknown
    found = insight.get_session(store, "s-alice", prices_for=sonnet_only)
    assert found is not None
    turns = [t["cache_saved_usd"] for t in found["turns"]]
    assert turns[:3] == pytest.approx([0.0, 4000 * 2.7e-6, 200 * 2.7e-6]) and turns[3] is None  # haiku: no price
    by_client = insight.usage_by(store, TraceFilter(), "client", prices_for=sonnet_only)
    assert {r["client"]: r["cache_saved_usd"] for r in by_client["data"]} == pytest.approx(
        {"claude-code": saved, "codex": None, "cursor": None}
    )
    assert by_client["total"]["cache_saved_usd"] == pytest.approx(saved)
    assert "cache_saved_usd" not in insight.usage_by(store, TraceFilter(), "client")["total"]  # not asked
