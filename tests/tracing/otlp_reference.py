"""The message-building encoder the hand-written one in tracing/otlp.py replaced, kept as the tests'
reference: it builds opentelemetry-proto messages field by field, in the span layout Langfuse is sent."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from llm_scope.tracing.otlp import usage_details
from llm_scope.types import CallRecord

SDK_NAME = "llm-scope"


RefValue = str | bool | int | float | list[str]


def reference_request(
    records: Sequence[CallRecord], *, environment: str, release: str, version: str = "", service_name: str = SDK_NAME
) -> ExportTraceServiceRequest:
    resource: dict[str, RefValue] = {
        "service.name": service_name,
        "telemetry.sdk.language": "python",
        "telemetry.sdk.name": SDK_NAME,
    }
    if release:
        resource["service.version"] = release
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    _fill(resource_spans.resource.attributes, resource)
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "langfuse-sdk"
    scope_spans.scope.version = version
    for record in records:
        _add_record_span(scope_spans.spans, record, environment, release, version)
    return request


def _add_record_span(spans: Any, record: CallRecord, environment: str, release: str, version: str) -> None:
    trace_id = _trace_id(record.trace_id)
    start, end = record.start_time, max(record.end_time, record.start_time)
    attrs: dict[str, RefValue] = {
        "langfuse.internal.is_app_root": True,
        "langfuse.observation.type": "embedding" if record.route == "embeddings" else "generation",
        **_trace_attributes(record, environment, release),
        **_generation_attributes(record, version),
    }
    span = spans.add()
    span.trace_id = trace_id
    span.span_id = _span_id(trace_id, "generation")
    span.name = _utf8(record.provider or "llm-call")
    span.kind = Span.SpanKind.SPAN_KIND_INTERNAL
    span.start_time_unix_nano = max(0, round(start * 1_000_000_000))
    span.end_time_unix_nano = max(0, round(end * 1_000_000_000))
    span.flags = 0x100
    if record.is_error:
        span.status.code = Status.StatusCode.STATUS_CODE_ERROR
        span.status.message = _status_message(record)
    else:
        span.status.SetInParent()
    _fill(span.attributes, attrs)


def _trace_attributes(record: CallRecord, environment: str, release: str) -> dict[str, RefValue]:
    attrs: dict[str, RefValue] = {}
    if record.user_id:
        attrs["user.id"] = record.user_id
    if record.session_id:
        attrs["session.id"] = record.session_id
    client = record.client if isinstance(record.client, str) else None
    tags = list(dict.fromkeys(t for t in (record.provider, record.resolved_model, record.route, client) if t))
    if tags:
        attrs["langfuse.trace.tags"] = tags
    attrs["langfuse.trace.name"] = record.route
    attrs["langfuse.environment"] = environment
    if release:
        attrs["langfuse.release"] = release
    return attrs


def _generation_attributes(record: CallRecord, version: str) -> dict[str, RefValue]:
    attrs: dict[str, RefValue] = {}
    if model := record.resolved_model or record.requested_model:
        attrs["langfuse.observation.model.name"] = model
    if record.model_parameters:
        attrs["langfuse.observation.model.parameters"] = _json(record.model_parameters)
    if record.input is not None:
        attrs["langfuse.observation.input"] = _json(record.input)
    if record.output is not None:
        attrs["langfuse.observation.output"] = _json(record.output)
    usage = usage_details(record)
    if usage is not None:
        attrs["langfuse.observation.usage_details"] = _json(usage)
    if record.cost is not None:
        attrs["langfuse.observation.cost_details"] = _json(record.cost.details(record.usage))
    if record.completion_start_time is not None:
        iso = datetime.fromtimestamp(record.completion_start_time, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        attrs["langfuse.observation.completion_start_time"] = json.dumps(iso)
    if record.is_error:
        attrs["langfuse.observation.level"] = "ERROR"
        attrs["langfuse.observation.status_message"] = _status_message(record)
    for key, value in record.metadata.items():
        if (encoded := _metadata_value(value)) is not None:
            attrs[f"langfuse.trace.metadata.{key}"] = encoded
    metadata: dict[str, Any] = {
        "requested_model": record.requested_model,
        "provider": record.provider,
        "status_code": record.status_code,
        "stream": record.stream,
        "client": record.client,
        "client_version": record.client_version,
        "finish_reason": record.finish_reason,
        "error_type": record.error_type,
        "upstream_latency": record.upstream_latency,
        "llm_scope_version": version,
    }
    for key, value in metadata.items():
        if (encoded := _metadata_value(value)) is not None and encoded != "":
            attrs[f"langfuse.observation.metadata.{key}"] = encoded
    return attrs


def _status_message(record: CallRecord) -> str:
    return record.error_message or record.error_type or f"HTTP {record.status_code}"


def _trace_id(raw: str) -> bytes:
    try:
        trace_id = bytes.fromhex(raw)
    except ValueError:
        trace_id = b""
    if len(trace_id) == 16 and any(trace_id):
        return trace_id
    return _nonzero(hashlib.sha256(f"llm-scope-trace:{raw}".encode()).digest()[:16])


def _span_id(trace_id: bytes, role: str) -> bytes:
    return _nonzero(hashlib.sha256(f"{trace_id.hex()}:{role}".encode()).digest()[:8])


def _nonzero(ident: bytes) -> bytes:
    return ident if any(ident) else ident[:-1] + b"\x01"


def _json(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _metadata_value(value: Any) -> RefValue | None:
    if value is None or isinstance(value, str | bool | float):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else str(value)
    return json.dumps(value, ensure_ascii=False, default=str)


def _fill(attributes: Any, attrs: Mapping[str, RefValue]) -> None:
    for key, value in attrs.items():
        kv = attributes.add()
        kv.key = _utf8(key)
        target = kv.value
        if isinstance(value, str):
            target.string_value = _utf8(value)
        elif isinstance(value, bool):
            target.bool_value = value
        elif isinstance(value, int):
            target.int_value = value
        elif isinstance(value, float):
            target.double_value = value
        else:
            for item in value:
                target.array_value.values.add().string_value = _utf8(item)


def _utf8(text: str) -> str:
    if text.isascii():
        return text
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode()
    return text
