"""Standard OpenTelemetry GenAI spans: decoded with the official opentelemetry-proto classes and checked
against the attribute names of the pinned semantic-conventions release."""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from llm_scope.tracing.genai import (
    SCHEMA_URL,
    SEMCONV_VERSION,
    GenAIEncoder,
    parse_headers,
    service_url,
)
from llm_scope.types import CallRecord, Cost, Usage

from .langfuse_reference import TRACE_HEX, plain, reference_record

# Every attribute we send, with its type, as OpenTelemetry semantic conventions v1.41.0 define it (the GenAI,
# server, error and user registries); ours are under llm_scope.*. A name not in this table fails the test.
SEMCONV_1_41: dict[str, type] = {
    "gen_ai.operation.name": str,
    "gen_ai.provider.name": str,
    "gen_ai.request.model": str,
    "gen_ai.response.model": str,
    "gen_ai.request.temperature": float,
    "gen_ai.request.top_p": float,
    "gen_ai.request.top_k": int,
    "gen_ai.request.max_tokens": int,
    "gen_ai.request.frequency_penalty": float,
    "gen_ai.request.presence_penalty": float,
    "gen_ai.request.seed": int,
    "gen_ai.request.stop_sequences": list,
    "gen_ai.response.finish_reasons": list,
    "gen_ai.usage.input_tokens": int,
    "gen_ai.usage.output_tokens": int,
    "gen_ai.usage.cache_read.input_tokens": int,
    "gen_ai.usage.cache_creation.input_tokens": int,
    "gen_ai.usage.reasoning.output_tokens": int,
    "gen_ai.conversation.id": str,
    "gen_ai.input.messages": str,
    "gen_ai.output.messages": str,
    "server.address": str,
    "server.port": int,
    "error.type": str,
    "user.id": str,
}
OURS = {"llm_scope.cost.usd": float, "llm_scope.route": str, "llm_scope.client": str}


def encode(records: Sequence[CallRecord], *, content: bool = False) -> ExportTraceServiceRequest:
    data = GenAIEncoder(service_name="gateway", version="0.9.0", content=content).request(records)
    return ExportTraceServiceRequest.FromString(data)


def one(record: CallRecord, *, content: bool = False) -> tuple[Span, dict[str, Any]]:
    request = encode([record], content=content)
    (span,) = request.resource_spans[0].scope_spans[0].spans
    return span, plain(span)


def test_request_names_the_service_scope_and_schema() -> None:
    request = encode([reference_record()])
    (resource_spans,) = request.resource_spans
    resource = {kv.key: kv.value.string_value for kv in resource_spans.resource.attributes}
    assert resource == {"service.name": "gateway", "telemetry.sdk.name": "llm-scope", "telemetry.sdk.version": "0.9.0"}
    (scope_spans,) = resource_spans.scope_spans
    assert (scope_spans.scope.name, scope_spans.scope.version) == ("llm_scope", "0.9.0")
    assert scope_spans.schema_url == SCHEMA_URL == f"https://opentelemetry.io/schemas/{SEMCONV_VERSION}"


def test_a_chat_call_is_a_client_span_with_the_genai_attributes() -> None:
    record = reference_record(server="api.openai.com", model_parameters={"temperature": 0.2, "max_tokens": 64})
    span, attrs = one(record)
    assert span.name == "chat fast"
    assert span.kind == Span.SpanKind.SPAN_KIND_CLIENT
    assert span.trace_id == bytes.fromhex(TRACE_HEX) and len(span.span_id) == 8 and not span.parent_span_id
    assert abs(span.end_time_unix_nano - span.start_time_unix_nano - 0.5e9) < 1_000
    assert attrs == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "fast",
        "gen_ai.response.model": "gpt-4o-mini",
        "gen_ai.request.temperature": 0.2,
        "gen_ai.request.max_tokens": 64,
        "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.usage.input_tokens": 10,  # the whole prompt: the cache attribute is a part of it
        "gen_ai.usage.output_tokens": 3,
        "gen_ai.usage.cache_read.input_tokens": 2,
        "gen_ai.conversation.id": "sess-1",
        "user.id": "user-1",
        "server.address": "api.openai.com",
        "llm_scope.cost.usd": 0.0003,
        "llm_scope.route": "chat_completion",
        "llm_scope.client": "openai-python",
    }
    assert span.status.code == Status.StatusCode.STATUS_CODE_UNSET


@pytest.mark.parametrize(
    "record",
    [
        reference_record(),
        reference_record(
            route="messages",
            provider="bedrock",
            server="bedrock-runtime.us-east-1.amazonaws.com:443",
            usage=Usage(input=150, output=40, total=190, cache_read=100, cache_write=30, cache_write_1h=10),
            model_parameters={"top_k": 5, "top_p": 0.9, "stop_sequences": ["END"], "seed": 7, "stream": True},
        ),
        reference_record(route="responses", usage=Usage(input=300, output=90, cache_read=256, reasoning=64)),
        reference_record(route="embeddings", usage=Usage(input=12, total=12), finish_reason=None),
        reference_record(status_code=502, error_type="upstream_error", error_message="bad gateway", usage=Usage()),
        reference_record(
            model_parameters={"presence_penalty": 0.1, "frequency_penalty": 0.2, "stop": "x"}, cost=Cost()
        ),
    ],
    ids=["chat", "bedrock-messages", "responses", "embeddings", "error", "penalties"],
)
def test_every_attribute_is_in_the_pinned_conventions_with_its_type(record: CallRecord) -> None:
    _, attrs = one(record, content=True)
    for key, value in attrs.items():
        kind = SEMCONV_1_41.get(key) or OURS.get(key)
        assert kind is not None, f"{key} is not an attribute of semconv {SEMCONV_VERSION}"
        assert isinstance(value, kind) and not isinstance(value, bool), key


def test_usage_follows_the_conventions_arithmetic() -> None:
    record = reference_record(
        route="messages",
        provider="anthropic",
        usage=Usage(input=150, output=40, total=190, cache_read=100, cache_write=30, cache_write_1h=10),
    )
    _, attrs = one(record)
    assert attrs["gen_ai.operation.name"] == "chat" and attrs["gen_ai.provider.name"] == "anthropic"
    assert attrs["gen_ai.usage.input_tokens"] == 150  # 20 fresh + 100 read + 30 written
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 100
    assert attrs["gen_ai.usage.cache_creation.input_tokens"] == 30
    assert attrs["gen_ai.usage.output_tokens"] == 40
    _, reasoning = one(reference_record(route="responses", usage=Usage(input=300, output=90, reasoning=64)))
    assert reasoning["gen_ai.usage.output_tokens"] == 90 and reasoning["gen_ai.usage.reasoning.output_tokens"] == 64


def test_unknown_usage_is_left_out_not_zero() -> None:
    _, attrs = one(reference_record(usage=Usage(), status_code=499, error_type="client_disconnected"))
    assert not any(key.startswith("gen_ai.usage.") for key in attrs)
    _, partial = one(
        reference_record(usage=Usage(input=120, total=120), status_code=499, error_type="client_disconnected")
    )
    assert partial["gen_ai.usage.input_tokens"] == 120 and "gen_ai.usage.output_tokens" not in partial


def test_errors_carry_error_type_and_status() -> None:
    span, attrs = one(reference_record(status_code=429, error_type=None, error_message="slow down", usage=Usage()))
    assert attrs["error.type"] == "429"
    assert span.status.code == Status.StatusCode.STATUS_CODE_ERROR and span.status.message == "slow down"


def test_content_only_when_opted_in() -> None:
    _, off = one(reference_record())
    assert "gen_ai.input.messages" not in off and "gen_ai.output.messages" not in off
    _, on = one(reference_record(), content=True)
    assert json.loads(on["gen_ai.input.messages"]) == [{"role": "user", "content": "hi"}]
    assert json.loads(on["gen_ai.output.messages"]) == {"role": "assistant", "content": "MOCK_OK"}
    _, stripped = one(reference_record(input=None, output=None), content=True)  # content tracing off
    assert "gen_ai.input.messages" not in stripped


def test_span_ids_are_stable_so_a_resent_batch_deduplicates() -> None:
    first, _ = one(reference_record())
    again, _ = one(reference_record())
    assert first.span_id == again.span_id


@pytest.mark.parametrize(
    ("endpoint", "traces", "url"),
    [
        ("http://collector:4318", "", "http://collector:4318/v1/traces"),
        ("http://collector:4318/", "", "http://collector:4318/v1/traces"),
        ("http://ignored:4318", "https://tempo.example/otlp/v1/traces", "https://tempo.example/otlp/v1/traces"),
    ],
)
def test_endpoint_variables(endpoint: str, traces: str, url: str) -> None:
    assert service_url(endpoint, traces) == url


def test_headers_variable() -> None:
    assert parse_headers("api-key=abc%3D%3D, x-tenant = team a ,") == {"api-key": "abc==", "x-tenant": "team a"}
    with pytest.raises(ValueError):
        parse_headers("no-equals-sign")


def test_gzip_roundtrip_is_deterministic() -> None:
    body = gzip.compress(
        GenAIEncoder(service_name="s", version="", content=False).request([reference_record()]), mtime=0
    )
    assert ExportTraceServiceRequest.FromString(gzip.decompress(body)).resource_spans[0].scope_spans[0].spans
