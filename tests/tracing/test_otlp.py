"""The hand-written OTLP wire encoder, held equal to the message-building encoder it replaced.

`reference_request` (otlp_reference.py) is the previous implementation, which built opentelemetry-proto
messages field by field. Every record here is encoded both ways and the encoder's bytes are decoded with the real
`ExportTraceServiceRequest`, so a wrong tag, length, wire type or field order in otlp.py shows up as a
decode error or a message that differs from the reference.
"""

from __future__ import annotations

import enum
import gzip
import json
import logging
import math
from datetime import UTC, datetime
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from llm_scope.tracing.langfuse import LangfuseExporter, build_export_request
from llm_scope.tracing.otlp import RecordEncoder, varint
from llm_scope.types import CallRecord, Cost, Usage

from .otlp_reference import reference_request

START = datetime(2026, 11, 24, 9, 10, 2, 900000, tzinfo=UTC).timestamp()
SURROGATE = json.loads('"caf\\u00e9 \\ud800"')  # what json.loads makes of a client's "\ud800" escape


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


def test_usage_and_cost_kept_by_one_encoder_are_told_apart_by_type() -> None:
    """The encoder keeps usage and cost attributes by value: 1, 1.0 and True are equal values, and each must
    still be written as itself (a later call's attributes are what a fresh encoder writes)."""
    kept = RecordEncoder(environment="default", release="1")
    variants = [
        make(usage=Usage(input=1, output=2, total=3), cost=Cost(input=1.0, total=1.0)),
        make(usage=Usage(input=True, output=2, total=3), cost=Cost(input=1, total=1)),  # type: ignore[arg-type]
        make(usage=Usage(input=1.0, output=2, total=3), cost=Cost(input=True, total=True)),  # type: ignore[arg-type]
        make(usage=Usage(input=1, output=2, total=3, cache_write=2, cache_write_1h=1), cost=Cost(cache_write=1.0)),
        make(usage=Usage(input=1, output=2, total=3), cost=Cost(cache_write=1.0)),
        make(status_code=502, error_type="upstream_error", usage=Usage(input=5), cost=Cost()),
    ]
    for _ in range(2):
        for record in variants:
            assert kept.record(record) == RecordEncoder(environment="default", release="1").record(record)
