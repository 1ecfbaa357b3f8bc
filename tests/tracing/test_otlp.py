"""The hand-written OTLP wire encoder, held equal to the message-building encoder it replaced.

`reference_request` below is the previous implementation, which built opentelemetry-proto messages field by
field. Every record here is encoded both ways and the encoder's bytes are decoded with the real
`ExportTraceServiceRequest`, so a wrong tag, length, wire type or field order in otlp.py shows up as a
decode error or a message that differs from the reference.
"""

from __future__ import annotations

import enum
import gzip
import hashlib
import json
import logging
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from llm_scope.tracing.langfuse import LangfuseExporter, build_export_request
from llm_scope.tracing.otlp import RecordEncoder, usage_details, varint
from llm_scope.types import CallRecord, Cost, Usage

SDK_NAME = "llm-scope"
START = datetime(2026, 11, 24, 9, 10, 2, 900000, tzinfo=UTC).timestamp()
SURROGATE = json.loads('"caf\\u00e9 \\ud800"')  # what json.loads makes of a client's "\ud800" escape


# --- the reference: the previous, message-building encoder ------------------------------------------------

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


# --- records ----------------------------------------------------------------------------------------------


class Color(enum.Enum):
    RED = 1


class Tier(enum.IntEnum):
    GOLD = 3


class Region(enum.StrEnum):
    EU = "eu-west"


def make(**changes: Any) -> CallRecord:
    """A typical non-streaming chat completion, as the benchmark sends it."""
    values: dict[str, Any] = {
        "trace_id": "69ab3ed1afaa79cab21fdc07ebe9d2ee",
        "route": "chat_completion",
        "start_time": START,
        "end_time": START + 0.25,
        "client": "python-httpx/0.28",
        "requested_model": "gpt-4o-mini",
        "resolved_model": "gpt-4o-mini",
        "provider": "openai",
        "model_parameters": {"max_tokens": 32},
        "input": [{"role": "user", "content": "Say hello in one short sentence."}],
        "output": {"role": "assistant", "content": "Hello! How can I help?"},
        "usage": Usage(input=12, output=9, total=21),
        "cost": Cost(input=1.8e-06, output=5.4e-06, total=7.2e-06),
        "upstream_latency": 0.21,
        "finish_reason": "stop",
    }
    values.update(changes)
    return CallRecord(**values)


EVERY_METADATA_TYPE: dict[Any, Any] = {
    "team": "search",
    "empty": "",
    "none": None,
    "yes": True,
    "no": False,
    "zero": 0,
    "negative": -1,
    "int64_min": -(2**63),
    "int64_max": 2**63 - 1,
    "too_big": 2**63,
    "too_small": -(2**63) - 1,
    "huge": 10**40,
    "float": 0.5,
    "negative_zero": -0.0,
    "tiny": 5e-324,
    "large": 1.7976931348623157e308,
    "infinity": math.inf,
    "list": [1, "two", None, {"three": 3.0}],
    "tuple": (1, 2),
    "dict": {"nested": {"deep": ["ü", 1e100]}},
    "set": {7},
    "when": datetime(2026, 1, 2, tzinfo=UTC),
    "bytes": b"\x00raw",
    "enum": Color.RED,
    "int_enum": Tier.GOLD,
    "str_enum": Region.EU,
    "unicode ключ 🔑": "значение ✓",
    SURROGATE: SURROGATE,
    "k" * 300: "long key, multi-byte length",
    1: "int key",  # formats the same as the next key: one attribute, first place, last value
    "1": "str key",
    "provider": "caller's own",  # clashes with a gateway fact on the generation, which wins
    "stream": "caller's own",
}

CASES: dict[str, CallRecord] = {
    "typical": make(),
    "streaming": make(
        stream=True,
        completion_start_time=START + 0.08,
        user_id="user-1",
        session_id="sess-1",
        usage=Usage(input=10, output=3, total=13, cache_read=2, cache_write=1, reasoning=4),
        metadata={"team": "search", "experiment": {"arm": "b"}},
    ),
    "no_user_session_cost_latency": make(cost=None, upstream_latency=None, finish_reason=None, client=None),
    "upstream_error": make(
        status_code=502,
        error_type="APIConnectionError",
        error_message="upstream refused: ☃ connection reset",
        output=None,
        usage=Usage(),
        cost=None,
        finish_reason=None,
    ),
    "error_without_message": make(status_code=429, output=None, usage=Usage(), cost=None),
    "error_type_only": make(error_type="Timeout", status_code=200),
    "empty_error_type": make(error_type="", status_code=200),
    "failed_before_routing": make(
        resolved_model="", provider="", requested_model="", model_parameters={}, output=None, usage=Usage()
    ),
    "empty_route": make(route="", resolved_model="", provider=""),
    "unicode": make(
        route="chat_completion",
        user_id="用户-ü",
        session_id="séance 🎯",
        resolved_model="modèle-✓",
        provider="prövider",
        client="クライアント/1.0",
        input=[{"role": "user", "content": "Grüß dich 👋 — «ça va?»"}],
        output={"role": "assistant", "content": "你好 世界"},
    ),
    "lone_surrogates": make(
        input=[{"role": "user", "content": SURROGATE}],
        output=SURROGATE,
        user_id=SURROGATE,
        session_id=SURROGATE,
        provider=SURROGATE,
        resolved_model=SURROGATE,
        client=SURROGATE,
        finish_reason=SURROGATE,
        metadata={SURROGATE: [SURROGATE], "plain": SURROGATE},
    ),
    "every_metadata_type": make(metadata=EVERY_METADATA_TYPE),
    "plain_text_content": make(input="just a prompt", output="just an answer"),
    "large_content": make(
        input=[{"role": "user", "content": "x" * 200_000}], output={"role": "assistant", "content": "é" * 9000}
    ),
    "no_content": make(input=None, output=None),
    "unreported_usage": make(usage=Usage(), cost=Cost()),
    "odd_numbers": make(
        usage=Usage(input=True, output=2.5, total=-1),  # type: ignore[arg-type]
        cost=Cost(input=math.inf, output=-math.inf, total=math.nan),
        status_code=201,
        upstream_latency=0,
    ),
    "latency_longer_than_call": make(upstream_latency=10.0, completion_start_time=START - 5),
    "unset_end_time": make(end_time=0.0),
    "zero_start": make(start_time=0.0, end_time=0.0, upstream_latency=None),
    "negative_start": make(start_time=-5.0, end_time=1.0),
    "before_year_1000": make(completion_start_time=-31_000_000_000.0),
    "malformed_trace_id": make(trace_id="not-hex"),
    "zero_trace_id": make(trace_id="0" * 32),
    "short_trace_id": make(trace_id="abcd"),
    "hashable_oddities_in_gateway_facts": make(client=("tuple", "client"), finish_reason=Region.EU),
    "unhashable_gateway_fact": make(client=["list", "client"], finish_reason={"odd": 1}),
    "bool_status": make(status_code=True),
}


def decoded(data: bytes) -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest.FromString(data)


@pytest.mark.parametrize("name", sorted(CASES))
def test_record_decodes_to_what_the_message_building_encoder_made(name: str) -> None:
    record = CASES[name]
    got = decoded(build_export_request([record], environment="production", release="1.2.3"))
    assert got == reference_request([record], environment="production", release="1.2.3")


@pytest.mark.parametrize(("environment", "release", "service"), [("default", "", "svc"), ("dev", "0.1.0", "x")])
def test_whole_batches_decode_the_same(environment: str, release: str, service: str) -> None:
    records = [*CASES.values(), *(make(trace_id=f"{i:032x}") for i in range(1, 40))]
    data = build_export_request(records, environment=environment, release=release, service_name=service)
    assert decoded(data) == reference_request(records, environment=environment, release=release, service_name=service)


def test_an_empty_batch_is_the_resource_and_scope_alone() -> None:
    data = build_export_request([], environment="production", release="1.2.3")
    assert decoded(data) == reference_request([], environment="production", release="1.2.3")


def test_nan_metadata_is_encoded_as_the_reference_encodes_it() -> None:
    # NaN never equals itself, so compare the canonical bytes of both messages instead.
    record = make(metadata={"nan": math.nan}, upstream_latency=math.nan)
    got = decoded(build_export_request([record], environment="production", release="1"))
    want = reference_request([record], environment="production", release="1")
    assert got.SerializeToString(deterministic=True) == want.SerializeToString(deterministic=True)


def test_a_lone_surrogate_in_an_error_message_no_longer_loses_the_record() -> None:
    record = make(status_code=500, error_message=SURROGATE)
    with pytest.raises(ValueError):  # the reference never escaped the status message: the record was dropped
        reference_request([record], environment="p", release="")
    request = decoded(build_export_request([record], environment="p", release=""))
    (span,) = request.resource_spans[0].scope_spans[0].spans
    assert span.status.message == "café \\ud800"


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 16383, 16384, 2**35, 2**64 - 1])
def test_varint(value: int) -> None:
    # AnyValue.int_value is an int64: values from 2**63 up read back as their two's complement.
    assert AnyValue.FromString(b"\x18" + varint(value)).int_value == value - (2**64 if value >= 2**63 else 0)


def test_exporter_bodies_are_gzipped_requests_of_the_same_content() -> None:
    records = [make(trace_id=f"{i:032x}") for i in range(1, 6)]
    exporter = LangfuseExporter(
        host="http://127.0.0.1:1", public_key="pk", secret_key="sk", environment="default", release="0.1.0"
    )
    (body,) = exporter._encode(records)
    assert body == exporter._encode(records)[0]  # mtime=0: the same records give the same body
    assert decoded(gzip.decompress(body)) == reference_request(records, environment="default", release="0.1.0")


def test_exporter_splits_by_encoded_size_and_keeps_record_order() -> None:
    records = [make(trace_id=f"{i:032x}") for i in range(1, 8)]
    one = len(RecordEncoder(environment="default", release="0.1.0").record(records[0]))
    exporter = LangfuseExporter(
        host="http://127.0.0.1:1",
        public_key="pk",
        secret_key="sk",
        environment="default",
        release="0.1.0",
        max_request_bytes=3 * one,
    )
    bodies = exporter._encode(records)
    assert len(bodies) == 3  # 3 + 3 + 1
    got = [decoded(gzip.decompress(body)) for body in bodies]
    assert got == [
        reference_request(chunk, environment="default", release="0.1.0")
        for chunk in (records[:3], records[3:6], records[6:])
    ]


def test_unencodable_records_are_dropped_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    circular: dict[str, Any] = {}
    circular["self"] = circular
    poison = [
        make(trace_id="ef" * 16, model_parameters=circular),
        make(trace_id="ee" * 16, start_time=1e12),  # nanoseconds past uint64
        make(trace_id="ed" * 16, end_time=math.inf),
    ]
    for record in poison:  # the message-building encoder could not encode them either
        with pytest.raises((ValueError, OverflowError)):
            reference_request([record], environment="default", release="0.1.0")
    good = [make(trace_id=f"{i:032x}") for i in range(1, 3)]
    exporter = LangfuseExporter(
        host="http://127.0.0.1:1", public_key="pk", secret_key="sk", environment="default", release="0.1.0"
    )
    with caplog.at_level(logging.ERROR, logger="llm_scope.tracing.exporting"):
        (body,) = exporter._encode([good[0], *poison, good[1]])
    assert decoded(gzip.decompress(body)) == reference_request(good, environment="default", release="0.1.0")
    for record in poison:
        assert record.trace_id in caplog.text
