"""How a CallRecord reads in Langfuse: one root generation per call, laid out as the official SDK lays it out.

The reference is /work/shared/langfuse/sdk-v5-otlp-request.json (langfuse SDK 5.0.4). The attributes that
matter are copied below so the suite runs where that file is absent; one test checks the copy when it is not.
Langfuse v4 takes a trace's input and output from its root observation, sums every usage key holding
"input" (or "output"), and copies the attributes of any scope not named `langfuse-sdk*` into metadata.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from llm_scope.types import CallRecord, Cost, Usage

from .langfuse_reference import TRACE_HEX, decode, encode, only_span, plain, reference_record, wire

REFERENCE_FILE = Path("/work/shared/langfuse/sdk-v5-otlp-request.json")

SDK_COST = '{"input": 0.0001, "output": 0.0002, "total": 0.0003}'
# Attribute values exactly as the SDK encodes them (OTLP/JSON form of the reference's generation span).
SDK_GENERATION_VALUES: dict[str, dict[str, Any]] = {
    "user.id": {"stringValue": "user-1"},
    "session.id": {"stringValue": "sess-1"},
    "langfuse.observation.type": {"stringValue": "generation"},
    "langfuse.observation.model.name": {"stringValue": "gpt-4o-mini"},
    "langfuse.observation.model.parameters": {"stringValue": '{"temperature": 0.2}'},
    "langfuse.observation.input": {"stringValue": '[{"role": "user", "content": "hi"}]'},
    "langfuse.observation.output": {"stringValue": '{"role": "assistant", "content": "MOCK_OK"}'},
    "langfuse.observation.cost_details": {"stringValue": SDK_COST},
    "langfuse.observation.completion_start_time": {"stringValue": '"2026-11-24T09:10:02.976392Z"'},
}
# The SDK marks its root span so; ours is the generation itself.
SDK_ROOT_VALUES: dict[str, dict[str, Any]] = {"langfuse.internal.is_app_root": {"boolValue": True}}
# Same key, same encoding, different value: the SDK call used a trace called "chat" tagged "proxy".
SDK_SHAPES = {"langfuse.trace.tags": "arrayValue", "langfuse.trace.name": "stringValue"}


def usage_sent(record: CallRecord) -> dict[str, int] | None:
    attrs = plain(only_span(encode(record)))
    raw = attrs.get("langfuse.observation.usage_details")
    return None if raw is None else dict(json.loads(raw))


def langfuse_totals(details: dict[str, float]) -> tuple[float, float]:
    """What Langfuse's UI makes of usage or cost details: every key holding "input", every holding "output"."""
    return (
        sum(v for k, v in details.items() if "input" in k),
        sum(v for k, v in details.items() if "output" in k),
    )


# --- the layout ---------------------------------------------------------------------------------------------


def test_a_call_is_one_root_generation_that_encodes_like_the_sdk() -> None:
    span = only_span(encode(reference_record()))
    attrs = wire(span)
    for key, expected in {**SDK_GENERATION_VALUES, **SDK_ROOT_VALUES}.items():
        assert attrs[key] == expected, key
    for key, kind in SDK_SHAPES.items():
        assert kind in attrs[key], key
    assert attrs["langfuse.trace.tags"] == {
        "arrayValue": {
            "values": [{"stringValue": v} for v in ("openai", "gpt-4o-mini", "chat_completion", "openai-python")]
        }
    }
    assert attrs["langfuse.trace.name"] == {"stringValue": "chat_completion"}
    assert span.name == "openai"
    assert span.kind == Span.SpanKind.SPAN_KIND_INTERNAL
    assert span.trace_id == bytes.fromhex(TRACE_HEX)


def test_the_trace_shows_the_calls_input_and_output() -> None:
    # Langfuse reads a trace's input/output off its root observation: the one span has both, once.
    for route in ("chat_completion", "messages", "responses"):
        attrs = plain(only_span(encode(reference_record(route=route))))
        assert json.loads(attrs["langfuse.observation.input"]) == [{"role": "user", "content": "hi"}]
        assert json.loads(attrs["langfuse.observation.output"]) == {"role": "assistant", "content": "MOCK_OK"}
        assert not any(k.startswith("langfuse.trace.input") or k.startswith("langfuse.trace.output") for k in attrs)


def test_reference_copy_matches_the_shared_file() -> None:
    if not REFERENCE_FILE.exists():
        pytest.skip("reference file not present")
    spans = json.loads(REFERENCE_FILE.read_text())[0]["otlp"]["resourceSpans"][0]["scopeSpans"][0]["spans"]
    by_name = {span["name"]: {a["key"]: a["value"] for a in span["attributes"]} for span in spans}
    generation, root = by_name["llm-call"], by_name["proxy-request"]
    for key, expected in SDK_GENERATION_VALUES.items():
        assert generation[key] == expected, key
    for key, expected in SDK_ROOT_VALUES.items():
        assert root[key] == expected, key
    for key, kind in SDK_SHAPES.items():
        assert kind in generation[key] and kind in root[key], key
    assert base64.b64decode(spans[0]["traceId"]).hex() == TRACE_HEX


def test_the_span_carries_the_trace_attributes() -> None:
    attrs = plain(only_span(encode(reference_record(), environment="staging", release="2.0.0")))
    assert attrs["user.id"] == "user-1"
    assert attrs["session.id"] == "sess-1"
    assert attrs["langfuse.trace.tags"] == ["openai", "gpt-4o-mini", "chat_completion", "openai-python"]
    assert attrs["langfuse.trace.name"] == "chat_completion"
    assert attrs["langfuse.environment"] == "staging"
    assert attrs["langfuse.release"] == "2.0.0"


def test_release_is_the_operators_and_our_version_is_metadata() -> None:
    request = decode(encode(reference_record(), release="", version="0.9.0"))
    (resource_spans,) = request.resource_spans
    resource = {kv.key: kv.value.string_value for kv in resource_spans.resource.attributes}
    assert resource == {
        "service.name": "llm-scope",
        "telemetry.sdk.language": "python",
        "telemetry.sdk.name": "llm-scope",
    }
    # Langfuse copies the attributes of any other scope into metadata.attributes: every entry twice.
    (scope_spans,) = resource_spans.scope_spans
    assert (scope_spans.scope.name, scope_spans.scope.version) == ("langfuse-sdk", "0.9.0")
    attrs = plain(only_span(encode(reference_record(), release="", version="0.9.0")))
    assert "langfuse.release" not in attrs
    assert attrs["langfuse.observation.metadata.llm_scope_version"] == "0.9.0"
    released = decode(encode(reference_record(), release="2026.12.1"))
    assert {kv.key: kv.value.string_value for kv in released.resource_spans[0].resource.attributes}[
        "service.version"
    ] == "2026.12.1"


def test_unset_user_and_session_are_left_out() -> None:
    attrs = plain(only_span(encode(reference_record(user_id=None, session_id=None))))
    assert "user.id" not in attrs and "session.id" not in attrs


def test_span_ids_are_stable_so_retries_deduplicate() -> None:
    first, second = encode(reference_record()), encode(reference_record())
    assert first == second
    span = only_span(first)
    assert len(span.span_id) == 8 and any(span.span_id)
    assert only_span(encode(reference_record(trace_id="ab" * 16))).span_id != span.span_id


def test_a_malformed_trace_id_gets_a_stable_stand_in() -> None:
    span, again = (
        only_span(encode(reference_record(trace_id="not-hex"))),
        only_span(encode(reference_record(trace_id="not-hex"))),
    )
    assert len(span.trace_id) == 16 and any(span.trace_id)
    assert span.trace_id == again.trace_id


def test_the_generation_covers_the_whole_call_and_upstream_latency_is_metadata() -> None:
    record = reference_record(upstream_latency=0.45)
    span = only_span(encode(record))
    assert abs(span.start_time_unix_nano - record.start_time * 1e9) < 1_000
    assert abs(span.end_time_unix_nano - record.end_time * 1e9) < 1_000
    assert plain(span)["langfuse.observation.metadata.upstream_latency"] == 0.45


def test_gateway_facts_are_observation_metadata_and_caller_metadata_trace_metadata() -> None:
    attrs = wire(
        only_span(encode(reference_record(metadata={"team": "search", "experiment": {"arm": "b"}, "provider": "x"})))
    )
    prefix = "langfuse.observation.metadata."
    assert attrs[prefix + "requested_model"] == {"stringValue": "fast"}
    assert attrs[prefix + "provider"] == {"stringValue": "openai"}  # a caller's "provider" does not clash
    assert attrs[prefix + "status_code"] == {"intValue": "200"}
    assert attrs[prefix + "stream"] == {"boolValue": True}
    assert attrs[prefix + "client"] == {"stringValue": "openai-python"}  # also a trace tag
    assert attrs[prefix + "client_version"] == {"stringValue": "2.1"}
    assert attrs[prefix + "finish_reason"] == {"stringValue": "stop"}
    assert prefix + "error_type" not in attrs  # unset facts are left out
    assert attrs["langfuse.trace.metadata.team"] == {"stringValue": "search"}
    assert attrs["langfuse.trace.metadata.experiment"] == {"stringValue": '{"arm": "b"}'}
    assert attrs["langfuse.trace.metadata.provider"] == {"stringValue": "x"}
    assert prefix + "team" not in attrs  # sent once


def test_session_facts_are_observation_metadata_when_the_call_has_them() -> None:
    prefix = "langfuse.observation.metadata."
    facts = {"tool_calls": {"Bash": 2, "Read": 1}, "subagent": "agent-7", "repo": "llm-scope", "branch": "main"}
    attrs = wire(only_span(encode(reference_record(**facts))))
    assert attrs[prefix + "tool_calls"] == {"stringValue": '{"Bash": 2, "Read": 1}'}
    assert attrs[prefix + "subagent"] == {"stringValue": "agent-7"}
    assert (attrs[prefix + "repo"], attrs[prefix + "branch"]) == ({"stringValue": "llm-scope"}, {"stringValue": "main"})
    plain_call = wire(only_span(encode(reference_record())))
    assert not {prefix + name for name in facts} & set(plain_call)  # a call without them sends nothing extra


def test_failed_call_is_an_error_level_generation() -> None:
    record = reference_record(
        status_code=429,
        error_type="rate_limit_error",
        error_message="Rate limit reached",
        output=None,
        usage=Usage(),
        cost=None,
        completion_start_time=None,
    )
    span = only_span(encode(record))
    attrs = plain(span)
    assert attrs["langfuse.observation.level"] == "ERROR"
    assert attrs["langfuse.observation.status_message"] == "Rate limit reached"
    assert span.status.code == Status.StatusCode.STATUS_CODE_ERROR
    assert span.status.message == "Rate limit reached"
    # Zero usage on a refused call is a fact (nothing billed), so it is sent; unknown cost is not.
    assert json.loads(attrs["langfuse.observation.usage_details"]) == {"input": 0, "output": 0, "total": 0}
    assert "langfuse.observation.cost_details" not in attrs
    assert "langfuse.observation.output" not in attrs
    assert "langfuse.observation.completion_start_time" not in attrs


def test_successful_call_has_no_error_markers() -> None:
    span = only_span(encode(reference_record()))
    assert "langfuse.observation.level" not in plain(span)
    assert span.status.code == Status.StatusCode.STATUS_CODE_UNSET


def test_input_is_omitted_when_content_tracing_is_off() -> None:
    assert "langfuse.observation.input" not in plain(only_span(encode(reference_record(input=None))))


def test_plain_text_content_is_not_double_quoted() -> None:
    attrs = plain(only_span(encode(reference_record(input="hello", output="world"))))
    assert (attrs["langfuse.observation.input"], attrs["langfuse.observation.output"]) == ("hello", "world")


def test_call_that_failed_before_routing_still_encodes() -> None:
    span = only_span(encode(CallRecord(trace_id="cd" * 16, route="messages", start_time=1.0, status_code=404)))
    assert span.name == "llm-call"
    assert span.end_time_unix_nano == span.start_time_unix_nano  # end_time unset
    assert plain(span)["langfuse.trace.tags"] == ["messages"]


def test_lone_surrogates_from_client_json_do_not_break_encoding() -> None:
    bad = json.loads('"caf\\u00e9 \\ud800"')  # what json.loads makes of a client's "\\ud800" escape
    record = reference_record(input=[{"role": "user", "content": bad}], metadata={bad: bad}, user_id=bad)
    attrs = plain(only_span(encode(record)))
    assert json.loads(attrs["langfuse.observation.input"])[0]["content"] == bad  # still valid JSON
    assert attrs["user.id"] == "café \\ud800"
    assert "langfuse.trace.metadata.café \\ud800" in attrs


def test_many_records_share_one_resource_and_scope() -> None:
    request = decode(encode(*[reference_record(trace_id=f"{i:032x}") for i in range(1, 4)]))
    assert len(request.resource_spans) == 1
    assert len(request.resource_spans[0].scope_spans[0].spans) == 3


def test_embeddings_are_embedding_observations_with_input_tokens_only() -> None:
    record = reference_record(route="embeddings", usage=Usage(input=12, total=12), output={"embeddings": 1})
    attrs = plain(only_span(encode(record)))
    assert attrs["langfuse.observation.type"] == "embedding"
    assert json.loads(attrs["langfuse.observation.usage_details"]) == {"input": 12, "output": 0, "total": 12}


# --- usage and cost: disjoint buckets that add up to what the provider billed ---------------------------------

ANTHROPIC_CACHED = Usage(input=150, output=40, total=190, cache_read=100, cache_write=30)  # 20 fresh
ANTHROPIC_1H = Usage(input=150, output=40, total=190, cache_read=100, cache_write=30, cache_write_1h=10)
OPENAI_CACHED = Usage(input=25, output=30, total=55, cache_read=8, reasoning=12)
RESPONSES_CACHED = Usage(input=300, output=90, total=390, cache_read=256, reasoning=64)


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        (
            ANTHROPIC_CACHED,
            {"input": 20, "input_cached_tokens": 100, "input_cache_creation": 30, "output": 40, "total": 190},
        ),
        (
            ANTHROPIC_1H,
            {
                "input": 20,
                "input_cached_tokens": 100,
                "input_cache_creation_5m": 20,
                "input_cache_creation_1h": 10,
                "output": 40,
                "total": 190,
            },
        ),
        (
            OPENAI_CACHED,
            {"input": 17, "input_cached_tokens": 8, "output": 18, "output_reasoning_tokens": 12, "total": 55},
        ),
        (
            RESPONSES_CACHED,
            {"input": 44, "input_cached_tokens": 256, "output": 26, "output_reasoning_tokens": 64, "total": 390},
        ),
    ],
    ids=["anthropic-cache", "anthropic-1h-writes", "openai-cached-reasoning", "responses-cached-reasoning"],
)
def test_usage_buckets_are_disjoint_and_add_up(usage: Usage, expected: dict[str, int]) -> None:
    sent = usage_sent(reference_record(usage=usage))
    assert sent == expected
    assert langfuse_totals(dict(sent)) == (usage.input, usage.output)  # the provider's whole prompt/completion


def test_cost_buckets_match_the_usage_keys_and_add_up() -> None:
    # Claude Sonnet 4.5's list prices: 3 $/M in, 15 out, cache read 0.3, 5-minute write 3.75, 1-hour write 6.
    cost = Cost(
        input=20 * 3e-6 + 100 * 0.3e-6 + 20 * 3.75e-6 + 10 * 6e-6,
        output=40 * 15e-6,
        total=20 * 3e-6 + 100 * 0.3e-6 + 20 * 3.75e-6 + 10 * 6e-6 + 40 * 15e-6,
        cache_read=100 * 0.3e-6,
        cache_write=20 * 3.75e-6 + 10 * 6e-6,
        cache_write_1h=10 * 6e-6,
    )
    attrs = plain(only_span(encode(reference_record(usage=ANTHROPIC_1H, cost=cost))))
    sent = json.loads(attrs["langfuse.observation.cost_details"])
    assert set(sent) == set(json.loads(attrs["langfuse.observation.usage_details"]))
    assert sent["input_cache_creation_1h"] == pytest.approx(6e-5)
    assert sent["input_cache_creation_5m"] == pytest.approx(7.5e-5)
    inputs, outputs = langfuse_totals(sent)
    assert inputs == pytest.approx(cost.input) and outputs == pytest.approx(cost.output)
    assert sent["total"] == pytest.approx(inputs + outputs)


def test_unreported_usage_is_left_for_langfuse_to_infer() -> None:
    assert usage_sent(reference_record(usage=Usage())) is None


@pytest.mark.parametrize(
    "changes",
    [
        {"status_code": 499, "error_type": "client_disconnected"},  # cancelled after the first token
        {"status_code": 200, "error_type": "upstream_error"},  # the stream broke off
        {"status_code": 504, "error_type": "timeout", "completion_start_time": None},
        {"status_code": 499, "error_type": "client_disconnected", "completion_start_time": None},
    ],
)
def test_a_broken_or_cancelled_stream_sends_no_zero_usage(changes: dict[str, Any]) -> None:
    # It may have been billed: zeros would stop Langfuse estimating and show $0. Unknown stays unknown...
    assert usage_sent(reference_record(usage=Usage(), cost=None, **changes)) is None
    # ...and what is known is sent: Anthropic's message_start reports the input before any output.
    known = usage_sent(reference_record(usage=Usage(input=120, total=120, cache_read=100), cost=None, **changes))
    assert known == {"input": 20, "input_cached_tokens": 100}  # output (and so the total) unknown
