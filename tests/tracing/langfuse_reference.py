"""The call Langfuse's own SDK traced in /work/shared/langfuse/sdk-v5-otlp-request.json, as a CallRecord,
and small helpers to decode what we encode from it; shared by the Langfuse tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf.json_format import MessageToDict  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from llm_scope.tracing.langfuse import build_export_request
from llm_scope.types import CallRecord, Cost, Usage

TRACE_HEX = "69ab3ed1afaa79cab21fdc07ebe9d2ee"  # the reference's traceId "aas+0a+qecqyH9wH6+nS7g=="


def reference_record(**changes: Any) -> CallRecord:
    """The call the reference trace describes, as the gateway would record it."""
    start = datetime(2026, 11, 24, 9, 10, 2, 900000, tzinfo=UTC).timestamp()
    values: dict[str, Any] = {
        "trace_id": TRACE_HEX,
        "route": "chat_completion",
        "start_time": start,
        "end_time": start + 0.5,
        "completion_start_time": datetime(2026, 11, 24, 9, 10, 2, 976392, tzinfo=UTC).timestamp(),
        "user_id": "user-1",
        "session_id": "sess-1",
        "client": "openai-python",
        "client_version": "2.1",
        "metadata": {"team": "search", "experiment": {"arm": "b"}},
        "requested_model": "fast",
        "resolved_model": "gpt-4o-mini",
        "provider": "openai",
        "model_parameters": {"temperature": 0.2},
        "input": [{"role": "user", "content": "hi"}],
        "output": {"role": "assistant", "content": "MOCK_OK"},
        "stream": True,
        "usage": Usage(input=10, output=3, total=13, cache_read=2),
        "cost": Cost(input=0.0001, output=0.0002, total=0.0003),
        "finish_reason": "stop",
    }
    values.update(changes)
    return CallRecord(**values)


def encode(
    *records: CallRecord, environment: str = "production", release: str = "1.2.3", version: str = "0.9.0"
) -> bytes:
    return build_export_request(records, environment=environment, release=release, version=version)


def decode(data: bytes) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    request.ParseFromString(data)
    return request


def spans_of(data: bytes) -> list[Span]:
    request = decode(data)
    return [span for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans]


def only_span(data: bytes) -> Span:
    """A record is one span: the root generation, with no parent."""
    (span,) = spans_of(data)
    assert not span.parent_span_id
    return span


def wire(span: Span) -> dict[str, dict[str, Any]]:
    """Attributes in OTLP/JSON form, the form the reference file is written in."""
    return {kv.key: MessageToDict(kv.value) for kv in span.attributes}


def plain(span: Span) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in span.attributes:
        kind = kv.value.WhichOneof("value")
        value = getattr(kv.value, kind)
        out[kv.key] = [v.string_value for v in value.values] if kind == "array_value" else value
    return out
