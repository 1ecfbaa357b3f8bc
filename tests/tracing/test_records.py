"""Enrichment and the record codec: the fast paths must store exactly what the exhaustive ones did."""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from typing import Any

import pytest

from llm_scope.accounting.cost import Prices, compute_cost
from llm_scope.accounting.redact import REDACTED, redact_text, redact_value
from llm_scope.tracing.records import (
    IN_COLUMNS,
    enrich,
    record_from_dict,
    record_from_json,
    record_to_json,
    summary_row,
    with_columns,
)
from llm_scope.types import CallRecord, Cost, Usage

SECRETS = ["sk-upstream-0123456789abcdef", "ls-master-key-0c9d8e7f"]
PRICES: Prices = {"input_cost_per_token": 1.5e-07, "output_cost_per_token": 6e-07}


def prices_for(record: CallRecord) -> Prices | None:
    return PRICES if record.resolved_model == "gpt-4o-mini" else None


def exhaustive_enrich(record: CallRecord, secrets: Sequence[str], trace_content: bool) -> CallRecord:
    """Enrichment as it was: every message walked and copied, whatever it held."""
    if record.cost is None and record.usage.total:
        record.cost = compute_cost(record.usage, prices_for(record))
    if trace_content:
        record.input = redact_value(record.input, secrets)
        record.output = redact_value(record.output, secrets)
    else:
        record.input = record.output = None
    record.metadata = redact_value(record.metadata, secrets) if record.metadata else {}
    if record.error_message:
        record.error_message = redact_text(record.error_message, secrets)
    return record


def make(**fields: Any) -> CallRecord:
    base: dict[str, Any] = {
        "trace_id": "ab" * 16,
        "route": "chat_completion",
        "start_time": 1_750_000_000.5,
        "end_time": 1_750_000_000.9,
        "resolved_model": "gpt-4o-mini",
        "input": [{"role": "user", "content": "Say hello in one short sentence."}],
        "output": {"role": "assistant", "content": "Hello! How can I help?"},
        "usage": Usage(input=12, output=9, total=21),
    }
    base.update(fields)
    return CallRecord(**base)


CASES = {
    "plain": make(),
    "no-usage": make(usage=Usage()),
    "unpriced": make(resolved_model="mystery"),
    "already-priced": make(cost=Cost(1.0, 2.0, 3.0)),
    "configured-secret": make(input=[{"role": "user", "content": f"key {SECRETS[0]} here"}]),
    "key-shape-in-output": make(output={"role": "assistant", "content": "use sk-proj-Abc123_def456-GHI789jkl012"}),
    "secret-field": make(metadata={"headers": {"Authorization": "Bearer x"}, "tags": ["a"]}),
    "metadata-none": make(metadata=None),
    "tuples": make(input=({"role": "user", "content": "hi"},)),
    "error": make(status_code=502, error_message=f"upstream said: bad key {SECRETS[1]}", output=None),
    "plain-error": make(status_code=502, error_message="upstream timed out", output=None),
    "no-content": make(input=None, output=None),
}


@pytest.mark.parametrize("trace_content", [True, False])
@pytest.mark.parametrize("name", list(CASES))
def test_enrich_stores_what_exhaustive_scrubbing_stored(name: str, trace_content: bool) -> None:
    fast, slow = copy.deepcopy(CASES[name]), copy.deepcopy(CASES[name])
    enrich(fast, prices_for=prices_for, secrets=SECRETS, trace_content=trace_content)
    exhaustive_enrich(slow, SECRETS, trace_content)
    assert record_to_json(fast) == record_to_json(slow)
    assert fast.metadata is not None and (fast.input is None) == (slow.input is None)


def test_enrich_scrubs_what_it_must() -> None:
    record = CASES["configured-secret"]
    out = enrich(copy.deepcopy(record), prices_for=prices_for, secrets=SECRETS, trace_content=True)
    assert out.input == [{"role": "user", "content": f"key {REDACTED} here"}]
    error = enrich(copy.deepcopy(CASES["error"]), prices_for=prices_for, secrets=iter(SECRETS), trace_content=True)  # type: ignore[arg-type]
    assert error.error_message == f"upstream said: bad key {REDACTED}"


def test_enrich_leaves_clean_messages_alone() -> None:
    record = copy.deepcopy(CASES["plain"])
    messages = record.input
    enrich(record, prices_for=prices_for, secrets=SECRETS, trace_content=True)
    # No message copied; a short input is kept as it came (stored inline: records.INLINE_MAX), unhashed.
    assert record.input is messages and not hasattr(record.input, "refs")
    long = copy.deepcopy(CASES["plain"])
    long.input = [*long.input, {"role": "user", "content": "more " * 300}]
    messages = long.input
    enrich(long, prices_for=prices_for, secrets=SECRETS, trace_content=True)
    # A long one: the list that carries its blocks' keys (blocks.BlockList) holds the same objects.
    assert long.input == messages and all(a is b for a, b in zip(long.input, messages, strict=True))
    assert hasattr(long.input, "refs")
    assert record.cost == compute_cost(Usage(input=12, output=9, total=21), PRICES)


def test_record_codec_round_trips_and_reads_older_records() -> None:
    record = make(cost=Cost(1.0, 2.0, 3.0), metadata={"a": 1}, key_id="k", completion_start_time=1_750_000_000.6)
    assert record_from_json(record_to_json(record)) == record
    older = json.loads(record_to_json(record))
    for field in ("key_id", "finish_reason", "metadata", "usage", "cost"):
        del older[field]
    older["usage"] = {"input": 3}  # an older Usage with fewer counters
    older["unknown_field"] = "ignored"
    back = record_from_dict(older)
    assert back.key_id is None and back.metadata == {} and back.cost is None
    assert back.usage == Usage(input=3) and back.trace_id == record.trace_id


def test_rarer_buckets_round_trip_and_are_left_out_when_zero() -> None:
    rich = CallRecord(
        trace_id="ab" * 16,
        route="messages",
        start_time=1.0,
        usage=Usage(input=150, output=40, total=190, cache_read=100, cache_write=30, cache_write_1h=10),
        cost=Cost(input=0.3, output=0.6, total=0.9, cache_read=0.03, cache_write=0.135, cache_write_1h=0.06),
    )
    again = record_from_json(record_to_json(rich))
    assert (again.usage, again.cost) == (rich.usage, rich.cost)
    plain = CallRecord(
        trace_id="cd" * 16, route="chat_completion", start_time=1.0, usage=Usage(1, 2, 3), cost=Cost(1.0)
    )
    stored = json.loads(record_to_json(plain))
    assert "cache_write_1h" not in stored["usage"] and set(stored["cost"]) == {"input", "output", "total"}
    assert record_from_json(record_to_json(plain)) == plain


def test_unknown_usage_is_stored_as_null_not_zero() -> None:
    from llm_scope.tracing.records import summary_row

    cut_off = CallRecord(
        trace_id="ef" * 16,
        route="messages",
        start_time=1.0,
        completion_start_time=1.2,
        status_code=499,
        error_type="client_disconnected",
    )
    row = summary_row(cut_off)
    assert [row[c] for c in ("input_tokens", "output_tokens", "total_tokens", "cache_read_tokens")] == [None] * 4
    refused = CallRecord(trace_id="ef" * 16, route="messages", start_time=1.0, status_code=429, error_type="rate")
    assert summary_row(refused)["input_tokens"] == 0  # refused before answering: nothing was billed
    reported = CallRecord(trace_id="ef" * 16, route="messages", start_time=1.0, usage=Usage(input=5, total=5))
    assert summary_row(reported)["input_tokens"] == 5


@pytest.mark.parametrize("name", list(CASES))
def test_a_record_stored_less_its_columns_reads_back_whole(name: str) -> None:
    """The store keeps the fields its columns hold (IN_COLUMNS) out of the record's JSON and puts them back from
    the row: the same record as stored whole, flags as bools, whatever each field holds."""
    record = copy.deepcopy(CASES[name])
    record.session_derived, record.resent, record.stream, record.key_id = True, name == "plain", True, "k"
    stored = json.loads(record_to_json(record, in_columns=True))
    assert not set(IN_COLUMNS) & set(stored) and "usage" in stored and "tool_calls" in stored
    row = summary_row(record)
    back = with_columns(stored, [row[name] for name in IN_COLUMNS])
    assert record_from_dict(back) == record_from_json(record_to_json(record))
    whole = json.loads(record_to_json(record))
    assert with_columns(dict(whole), [None] * len(IN_COLUMNS)) == whole  # a record stored whole keeps its own
