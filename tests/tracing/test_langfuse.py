"""The Langfuse sink: OTLP encoding checked against the official SDK's, delivery against a real server.

The reference is /work/shared/langfuse/sdk-v5-otlp-request.json (langfuse SDK 5.0.4). The attributes that
matter are copied below so the suite runs where that file is absent; one test checks the copy when it is not.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import json
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web
from google.protobuf.json_format import MessageToDict  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from llm_scope.tracing.langfuse import (
    ExportStatus,
    LangfuseExporter,
    basic_auth,
    build_export_request,
    otlp_headers,
    parse_retry_after,
    validate_environment,
)
from llm_scope.types import CallRecord, Cost, Usage

REFERENCE_FILE = Path("/work/shared/langfuse/sdk-v5-otlp-request.json")
TRACE_HEX = "69ab3ed1afaa79cab21fdc07ebe9d2ee"  # the reference's traceId "aas+0a+qecqyH9wH6+nS7g=="
PUBLIC, SECRET = "pk-lf-test", "sk-lf-test"

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
    "langfuse.observation.usage_details": {
        "stringValue": '{"input": 10, "output": 3, "total": 13, "cache_read_input_tokens": 2}'
    },
    "langfuse.observation.cost_details": {"stringValue": SDK_COST},
    "langfuse.observation.completion_start_time": {"stringValue": '"2026-11-24T09:10:02.976392Z"'},
}
SDK_ROOT_VALUES: dict[str, dict[str, Any]] = {
    "langfuse.internal.is_app_root": {"boolValue": True},
    "langfuse.observation.type": {"stringValue": "span"},
    "user.id": {"stringValue": "user-1"},
    "session.id": {"stringValue": "sess-1"},
}
# Same key, same encoding, different value: the SDK call used a trace called "chat" tagged "proxy".
SDK_SHAPES = {"langfuse.trace.tags": "arrayValue", "langfuse.trace.name": "stringValue"}


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
        "client": "openai-python/2.1",
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


def encode(*records: CallRecord, environment: str = "production", release: str = "1.2.3") -> bytes:
    return build_export_request(records, environment=environment, release=release)


def decode(data: bytes) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    request.ParseFromString(data)
    return request


def spans_of(data: bytes) -> list[Span]:
    request = decode(data)
    return [span for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans]


def root_and_generation(data: bytes) -> tuple[Span, Span]:
    spans = spans_of(data)
    assert len(spans) == 2
    root = next(s for s in spans if not s.parent_span_id)
    generation = next(s for s in spans if s.parent_span_id)
    return root, generation


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


# --- encoding ---------------------------------------------------------------------------------------------


def test_generation_span_encodes_like_the_sdk() -> None:
    _, generation = root_and_generation(encode(reference_record()))
    attrs = wire(generation)
    for key, expected in SDK_GENERATION_VALUES.items():
        assert attrs[key] == expected, key
    for key, kind in SDK_SHAPES.items():
        assert kind in attrs[key], key
    assert attrs["langfuse.trace.tags"] == {
        "arrayValue": {
            "values": [
                {"stringValue": "openai"},
                {"stringValue": "gpt-4o-mini"},
                {"stringValue": "chat_completion"},
            ]
        }
    }
    assert attrs["langfuse.trace.name"] == {"stringValue": "chat_completion"}
    assert generation.name == "openai"
    assert generation.kind == Span.SpanKind.SPAN_KIND_INTERNAL
    assert generation.trace_id == bytes.fromhex(TRACE_HEX)


def test_root_span_encodes_like_the_sdk() -> None:
    root, generation = root_and_generation(encode(reference_record()))
    attrs = wire(root)
    for key, expected in SDK_ROOT_VALUES.items():
        assert attrs[key] == expected, key
    for key, kind in SDK_SHAPES.items():
        assert kind in attrs[key], key
    assert root.name == "chat_completion"
    assert root.kind == Span.SpanKind.SPAN_KIND_INTERNAL
    assert generation.parent_span_id == root.span_id
    # Content and model facts live on the generation only.
    assert not any(key.startswith("langfuse.observation.input") for key in attrs)
    assert "langfuse.observation.model.name" not in attrs


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


def test_every_span_carries_the_trace_attributes() -> None:
    for span in spans_of(encode(reference_record(), environment="staging", release="2.0.0")):
        attrs = plain(span)
        assert attrs["user.id"] == "user-1"
        assert attrs["session.id"] == "sess-1"
        assert attrs["langfuse.trace.tags"] == ["openai", "gpt-4o-mini", "chat_completion"]
        assert attrs["langfuse.trace.name"] == "chat_completion"
        assert attrs["langfuse.environment"] == "staging"
        assert attrs["langfuse.release"] == "2.0.0"


def test_unset_user_and_session_are_left_out() -> None:
    for span in spans_of(encode(reference_record(user_id=None, session_id=None))):
        assert "user.id" not in plain(span) and "session.id" not in plain(span)


def test_resource_and_scope_name_the_gateway() -> None:
    request = decode(encode(reference_record(), release="1.2.3"))
    (resource_spans,) = request.resource_spans
    resource = {kv.key: kv.value.string_value for kv in resource_spans.resource.attributes}
    assert resource == {
        "service.name": "llm-scope",
        "service.version": "1.2.3",
        "telemetry.sdk.language": "python",
        "telemetry.sdk.name": "llm-scope",
    }
    (scope_spans,) = resource_spans.scope_spans
    assert (scope_spans.scope.name, scope_spans.scope.version) == ("llm-scope", "1.2.3")


def test_span_ids_are_stable_so_retries_deduplicate() -> None:
    first, second = encode(reference_record()), encode(reference_record())
    assert first == second
    root, generation = root_and_generation(first)
    assert len(root.span_id) == len(generation.span_id) == 8
    assert root.span_id != generation.span_id and any(root.span_id) and any(generation.span_id)
    other_root, other_generation = root_and_generation(encode(reference_record(trace_id="ab" * 16)))
    assert {other_root.span_id, other_generation.span_id}.isdisjoint({root.span_id, generation.span_id})


def test_a_malformed_trace_id_gets_a_stable_stand_in() -> None:
    root, generation = root_and_generation(encode(reference_record(trace_id="not-hex")))
    again, _ = root_and_generation(encode(reference_record(trace_id="not-hex")))
    assert len(root.trace_id) == 16 and any(root.trace_id)
    assert root.trace_id == generation.trace_id == again.trace_id


def test_times_are_epoch_nanoseconds() -> None:
    record = reference_record(upstream_latency=0.45)
    root, generation = root_and_generation(encode(record))
    assert abs(root.start_time_unix_nano - record.start_time * 1e9) < 1_000
    assert abs(root.end_time_unix_nano - record.end_time * 1e9) < 1_000
    assert generation.end_time_unix_nano == root.end_time_unix_nano
    # The generation spans the upstream call, so gateway overhead shows as the difference...
    assert abs(generation.start_time_unix_nano - (record.end_time - 0.45) * 1e9) < 1_000
    # ...but never starts after the first token arrived, nor before the request did.
    assert record.completion_start_time is not None
    _, late = root_and_generation(encode(reference_record(upstream_latency=0.01)))
    assert abs(late.start_time_unix_nano - record.completion_start_time * 1e9) < 1_000
    _, early = root_and_generation(encode(reference_record(upstream_latency=9.0)))
    assert early.start_time_unix_nano == root.start_time_unix_nano
    _, unknown = root_and_generation(encode(reference_record()))
    assert unknown.start_time_unix_nano == root.start_time_unix_nano


def test_gateway_facts_and_caller_metadata_become_metadata() -> None:
    root, generation = root_and_generation(encode(reference_record()))
    attrs = wire(generation)
    prefix = "langfuse.observation.metadata."
    assert attrs[prefix + "requested_model"] == {"stringValue": "fast"}
    assert attrs[prefix + "provider"] == {"stringValue": "openai"}
    assert attrs[prefix + "status_code"] == {"intValue": "200"}
    assert attrs[prefix + "stream"] == {"boolValue": True}
    assert attrs[prefix + "client"] == {"stringValue": "openai-python/2.1"}
    assert attrs[prefix + "finish_reason"] == {"stringValue": "stop"}
    assert attrs[prefix + "team"] == {"stringValue": "search"}
    assert attrs[prefix + "experiment"] == {"stringValue": '{"arm": "b"}'}
    assert prefix + "error_type" not in attrs  # unset facts are left out
    # Caller metadata also lands on the trace, where Langfuse's trace table can filter on it.
    assert wire(root)["langfuse.trace.metadata.team"] == {"stringValue": "search"}


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
    root, generation = root_and_generation(encode(record))
    attrs = plain(generation)
    assert attrs["langfuse.observation.level"] == "ERROR"
    assert attrs["langfuse.observation.status_message"] == "Rate limit reached"
    for span in (root, generation):
        assert span.status.code == Status.StatusCode.STATUS_CODE_ERROR
        assert span.status.message == "Rate limit reached"
    # Zero usage on a failure is a fact (nothing billed), so it is sent; unknown cost is not.
    assert json.loads(attrs["langfuse.observation.usage_details"]) == {"input": 0, "output": 0, "total": 0}
    assert "langfuse.observation.cost_details" not in attrs
    assert "langfuse.observation.output" not in attrs
    assert "langfuse.observation.completion_start_time" not in attrs


def test_successful_call_has_no_error_markers() -> None:
    root, generation = root_and_generation(encode(reference_record()))
    assert "langfuse.observation.level" not in plain(generation)
    assert root.status.code == generation.status.code == Status.StatusCode.STATUS_CODE_UNSET


def test_input_is_omitted_when_content_tracing_is_off() -> None:
    _, generation = root_and_generation(encode(reference_record(input=None)))
    assert "langfuse.observation.input" not in plain(generation)


def test_unreported_usage_is_left_for_langfuse_to_infer() -> None:
    _, generation = root_and_generation(encode(reference_record(usage=Usage())))
    assert "langfuse.observation.usage_details" not in plain(generation)


def test_plain_text_content_is_not_double_quoted() -> None:
    _, generation = root_and_generation(encode(reference_record(input="hello", output="world")))
    attrs = plain(generation)
    assert (attrs["langfuse.observation.input"], attrs["langfuse.observation.output"]) == ("hello", "world")


def test_call_that_failed_before_routing_still_encodes() -> None:
    record = CallRecord(trace_id="cd" * 16, route="messages", start_time=1.0, status_code=404)
    root, generation = root_and_generation(encode(record))
    assert generation.name == "llm-call"
    assert root.end_time_unix_nano == root.start_time_unix_nano  # end_time unset
    assert plain(root)["langfuse.trace.tags"] == ["messages"]


def test_lone_surrogates_from_client_json_do_not_break_encoding() -> None:
    bad = json.loads('"caf\\u00e9 \\ud800"')  # what json.loads makes of a client's "\\ud800" escape
    record = reference_record(input=[{"role": "user", "content": bad}], metadata={bad: bad}, user_id=bad)
    _, generation = root_and_generation(encode(record))
    attrs = plain(generation)
    assert json.loads(attrs["langfuse.observation.input"])[0]["content"] == bad  # still valid JSON
    assert attrs["user.id"] == "café \\ud800"
    assert "langfuse.observation.metadata.café \\ud800" in attrs


def test_many_records_share_one_resource_and_scope() -> None:
    records = [reference_record(trace_id=f"{i:032x}") for i in range(1, 4)]
    request = decode(encode(*records))
    assert len(request.resource_spans) == 1
    assert len(request.resource_spans[0].scope_spans[0].spans) == 6


# --- headers and small helpers ----------------------------------------------------------------------------


def test_basic_auth_matches_the_sdk() -> None:
    assert basic_auth(PUBLIC, SECRET) == "Basic cGstbGYtdGVzdDpzay1sZi10ZXN0"  # from the reference request


def test_otlp_headers() -> None:
    assert otlp_headers(PUBLIC, SECRET, "1.2.3") == {
        "Authorization": "Basic cGstbGYtdGVzdDpzay1sZi10ZXN0",
        "Content-Type": "application/x-protobuf",
        "Content-Encoding": "gzip",
        "x-langfuse-ingestion-version": "4",
        "x-langfuse-public-key": PUBLIC,
        "x-langfuse-sdk-name": "llm-scope",
        "x-langfuse-sdk-version": "1.2.3",
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("7", 7.0),
        (" 0 ", 0.0),
        ("soon", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date_in_the_future() -> None:
    when = datetime.fromtimestamp(datetime.now(UTC).timestamp() + 120, UTC)
    seconds = parse_retry_after(when.strftime("%a, %d %b %Y %H:%M:%S GMT"))
    assert seconds is not None and 100 < seconds <= 120


@pytest.mark.parametrize("name", ["production", "dev_1", "eu-west"])
def test_valid_environments(name: str) -> None:
    assert validate_environment(name) == name


@pytest.mark.parametrize("name", ["", "Production", "langfuse-prod", "a b", "x" * 41])
def test_invalid_environments_fail_fast(name: str) -> None:
    with pytest.raises(ValueError):
        validate_environment(name)


# --- delivery against a real server -----------------------------------------------------------------------

T = TypeVar("T")


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeLangfuse:
    """Answers each POST with the next scripted status (the last one repeats) and keeps what it got."""

    statuses: list[int] = field(default_factory=lambda: [200])
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: str = "{}"
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(Received(request.path, dict(request.headers), await request.read()))
        if self.delay:
            await asyncio.sleep(self.delay)
        status = self.statuses[min(len(self.received), len(self.statuses)) - 1]
        return web.Response(status=status, text=self.response_body, headers=self.response_headers)


@contextlib.asynccontextmanager
async def serve(fake: FakeLangfuse) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/{tail:.*}", fake.handle)
    # auto_decompress off so the test sees the bytes on the wire and can check they are gzip.
    runner = web.AppRunner(app, auto_decompress=False, shutdown_timeout=0.1, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        await runner.cleanup()


def exporter_for(host: str, **kwargs: Any) -> LangfuseExporter:
    options: dict[str, Any] = {"environment": "production", "release": "1.2.3", "timeout": 2.0} | kwargs
    return LangfuseExporter(host=host, public_key=PUBLIC, secret_key=SECRET, **options)


def with_exporter(fake: FakeLangfuse, action: Callable[[LangfuseExporter], Awaitable[T]], **kwargs: Any) -> T:
    async def main() -> T:
        async with serve(fake) as host:
            exporter = exporter_for(host, **kwargs)
            try:
                return await action(exporter)
            finally:
                await exporter.aclose()

    return asyncio.run(main())


def test_export_posts_gzipped_protobuf_with_langfuse_headers() -> None:
    fake = FakeLangfuse()
    result = with_exporter(fake, lambda e: e.export([reference_record()]))
    assert result.status is ExportStatus.OK and result.http_status == 200
    (got,) = fake.received
    assert got.path == "/api/public/otel/v1/traces"  # trailing slash on the host is tolerated
    assert got.headers["Authorization"] == "Basic cGstbGYtdGVzdDpzay1sZi10ZXN0"
    assert got.headers["Content-Type"] == "application/x-protobuf"
    assert got.headers["Content-Encoding"] == "gzip"
    assert got.headers["x-langfuse-ingestion-version"] == "4"
    assert got.headers["x-langfuse-public-key"] == PUBLIC
    assert got.headers["x-langfuse-sdk-name"] == "llm-scope"
    assert got.body[:2] == b"\x1f\x8b"
    assert gzip.decompress(got.body) == encode(reference_record(), environment="production", release="1.2.3")


def test_export_of_nothing_sends_nothing() -> None:
    fake = FakeLangfuse()
    assert with_exporter(fake, lambda e: e.export([])).ok
    assert fake.received == []


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, ExportStatus.OK),
        (207, ExportStatus.OK),
        (408, ExportStatus.RETRYABLE),
        (429, ExportStatus.RETRYABLE),
        (500, ExportStatus.RETRYABLE),
        (502, ExportStatus.RETRYABLE),
        (503, ExportStatus.RETRYABLE),
        (400, ExportStatus.REJECTED),
        (401, ExportStatus.REJECTED),
        (403, ExportStatus.REJECTED),
        (404, ExportStatus.REJECTED),
        (413, ExportStatus.REJECTED),
        (302, ExportStatus.REJECTED),
    ],
)
def test_export_classifies_http_status(status: int, expected: ExportStatus) -> None:
    fake = FakeLangfuse(statuses=[status], response_headers={"Location": "http://elsewhere.invalid/"})
    result = with_exporter(fake, lambda e: e.export([reference_record()]))
    assert (result.status, result.http_status) == (expected, status)
    assert len(fake.received) == 1  # no redirect followed, no retry inside the exporter


def test_retry_after_is_reported() -> None:
    fake = FakeLangfuse(statuses=[429], response_headers={"Retry-After": "7"})
    result = with_exporter(fake, lambda e: e.export([reference_record()]))
    assert result.status is ExportStatus.RETRYABLE and result.retry_after == 7.0


def test_rejection_is_logged_without_the_secret(caplog: pytest.LogCaptureFixture) -> None:
    echo = f"bad credentials {SECRET} / {basic_auth(PUBLIC, SECRET)}"
    fake = FakeLangfuse(statuses=[401], response_body=echo)
    with caplog.at_level(logging.ERROR, logger="llm_scope.tracing.langfuse"):
        result = with_exporter(fake, lambda e: e.export([reference_record()]))
    assert result.status is ExportStatus.REJECTED
    assert "bad credentials" in result.detail
    token = basic_auth(PUBLIC, SECRET).removeprefix("Basic ")
    assert SECRET not in result.detail and token not in result.detail
    assert caplog.records and all(SECRET not in r.getMessage() for r in caplog.records)


def test_connection_refused_is_retryable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on the port any more.

    async def main() -> Any:
        exporter = exporter_for(f"http://127.0.0.1:{port}")
        try:
            return await exporter.export([reference_record()])
        finally:
            await exporter.aclose()

    result = asyncio.run(main())
    assert result.status is ExportStatus.RETRYABLE and result.http_status is None
    assert SECRET not in result.detail


def test_timeout_is_retryable() -> None:
    fake = FakeLangfuse(delay=1.0)
    result = with_exporter(fake, lambda e: e.export([reference_record()]), timeout=0.2)
    assert result.status is ExportStatus.RETRYABLE and result.http_status is None


def test_big_batches_are_split_and_stop_at_the_first_failure() -> None:
    records = [reference_record(trace_id=f"{i:032x}") for i in range(1, 6)]
    fake = FakeLangfuse()
    assert with_exporter(fake, lambda e: e.export(records), max_request_bytes=1).ok
    assert len(fake.received) == 5  # one record per request: a record never splits
    sent = [s for got in fake.received for s in spans_of(gzip.decompress(got.body))]
    assert sorted(s.span_id for s in sent) == sorted(s.span_id for s in spans_of(encode(*records)))

    failing = FakeLangfuse(statuses=[200, 503])
    result = with_exporter(failing, lambda e: e.export(records), max_request_bytes=1)
    assert result.status is ExportStatus.RETRYABLE and len(failing.received) == 2


def test_a_record_that_cannot_be_encoded_does_not_hold_up_the_batch(caplog: pytest.LogCaptureFixture) -> None:
    circular: dict[str, Any] = {}
    circular["self"] = circular
    poison = reference_record(trace_id="ef" * 16, model_parameters=circular)
    fake = FakeLangfuse()
    with caplog.at_level(logging.ERROR, logger="llm_scope.tracing.langfuse"):
        assert with_exporter(fake, lambda e: e.export([poison, reference_record()])).ok
    (got,) = fake.received
    assert {s.trace_id.hex() for s in spans_of(gzip.decompress(got.body))} == {TRACE_HEX}
    assert "ef" * 16 in caplog.text


def test_session_is_reused_across_exports() -> None:
    fake = FakeLangfuse()

    async def twice(exporter: LangfuseExporter) -> bool:
        first = await exporter.export([reference_record()])
        second = await exporter.export([reference_record()])
        return first.ok and second.ok

    assert with_exporter(fake, twice)
    assert len(fake.received) == 2


def test_send_score_posts_json_with_basic_auth() -> None:
    score = {"id": "s-1", "traceId": TRACE_HEX, "name": "helpful", "value": 1, "dataType": "NUMERIC"}
    fake = FakeLangfuse()
    result = with_exporter(fake, lambda e: e.send_score(score))
    assert result.ok
    (got,) = fake.received
    assert got.path == "/api/public/scores"
    assert got.headers["Authorization"] == basic_auth(PUBLIC, SECRET)
    assert got.headers["Content-Type"] == "application/json"
    assert json.loads(got.body) == score


def test_send_score_rejection() -> None:
    fake = FakeLangfuse(statuses=[400], response_body='{"message": "invalid dataType"}')
    result = with_exporter(fake, lambda e: e.send_score({"traceId": TRACE_HEX, "name": "x", "value": "?"}))
    assert result.status is ExportStatus.REJECTED and "invalid dataType" in result.detail


def test_constructor_guards_config_and_repr_hides_the_secret() -> None:
    with pytest.raises(ValueError):
        exporter_for("http://127.0.0.1:1", environment="Prod")
    with pytest.raises(ValueError):
        exporter_for("cloud.langfuse.com")
    assert SECRET not in repr(exporter_for("http://127.0.0.1:1"))
